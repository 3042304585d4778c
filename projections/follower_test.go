package projections

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/eventstore"
)

// follower counts like counter, after checking in its own transaction that
// every event of its batch is already in the read model it follows.
type follower struct {
	counter
	after  []string
	behind atomic.Int64 // events applied before the followed read model had them
}

func (f *follower) After() []string { return f.after }

func (f *follower) Apply(ctx context.Context, tx pgx.Tx, tables Tables, events []eventstore.Event) error {
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.ID.String()
	}
	var missing int64
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM unnest($1::uuid[]) AS x(id)
WHERE NOT EXISTS (SELECT 1 FROM base_applied b WHERE b.event_id = x.id)`, ids).Scan(&missing); err != nil {
		return err
	}
	f.behind.Add(missing)
	return f.counter.Apply(ctx, tx, tables, events)
}

func TestFollowerWaitsForWhatItFollows(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	createCounterTables(t, e.pool, "base")
	createCounterTables(t, e.pool, "derived")
	members := e.appendEvents(300)

	// The followed projector is held back until released.
	var released atomic.Bool
	held := errors.New("held")
	base := &counter{name: "base", fail: func(eventstore.Event) error {
		if !released.Load() {
			return held
		}
		return nil
	}}
	derived := &follower{counter: counter{name: "derived"}, after: []string{"base"}}
	rt := e.runtime([]Projector{base, derived}, WithBatchSize(50), WithRetryBackoff(10*time.Millisecond, 50*time.Millisecond))
	e.run(rt)
	require.ErrorIs(t, rt.WaitFor(e.ctx, "derived", e.last, 500*time.Millisecond), ErrNotCaughtUp, "the follower waits while base is held")
	assert.Equal(t, eventstore.Start, e.checkpoint("derived"))

	released.Store(true)
	e.waitCaughtUp(rt, "derived")
	e.requireCounted("derived", members)
	assert.Zero(t, derived.behind.Load(), "every batch saw the read model it follows holding its events")
}

func TestNewRejectsAFollowerOfNothing(t *testing.T) {
	t.Parallel()
	_, err := New(nil, nil, []Projector{&follower{counter: counter{name: "a"}, after: []string{"missing"}}})
	assert.ErrorContains(t, err, "follows missing")
	_, err = New(nil, nil, []Projector{&follower{counter: counter{name: "a"}, after: []string{"a"}}})
	assert.Error(t, err, "a projector cannot follow itself")
}
