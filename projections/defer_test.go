package projections

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/eventstore"
)

// deferring is the counter projector with its by-stream index (which its
// Apply never reads through) deferred.
type deferring struct {
	*counter
	indexes []string
}

func (d deferring) DeferredIndexes() []string { return d.indexes }

// TestRebuildDefersIndexes rebuilds a projector that defers an index: the
// shadow table goes without it while filling, and the swapped-in table has
// it again, under its old name, holding every row.
func TestRebuildDefersIndexes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	createCounterTables(t, e.pool, "deferred")
	createCounterTables(t, e.pool, "twin")
	members := e.appendEvents(700)
	var sawIndexes []int
	c := &counter{name: "deferred"}
	p := deferring{counter: c, indexes: []string{"deferred_applied_by_stream"}}
	rt := e.runtime([]Projector{p, &counter{name: "twin"}}, WithBatchSize(100))
	e.run(rt)
	e.waitCaughtUp(rt, "deferred")
	before := catalog(t, e, "deferred_counts", "deferred_applied")

	var mu sync.Mutex // the rebuild's workers apply at once
	c.fail = func(eventstore.Event) error {
		mu.Lock()
		defer mu.Unlock()
		if len(sawIndexes) > 0 {
			return nil
		}
		var n int
		if err := e.pool.QueryRow(e.ctx, `SELECT count(*) FROM pg_indexes WHERE tablename = 'deferred_applied_rebuild'`).Scan(&n); err == nil {
			sawIndexes = append(sawIndexes, n)
		}
		return nil
	}
	require.NoError(t, rt.Rebuild(e.ctx, "deferred"))
	c.fail = nil

	require.NotEmpty(t, sawIndexes, "the rebuild applied nothing")
	assert.Equal(t, 1, sawIndexes[0], "while filling, the shadow table has its primary key only")
	assert.Equal(t, before, catalog(t, e, "deferred_counts", "deferred_applied"))
	e.waitCaughtUp(rt, "deferred")
	e.waitCaughtUp(rt, "twin")
	e.requireCounted("deferred", members)
	assert.Equal(t, e.dump("twin_applied"), e.dump("deferred_applied"))
}

// TestRebuildRefusesBadDeferrals refuses to defer an index that enforces
// uniqueness, or one the projector's tables do not have, and leaves the
// live read model as it was.
func TestRebuildRefusesBadDeferrals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, index, want string
	}{
		{"primary key", "bad_applied_pkey", "enforces uniqueness"},
		{"unknown", "no_such_index", "not an index of the projector's tables"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			createCounterTables(t, e.pool, "bad")
			e.appendEvents(50)
			rt := e.runtime([]Projector{deferring{counter: &counter{name: "bad"}, indexes: []string{tc.index}}})
			before := catalog(t, e, "bad_counts", "bad_applied")
			err := rt.Rebuild(e.ctx, "bad")
			require.ErrorContains(t, err, tc.want)
			assert.Equal(t, before, catalog(t, e, "bad_counts", "bad_applied"))
		})
	}
}
