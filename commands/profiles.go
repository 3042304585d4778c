package commands

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/encoding/json"

	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/eventstore"
)

// Schemas answers the upcasters of every event type whose payload changed
// shape since it was first written: the store wrapped with them
// (eventstore.Upcasting) hands every reader the newest shape and stamps
// appends with it. No type has changed yet; register one as
//
//	u.Register("customer.created", 1, func(old json.RawMessage) (json.RawMessage, error) { ... })
func Schemas() *eventstore.Upcasters { return eventstore.NewUpcasters() }

// maxAttempts bounds how often a command reloads and decides again after
// losing a race to another writer.
const maxAttempts = 20

// retryConflicts runs fn again while it loses races to other writers
// (reloading and deciding again is fn's job), at most maxAttempts times.
func retryConflicts(ctx context.Context, fn func() error) error {
	for attempt := 1; ; attempt++ {
		err := fn()
		if !errors.Is(err, eventstore.ErrConflict) || attempt == maxAttempts {
			return err
		}
		if err := pause(ctx, attempt); err != nil {
			return err
		}
	}
}

// pause waits a little before attempt+1, more after each lost race and
// with jitter, so writers racing for one stream spread out instead of
// colliding again in lockstep.
func pause(ctx context.Context, attempt int) error {
	d := time.Duration(attempt) * time.Millisecond * time.Duration(1+rand.IntN(5))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// loadPage is how many events a profile load reads at a time.
const loadPage = 512

// LoadProfile folds a profile from its stream. A profile with no events
// comes back empty (Exists reports false) with its id and tenant set.
func LoadProfile(ctx context.Context, store eventstore.Store, tenant string, id uuid.UUID) (*customer.Profile, error) {
	return LoadProfileAsOf(ctx, store, tenant, id, time.Time{})
}

// LoadProfileAsOf folds a profile from the events recorded up to asOf (all
// of them when asOf is zero): the profile as it stood at that instant.
func LoadProfileAsOf(ctx context.Context, store eventstore.Store, tenant string, id uuid.UUID, asOf time.Time) (*customer.Profile, error) {
	return foldFrom(ctx, store, &customer.Profile{ID: id, TenantID: tenant}, asOf)
}

// foldFrom folds into p the events of its stream after p.Version recorded
// up to asOf (all of them when asOf is zero). A stream that does not exist
// answers a profile that does not exist, whatever p held.
func foldFrom(ctx context.Context, store eventstore.Store, p *customer.Profile, asOf time.Time) (*customer.Profile, error) {
	stream := customer.Stream(p.ID)
	for from := p.Version + 1; ; {
		evs, err := store.ReadStream(ctx, stream, from, loadPage)
		if errors.Is(err, eventstore.ErrStreamNotFound) {
			return &customer.Profile{ID: p.ID, TenantID: p.TenantID}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", stream, err)
		}
		var done bool
		if p, done, err = foldProfile(p, evs, asOf); err != nil || done || len(evs) < loadPage {
			return p, err
		}
		from += uint64(len(evs))
	}
}

// foldProfile applies evs, the next events of p's stream, to p, and answers
// the profile and whether it is complete before the stream ends: at an
// event recorded after asOf (when asOf is set), or at one of another
// tenant, whose profile answers as one that does not exist.
func foldProfile(p *customer.Profile, evs []eventstore.Event, asOf time.Time) (*customer.Profile, bool, error) {
	for _, e := range evs {
		if e.Metadata.TenantID != p.TenantID {
			return &customer.Profile{ID: p.ID, TenantID: p.TenantID}, true, nil
		}
		if !asOf.IsZero() && e.RecordedAt.After(asOf) {
			return p, true, nil
		}
		v, err := customer.Decode(e.Type, e.Data)
		if err != nil {
			return nil, true, fmt.Errorf("load %s version %d: %w", e.Stream, e.Version, err)
		}
		p.Apply(v, e.RecordedAt)
	}
	return p, false, nil
}

// cause names what made events happen, for their ids and metadata.
type cause struct {
	id         string // upstream event id or command id
	tenant     string
	actor      string
	correlates string
	occurredAt time.Time
}

// eventData turns domain events into events to append. Ids derive from the
// cause and the event type, so a retried command appends nothing twice.
func (c cause) eventData(stream string, evs []customer.Event) ([]eventstore.EventData, error) {
	out := make([]eventstore.EventData, 0, len(evs))
	for _, e := range evs {
		b, err := json.Marshal(e.Data)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", e.Type, err)
		}
		corr := c.correlates
		if corr == "" {
			corr = c.id
		}
		out = append(out, eventstore.EventData{
			ID:         eventstore.DeriveID(c.tenant, c.id, stream, e.Type),
			Type:       e.Type,
			Data:       b,
			Metadata:   eventstore.Metadata{TenantID: c.tenant, CorrelationID: corr, CausationID: c.id, Actor: c.actor},
			OccurredAt: c.occurredAt,
		})
	}
	return out, nil
}
