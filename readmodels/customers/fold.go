package customers

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/eventstore"
	"github.com/clubcrm/crm/projections"
)

var _ projections.StreamFolder = Projector{}

// FoldStreams implements projections.StreamFolder: a customers row is the
// fold of its stream alone, so a rebuild that reads the log stream by
// stream writes each row once. duplicate_candidates is not: a pair flagged
// on one stream may be decided on another, so the fold keeps the events
// that touch it and Finish applies them in log order.
func (Projector) FoldStreams() projections.StreamFold { return &streamFold{} }

type streamFold struct {
	mu   sync.Mutex
	dups []reviewEvent
}

// reviewEvent is an event that changes duplicate_candidates.
type reviewEvent struct {
	pos eventstore.Position
	key streamKey
	v   any
	at  time.Time
}

// Apply implements projections.StreamFold.
func (f *streamFold) Apply(ctx context.Context, tx pgx.Tx, tables projections.Tables, events []eventstore.Event) error {
	var dups []reviewEvent
	profiles := map[streamKey]*customer.Profile{}
	changed, err := fold(profiles, events, func(k streamKey, e eventstore.Event, v any) {
		if reviews(v) {
			dups = append(dups, reviewEvent{pos: e.Position, key: k, v: v, at: e.RecordedAt})
		}
	})
	if err != nil {
		return err
	}
	if err := write(ctx, tx, tables, profiles, changed, nil); err != nil {
		return err
	}
	f.mu.Lock()
	f.dups = append(f.dups, dups...)
	f.mu.Unlock()
	return nil
}

// Finish implements projections.StreamFold.
func (f *streamFold) Finish(ctx context.Context, tx pgx.Tx, tables projections.Tables) error {
	slices.SortFunc(f.dups, func(a, b reviewEvent) int {
		switch {
		case a.pos.Less(b.pos):
			return -1
		case b.pos.Less(a.pos):
			return 1
		}
		return 0
	})
	var dups duplicateWrites
	for _, r := range f.dups {
		dups.note(r.key, r.v, r.at)
	}
	return write(ctx, tx, tables, nil, nil, &dups)
}
