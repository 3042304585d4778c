package commands

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/domain/scoring"
	"github.com/clubcrm/crm/eventstore"
)

// ScoringCategory is the stream category of tenants' scoring models: one
// stream per tenant, whose version is the model's version.
const ScoringCategory = "scoring"

// TypeScoringModelChanged records a tenant's new scoring model.
const TypeScoringModelChanged = "scoring.model.changed"

// modelTTL bounds how long a process scores with a model another process
// may have replaced; rows scored under an older version are rescored by
// the scores job.
const modelTTL = 5 * time.Second

// ScoringModelChanged is the payload of TypeScoringModelChanged.
type ScoringModelChanged struct {
	Model scoring.Model `json:"model"`
	Actor string        `json:"actor"`
}

// ErrInvalidModel lists a model's problems by path.
type ErrInvalidModel scoring.Problems

func (e ErrInvalidModel) Error() string {
	return fmt.Sprintf("invalid scoring model: %v", map[string]string(e))
}

// ErrNoSuchVersion answers a version the tenant's model never had.
var ErrNoSuchVersion = errors.New("no such scoring model version")

// ScoringModels keeps tenants' scoring models in the event store.
type ScoringModels struct {
	Store eventstore.Store
	Now   func() time.Time

	current tenantCache[scoring.Versioned]
	mu      sync.Mutex
	past    map[string]scoring.Versioned // "tenant/version": versions never change
}

func (s *ScoringModels) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Current answers the tenant's model in force, cached for a few seconds.
func (s *ScoringModels) Current(ctx context.Context, tenant string) (scoring.Versioned, error) {
	if m, ok := s.current.get(tenant, s.now(), modelTTL); ok {
		return m, nil
	}
	evs, err := s.Store.ReadStreamBackward(ctx, eventstore.StreamName(ScoringCategory, tenant), 0, 1)
	if errors.Is(err, eventstore.ErrStreamNotFound) || (err == nil && len(evs) == 0) {
		m := scoring.Versioned{Model: scoring.Default()}
		s.current.put(tenant, m, s.now())
		return m, nil
	}
	if err != nil {
		return scoring.Versioned{}, fmt.Errorf("scoring model of %s: %w", tenant, err)
	}
	m, err := decodeModel(evs[0])
	if err != nil {
		return scoring.Versioned{}, fmt.Errorf("scoring model of %s: %w", tenant, err)
	}
	s.current.put(tenant, m, s.now())
	return m, nil
}

// At answers version v of the tenant's model (0: the built-in default).
func (s *ScoringModels) At(ctx context.Context, tenant string, v uint64) (scoring.Versioned, error) {
	if v == 0 {
		return scoring.Versioned{Model: scoring.Default()}, nil
	}
	key := fmt.Sprintf("%s/%d", tenant, v)
	s.mu.Lock()
	if m, ok := s.past[key]; ok {
		s.mu.Unlock()
		return m, nil
	}
	s.mu.Unlock()
	evs, err := s.Store.ReadStream(ctx, eventstore.StreamName(ScoringCategory, tenant), v, 1)
	if errors.Is(err, eventstore.ErrStreamNotFound) || (err == nil && (len(evs) == 0 || evs[0].Version != v)) {
		return scoring.Versioned{}, fmt.Errorf("%w: %d", ErrNoSuchVersion, v)
	}
	if err != nil {
		return scoring.Versioned{}, fmt.Errorf("scoring model %d of %s: %w", v, tenant, err)
	}
	m, err := decodeModel(evs[0])
	if err != nil {
		return scoring.Versioned{}, err
	}
	s.mu.Lock()
	if s.past == nil {
		s.past = map[string]scoring.Versioned{}
	}
	s.past[key] = m
	s.mu.Unlock()
	return m, nil
}

func decodeModel(e eventstore.Event) (scoring.Versioned, error) {
	var c ScoringModelChanged
	if err := json.Unmarshal(e.Data, &c); err != nil {
		return scoring.Versioned{}, fmt.Errorf("decode %s version %d: %w", e.Stream, e.Version, err)
	}
	at := e.RecordedAt.UTC()
	return scoring.Versioned{Version: e.Version, Model: c.Model, ChangedAt: &at, ChangedBy: c.Actor}, nil
}

