package projections

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/eventstore"
	"github.com/clubcrm/crm/eventstore/postgres"
)

// folder is the counter projector with a stream-by-stream rebuild. Its
// fold refuses a stream that does not come whole, and writes each counts
// row with a plain INSERT, so a stream handed over twice fails the
// rebuild.
type folder struct {
	*counter
	folded   atomic.Int64 // events applied by folds
	finished atomic.Int64 // folds finished
}

func (f *folder) FoldStreams() StreamFold { return &folderFold{f} }

type folderFold struct{ f *folder }

func (ff *folderFold) Apply(ctx context.Context, tx pgx.Tx, tables Tables, events []eventstore.Event) error {
	c := ff.f.counter
	type key struct{ tenant, stream string }
	var order []key
	n, last := map[key]int64{}, map[key]uint64{}
	prev := map[string]uint64{}
	b := &pgx.Batch{}
	for _, e := range events {
		if e.Version != prev[e.Stream]+1 {
			return fmt.Errorf("%s comes cut: version %d after %d", e.Stream, e.Version, prev[e.Stream])
		}
		prev[e.Stream] = e.Version
		k := key{e.Metadata.TenantID, e.Stream}
		if _, ok := n[k]; !ok {
			order = append(order, k)
		}
		n[k]++
		last[k] = e.Version
		b.Queue(fmt.Sprintf(`INSERT INTO %s (event_id, tenant_id, stream, version, commit_position, prepare_position) VALUES ($1, $2, $3, $4, $5, $6)`,
			tables.Ident(c.name+"_applied")), e.ID, e.Metadata.TenantID, e.Stream, int64(e.Version), int64(e.Position.Commit), int64(e.Position.Prepare))
	}
	for _, k := range order {
		b.Queue(fmt.Sprintf(`INSERT INTO %s (tenant_id, stream, n, last_version) VALUES ($1, $2, $3, $4)`, tables.Ident(c.name+"_counts")),
			k.tenant, k.stream, n[k], int64(last[k]))
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return err
	}
	ff.f.folded.Add(int64(len(events)))
	return nil
}

func (ff *folderFold) Finish(context.Context, pgx.Tx, Tables) error {
	ff.f.finished.Add(1)
	return nil
}

// newFoldEnv runs a folder ("folded") and its twin counter over 600 events
// until the folder has caught up, and answers how many of them it counts.
func newFoldEnv(t *testing.T) (*env, *folder, *Runtime, int) {
	e := newEnv(t)
	createCounterTables(t, e.pool, "folded")
	createCounterTables(t, e.pool, "twin")
	members := e.appendEvents(600)
	f := &folder{counter: &counter{name: "folded"}}
	// Parts of about 15 events: streams (about 22 events) longer than a part.
	rt := e.runtime([]Projector{f, &counter{name: "twin"}}, WithBatchSize(3))
	e.run(rt)
	e.waitCaughtUp(rt, "folded")
	return e, f, rt, members
}

// TestRebuildFoldsStreams rebuilds a StreamFolder while events keep
// arriving: the streams (longer than a read, of several tenants) come
// whole, the events after the fold's end go through Apply in log order,
// and the tables come out as its never-rebuilt twin's.
func TestRebuildFoldsStreams(t *testing.T) {
	t.Parallel()
	e, f, rt, members := newFoldEnv(t)

	ctx, stop := context.WithCancel(e.ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			members += e.appendEvents(14)
			sleep(ctx, 20*time.Millisecond)
		}
	})
	require.NoError(t, rt.Rebuild(e.ctx, "folded"))
	stop()
	wg.Wait()

	e.waitCaughtUp(rt, "folded")
	e.waitCaughtUp(rt, "twin")
	e.requireCounted("folded", members)
	assert.Equal(t, e.dump("twin_counts"), e.dump("folded_counts"))
	assert.Equal(t, e.dump("twin_applied"), e.dump("folded_applied"))
	assert.GreaterOrEqual(t, f.folded.Load(), int64(600*6/7), "the log the rebuild began with was folded")
	assert.Equal(t, int64(1), f.finished.Load())
}

// cramped is the test's store on a server with too little temporary space
// for a category's sort, found after some streams were read and the fold
// has written some.
type cramped struct {
	*postgres.Store
	after  int
	folder *folder
}

func (c cramped) ReadCategory(ctx context.Context, category string, upTo eventstore.Position, each func(eventstore.Event) error) error {
	n := 0
	return c.Store.ReadCategory(ctx, category, upTo, func(e eventstore.Event) error {
		if n++; n <= c.after {
			return each(e)
		}
		for c.folder.folded.Load() == 0 && sleep(ctx, time.Millisecond) {
		}
		return fmt.Errorf("read category %s: %w", category, eventstore.ErrReadTooLarge)
	})
}

// TestRebuildFoldFallsBack rebuilds a StreamFolder on a store that runs out
// of room partway through the category: what the fold wrote is dropped and
// the log is read in its order, into the same tables as the twin's.
func TestRebuildFoldFallsBack(t *testing.T) {
	t.Parallel()
	e, f, live, members := newFoldEnv(t)

	rt := e.runtimeOn(cramped{Store: e.store, after: 100, folder: f}, []Projector{f}, WithBatchSize(3))
	require.NoError(t, rt.Rebuild(e.ctx, "folded"))

	e.waitCaughtUp(live, "twin")
	e.requireCounted("folded", members)
	assert.Equal(t, e.dump("twin_counts"), e.dump("folded_counts"))
	assert.Equal(t, e.dump("twin_applied"), e.dump("folded_applied"))
	assert.Positive(t, f.folded.Load(), "the fold began")
	assert.Zero(t, f.finished.Load(), "the fold never finished")
}
