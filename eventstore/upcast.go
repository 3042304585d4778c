package eventstore

import (
	"context"
	"fmt"
	"sync"

	"github.com/segmentio/encoding/json"
)

// An Upcaster rewrites an event's data from one schema version to the next.
// Events are never rewritten in the log: old shapes are upcast as they are
// read, so handlers and projections only ever see the newest shape.
type Upcaster func(data json.RawMessage) (json.RawMessage, error)

type upcastKey struct {
	eventType string
	from      int
}

// Upcasters is a registry of upcasters by event type and schema version. An
// event whose Metadata.SchemaVersion is 0 counts as version 1. Register
// everything before the registry is used; it is safe for concurrent reads.
type Upcasters struct {
	mu     sync.RWMutex
	steps  map[upcastKey]Upcaster
	latest map[string]int
}

// NewUpcasters answers an empty registry.
func NewUpcasters() *Upcasters {
	return &Upcasters{steps: make(map[upcastKey]Upcaster), latest: make(map[string]int)}
}

// Register adds the step that turns version from of eventType into version
// from+1. It panics on a second step for the same version or a version
// below 1: both are programming errors found at start-up.
func (u *Upcasters) Register(eventType string, from int, fn Upcaster) *Upcasters {
	if from < 1 || eventType == "" || fn == nil {
		panic(fmt.Sprintf("eventstore: bad upcaster registration %q from version %d", eventType, from))
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	k := upcastKey{eventType, from}
	if _, dup := u.steps[k]; dup {
		panic(fmt.Sprintf("eventstore: second upcaster for %s version %d", eventType, from))
	}
	u.steps[k] = fn
	u.latest[eventType] = max(u.latest[eventType], from+1)
	return u
}

// Latest answers the newest schema version of eventType: 1 when it has no
// upcasters.
func (u *Upcasters) Latest(eventType string) int {
	u.mu.RLock()
	defer u.mu.RUnlock()
	if v, ok := u.latest[eventType]; ok {
		return v
	}
	return 1
}

// Upcast answers e brought to the newest version of its type, with
// Metadata.SchemaVersion set to that version. Events of types without
// upcasters come back unchanged.
func (u *Upcasters) Upcast(e Event) (Event, error) {
	u.mu.RLock()
	defer u.mu.RUnlock()
	v := max(e.Metadata.SchemaVersion, 1)
	step, ok := u.steps[upcastKey{e.Type, v}]
	if !ok {
		return e, nil
	}
	data := e.Data
	for ok {
		var err error
		if data, err = step(data); err != nil {
			return Event{}, fmt.Errorf("upcast %s %s from version %d: %w", e.Type, e.ID, v, err)
		}
		if !json.Valid(data) {
			return Event{}, fmt.Errorf("upcast %s %s from version %d: %w: result is not JSON", e.Type, e.ID, v, ErrInvalid)
		}
		v++
		step, ok = u.steps[upcastKey{e.Type, v}]
	}
	e.Data = data
	e.Metadata.SchemaVersion = v
	return e, nil
}

func (u *Upcasters) upcastAll(events []Event) ([]Event, error) {
	for i, e := range events {
		up, err := u.Upcast(e)
		if err != nil {
			return nil, err
		}
		events[i] = up
	}
	return events, nil
}

// stamp answers events of upcast types with a schema version of 0 set to
// the newest version of their type: code that appends writes the current
// shape, and without the stamp a reader would take it for version 1 and
// upcast it again. The caller's slice is left alone.
func (u *Upcasters) stamp(events []EventData) []EventData {
	u.mu.RLock()
	defer u.mu.RUnlock()
	var out []EventData
	for i, e := range events {
		latest, ok := u.latest[e.Type]
		if e.Metadata.SchemaVersion != 0 || !ok {
			continue
		}
		if out == nil {
			out = append([]EventData(nil), events...)
		}
		out[i].Metadata.SchemaVersion = latest
	}
	if out == nil {
		return events
	}
	return out
}

// Upcasting wraps store so that every read (streams, the global log and
// subscriptions) answers events upcast by reg, and every append stamps
// events that carry no schema version with their type's newest. The
// wrapper keeps whichever of StreamsReader and CategoryReader the backend
// has, and only those.
func Upcasting(store Store, reg *Upcasters) Store {
	u := &upcastingStore{Store: store, reg: reg}
	streams, many := store.(StreamsReader)
	category, byStream := store.(CategoryReader)
	switch {
	case many && byStream:
		return &struct {
			*upcastingStore
			upcastingStreams
			upcastingCategory
		}{u, upcastingStreams{streams, reg}, upcastingCategory{category, reg}}
	case many:
		return &struct {
			*upcastingStore
			upcastingStreams
		}{u, upcastingStreams{streams, reg}}
	case byStream:
		return &struct {
			*upcastingStore
			upcastingCategory
		}{u, upcastingCategory{category, reg}}
	}
	return u
}

// upcastingStreams is the ReadStreams of an upcasting store whose backend
// reads many streams at once.
type upcastingStreams struct {
	streams StreamsReader
	reg     *Upcasters
}

func (s upcastingStreams) ReadStreams(ctx context.Context, from map[string]uint64) (map[string][]Event, error) {
	byStream, err := s.streams.ReadStreams(ctx, from)
	if err != nil {
		return nil, err
	}
	for stream, events := range byStream {
		if byStream[stream], err = s.reg.upcastAll(events); err != nil {
			return nil, err
		}
	}
	return byStream, nil
}

// upcastingCategory is the ReadCategory of an upcasting store whose
// backend reads categories stream by stream.
type upcastingCategory struct {
	category CategoryReader
	reg      *Upcasters
}

func (s upcastingCategory) ReadCategory(ctx context.Context, category string, upTo Position, each func(Event) error) error {
	return s.category.ReadCategory(ctx, category, upTo, func(e Event) error {
		e, err := s.reg.Upcast(e)
		if err != nil {
			return err
		}
		return each(e)
	})
}

type upcastingStore struct {
	Store
	reg *Upcasters
}

func (s *upcastingStore) Append(ctx context.Context, stream string, expected Expected, events ...EventData) (AppendResult, error) {
	return s.Store.Append(ctx, stream, expected, s.reg.stamp(events)...)
}

func (s *upcastingStore) AppendMulti(ctx context.Context, appends []Append) ([]AppendResult, error) {
	stamped := make([]Append, len(appends))
	for i, a := range appends {
		a.Events = s.reg.stamp(a.Events)
		stamped[i] = a
	}
	return s.Store.AppendMulti(ctx, stamped)
}

func (s *upcastingStore) ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]Event, error) {
	events, err := s.Store.ReadStream(ctx, stream, from, limit)
	if err != nil {
		return nil, err
	}
	return s.reg.upcastAll(events)
}