// Put validates m and makes it the tenant's model, answering its version.
// A retried command (the same commandID) records it once.
func (s *ScoringModels) Put(ctx context.Context, tenant, actor, commandID string, m scoring.Model) (scoring.Versioned, error) {
	if p := m.Validate(); len(p) > 0 {
		return scoring.Versioned{}, ErrInvalidModel(p)
	}
	data, err := json.Marshal(ScoringModelChanged{Model: m, Actor: actor})
	if err != nil {
		return scoring.Versioned{}, err
	}
	stream := eventstore.StreamName(ScoringCategory, tenant)
	now := s.now().UTC()
	_, err = s.Store.Append(ctx, stream, eventstore.Any, eventstore.EventData{
		ID:         eventstore.DeriveID(tenant, commandID, stream, TypeScoringModelChanged),
		Type:       TypeScoringModelChanged,
		Data:       data,
		Metadata:   eventstore.Metadata{TenantID: tenant, CorrelationID: commandID, CausationID: commandID, Actor: actor},
		OccurredAt: now,
	})
	if err != nil {
		return scoring.Versioned{}, fmt.Errorf("save scoring model of %s: %w", tenant, err)
	}
	s.current.forget(tenant)
	return s.Current(ctx, tenant)
}

// ScoreAlert is one decided alert of a profile.
type ScoreAlert struct {
	Tenant     string
	CustomerID string
	Alert      scoring.Alert
	Engagement float64
	Churn      float64
	Model      int
	ScoredOn   scoring.Day
}

// RecordAlerts appends the decided alerts to their profiles' streams in
// one call. Each event's id derives from the profile, the kind and its
// sequence number, so deciding the same alert again (after a crash before
// the alert state was saved) appends nothing new.
func RecordAlerts(ctx context.Context, store eventstore.Store, alerts []ScoreAlert) error {
	if len(alerts) == 0 {
		return nil
	}
	byStream := map[string]int{}
	var appends []eventstore.Append
	for _, a := range alerts {
		stream := eventstore.StreamName(customer.Category, a.CustomerID)
		var typ string
		var data any
		on := a.ScoredOn.Time().Format(time.DateOnly)
		switch a.Alert.Kind {
		case scoring.ChurnRaised, scoring.ChurnCleared:
			typ = customer.TypeChurnRiskRaised
			if a.Alert.Kind == scoring.ChurnCleared {
				typ = customer.TypeChurnRiskCleared
			}
			data = customer.ChurnRisk{ChurnRiskScore: a.Churn, Threshold: a.Alert.Threshold, EngagementScore: a.Engagement,
				ModelVersion: a.Model, ScoredOn: on, Seq: a.Alert.Seq}
		case scoring.EngagementDropped:
			typ = customer.TypeEngagementDropped
			data = customer.EngagementDropped{From: a.Alert.From, To: a.Alert.Score, Drop: a.Alert.Threshold,
				ModelVersion: a.Model, ScoredOn: on, Seq: a.Alert.Seq}
		default:
			return fmt.Errorf("record alerts: unknown kind %q", a.Alert.Kind)
		}
		b, err := json.Marshal(data)
		if err != nil {
			return err
		}
		seqKind := a.Alert.Kind
		if seqKind == scoring.ChurnCleared {
			seqKind = scoring.ChurnRaised // crossings are numbered together
		}
		e := eventstore.EventData{
			ID:         eventstore.DeriveID(a.Tenant, stream, seqKind, fmt.Sprint(a.Alert.Seq)),
			Type:       typ,
			Data:       b,
			Metadata:   eventstore.Metadata{TenantID: a.Tenant, Actor: "crm:scoring", CorrelationID: "scores-" + on},
			OccurredAt: time.Now().UTC(),
		}
		i, ok := byStream[stream]
		if !ok {
			i = len(appends)
			byStream[stream] = i
			appends = append(appends, eventstore.Append{Stream: stream, Expected: eventstore.Any})
		}
		appends[i].Events = append(appends[i].Events, e)
	}
	if _, err := store.AppendMulti(ctx, appends); err != nil {
		return fmt.Errorf("record %d score alerts: %w", len(alerts), err)
	}
	return nil
}
