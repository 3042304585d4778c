package commands

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/clubcrm/crm/domain/identity"
	"github.com/clubcrm/crm/eventstore"
)

// SettingsCategory is the stream category of tenant settings: one stream
// per tenant, so every change is kept with who made it.
const SettingsCategory = "settings"

// TypeSettingsChanged records a tenant's new identity settings.
const TypeSettingsChanged = "settings.identity.changed"

// settingsTTL bounds how long a process uses settings another process may
// have changed.
const settingsTTL = 5 * time.Second

// Settings keeps tenants' identity settings in the event store.
type Settings struct {
	Store eventstore.Store
	Now   func() time.Time

	cache tenantCache[identity.Settings]
}

// SettingsChanged is the payload of TypeSettingsChanged.
type SettingsChanged struct {
	Identity identity.Settings `json:"identity"`
	Actor    string            `json:"actor"`
}

// ErrInvalidSettings wraps the problems a settings change has.
type ErrInvalidSettings map[string]string

func (e ErrInvalidSettings) Error() string {
	return fmt.Sprintf("invalid settings: %v", map[string]string(e))
}

func (s *Settings) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// IdentitySettings answers the tenant's identity settings, the defaults
// when it has changed none.
func (s *Settings) IdentitySettings(ctx context.Context, tenant string) (identity.Settings, error) {
	if v, ok := s.cache.get(tenant, s.now(), settingsTTL); ok {
		return v, nil
	}
	v, err := s.load(ctx, tenant)
	if err != nil {
		return identity.Settings{}, err
	}
	s.cache.put(tenant, v, s.now())
	return v, nil
}

func (s *Settings) load(ctx context.Context, tenant string) (identity.Settings, error) {
	evs, err := s.Store.ReadStreamBackward(ctx, eventstore.StreamName(SettingsCategory, tenant), 0, 1)
	if errors.Is(err, eventstore.ErrStreamNotFound) || (err == nil && len(evs) == 0) {
		return identity.DefaultSettings(), nil
	}
	if err != nil {
		return identity.Settings{}, fmt.Errorf("settings of %s: %w", tenant, err)
	}
	var c SettingsChanged
	if err := json.Unmarshal(evs[0].Data, &c); err != nil {
		return identity.Settings{}, fmt.Errorf("settings of %s: %w", tenant, err)
	}
	return c.Identity, nil
}

// Put replaces the tenant's identity settings.
func (s *Settings) Put(ctx context.Context, tenant, actor, commandID string, v identity.Settings) (identity.Settings, error) {
	if v.BlockedEmails == nil {
		v.BlockedEmails = []string{}
	}
	if v.BlockedPhones == nil {
		v.BlockedPhones = []string{}
	}
	if v.ClubDomains == nil {
		v.ClubDomains = []string{}
	}
	if errs := v.Validate(); len(errs) > 0 {
		return identity.Settings{}, ErrInvalidSettings(errs)
	}
	data, err := json.Marshal(SettingsChanged{Identity: v, Actor: actor})
	if err != nil {
		return identity.Settings{}, err
	}
	stream := eventstore.StreamName(SettingsCategory, tenant)
	_, err = s.Store.Append(ctx, stream, eventstore.Any, eventstore.EventData{
		ID:         eventstore.DeriveID(tenant, commandID, stream, TypeSettingsChanged),
		Type:       TypeSettingsChanged,
		Data:       data,
		Metadata:   eventstore.Metadata{TenantID: tenant, CorrelationID: commandID, CausationID: commandID, Actor: actor},
		OccurredAt: s.now().UTC(),
	})
	if err != nil {
		return identity.Settings{}, fmt.Errorf("save settings of %s: %w", tenant, err)
	}
	s.cache.put(tenant, v, s.now())
	return v, nil
}