func (s *upcastingStore) ReadStreamBackward(ctx context.Context, stream string, from uint64, limit int) ([]Event, error) {
	events, err := s.Store.ReadStreamBackward(ctx, stream, from, limit)
	if err != nil {
		return nil, err
	}
	return s.reg.upcastAll(events)
}

func (s *upcastingStore) ReadAll(ctx context.Context, from Position, limit int) ([]Event, error) {
	events, err := s.Store.ReadAll(ctx, from, limit)
	if err != nil {
		return nil, err
	}
	return s.reg.upcastAll(events)
}

func (s *upcastingStore) Subscribe(ctx context.Context, from Position, filter Filter, batchSize int) (Subscription, error) {
	sub, err := s.Store.Subscribe(ctx, from, filter, batchSize)
	if err != nil {
		return nil, err
	}
	return &upcastingSubscription{Subscription: sub, reg: s.reg}, nil
}

type upcastingSubscription struct {
	Subscription
	reg *Upcasters
	err error // a failed upcast, answered from then on
}

// Next answers the next batch upcast. A batch that fails to upcast has
// already moved the underlying subscription past it, so the failure sticks:
// the caller resubscribes from its checkpoint instead of skipping events.
func (s *upcastingSubscription) Next(ctx context.Context) (Batch, error) {
	if s.err != nil {
		return Batch{}, s.err
	}
	b, err := s.Subscription.Next(ctx)
	if err != nil {
		return Batch{}, err
	}
	if b.Events, err = s.reg.upcastAll(b.Events); err != nil {
		s.err = fmt.Errorf("subscription stopped at %s: %w", b.Position, err)
		return Batch{}, s.err
	}
	return b, nil
}
