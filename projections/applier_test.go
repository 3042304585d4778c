package projections

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/eventstore"
)

// sequence is a projector that is wrong unless it sees each tenant's events
// in log order: it keeps, per tenant, the position of the last event it
// applied and fails on one that goes back, and notes which backend applied
// them.
type sequence struct{}

func (sequence) Name() string              { return "sequence" }
func (sequence) Tables() []string          { return []string{"sequence"} }
func (sequence) Filter() eventstore.Filter { return eventstore.Filter{Categories: []string{"member"}} }

func (sequence) Apply(ctx context.Context, tx pgx.Tx, tables Tables, events []eventstore.Event) error {
	for _, e := range events {
		var back bool
		err := tx.QueryRow(ctx, fmt.Sprintf(`INSERT INTO %[1]s AS s (tenant_id, last_prepare, applied, backends)
VALUES ($1, $2, 1, ARRAY[pg_backend_pid()])
ON CONFLICT (tenant_id) DO UPDATE SET last_prepare = excluded.last_prepare, applied = s.applied + 1,
    backends = CASE WHEN pg_backend_pid() = ANY(s.backends) THEN s.backends ELSE s.backends || pg_backend_pid() END
RETURNING coalesce((SELECT o.last_prepare >= $2 FROM %[1]s o WHERE o.tenant_id = $1), false)`, tables.Ident("sequence")),
			e.Metadata.TenantID, int64(e.Position.Prepare)).Scan(&back)
		if err != nil {
			return err
		}
		if back {
			return fmt.Errorf("tenant %s: event at %s applied after a later one", e.Metadata.TenantID, e.Position)
		}
	}
	return nil
}

// createSequenceTable creates the sequence projector's table.
func createSequenceTable(t *testing.T, e *env) {
	t.Helper()
	_, err := e.pool.Exec(e.ctx, `CREATE TABLE sequence (
    tenant_id    text PRIMARY KEY,
    last_prepare bigint NOT NULL,
    applied      int NOT NULL,
    backends     int[] NOT NULL
)`)
	require.NoError(t, err)
}

// TestRebuildAppliesTenantsAtOnceInOrder rebuilds a read model of many
// tenants, whose events are interleaved in the log: the workers share the
// tenants out, and each tenant's events are still applied in log order,
// each once.
func TestRebuildAppliesTenantsAtOnceInOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	createSequenceTable(t, e)

	const tenants, perTenant = 12, 150
	for start := 0; start < tenants*perTenant; start += 120 {
		var appends []eventstore.Append
		for i := start; i < start+120; i++ {
			tenant := "club-" + strconv.Itoa(i%tenants)
			appends = append(appends, eventstore.Append{
				Stream: eventstore.StreamName("member", strconv.Itoa(i%5)), Expected: eventstore.Any,
				Events: []eventstore.EventData{{ID: uuid.New(), Type: "Touched", Data: []byte(`{}`), Metadata: eventstore.Metadata{TenantID: tenant}}},
			})
		}
		res, err := e.store.AppendMulti(e.ctx, appends)
		require.NoError(t, err)
		for _, r := range res {
			if e.last.Less(r.Position) {
				e.last = r.Position
			}
		}
	}
	e.waitVisible()
	// Small batches, so that the workers have many to overlap.
	rt := e.runtime([]Projector{sequence{}}, WithBatchSize(20))
	require.NoError(t, rt.Rebuild(e.ctx, "sequence"))

	rows, err := e.pool.Query(e.ctx, `SELECT tenant_id, applied, backends FROM sequence ORDER BY tenant_id`)
	require.NoError(t, err)
	backends := map[int32]bool{}
	n := 0
	for rows.Next() {
		var tenant string
		var applied int
		var pids []int32
		require.NoError(t, rows.Scan(&tenant, &applied, &pids))
		assert.Equal(t, perTenant, applied, tenant)
		assert.Len(t, pids, 1, "%s: one worker applies a tenant's events", tenant)
		for _, p := range pids {
			backends[p] = true
		}
		n++
	}
	require.NoError(t, rows.Err())
	assert.Equal(t, tenants, n)
	assert.Greater(t, len(backends), 1, "the tenants were shared out")
}

// TestTakenOverRebuildStops plays a rebuild whose lock connection dropped
// while a worker was applying a batch: a second rebuild waits for that
// batch before it replaces the shadow tables, and the first one's next
// batch finds the row no longer its own and stops.
func TestTakenOverRebuildStops(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	createCounterTables(t, e.pool, "taken")
	e.appendEvents(50)
	e.waitVisible()
	rt := e.runtime([]Projector{&counter{name: "taken"}})
	newRebuild := func() *rebuild {
		rn, err := rt.runner("taken")
		require.NoError(t, err)
		rb := &rebuild{rt: rt, rn: rn, shadow: Tables{}}
		for _, name := range rn.p.Tables() {
			rb.shadow[name] = name + shadowSuffix
		}
		return rb
	}
	first := newRebuild()
	require.NoError(t, first.prepare(e.ctx))
	events, err := e.store.ReadAll(e.ctx, eventstore.Start, 100)
	require.NoError(t, err)
	conn, err := e.pool.Acquire(e.ctx)
	require.NoError(t, err)
	defer conn.Release()
	w := &worker{rb: first, conn: conn}
	require.NoError(t, w.commit(e.ctx, first.filter(events[:10])))

	// A batch of the first rebuild in flight: its transaction holds the row.
	inFlight, err := e.pool.Begin(e.ctx)
	require.NoError(t, err)
	defer inFlight.Rollback(e.ctx) //nolint:errcheck // a no-op after commit
	_, err = inFlight.Exec(e.ctx, `SELECT FROM projection_rebuilds WHERE name = 'taken' FOR KEY SHARE`)
	require.NoError(t, err)

	second := newRebuild()
	prepared := make(chan error, 1)
	go func() { prepared <- second.prepare(e.ctx) }()
	select {
	case err := <-prepared:
		t.Fatalf("the second rebuild replaced the shadow tables under a batch in flight (err %v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	require.NoError(t, inFlight.Commit(e.ctx))
	require.NoError(t, <-prepared)
	assert.NotEqual(t, first.started, second.started)

	assert.ErrorIs(t, w.commit(e.ctx, first.filter(events[10:20])), errRebuildTakenOver)
	first.advance(events[:10], first.filter(events[:10]))
	assert.ErrorIs(t, first.record(e.ctx), errRebuildTakenOver)
	var rows int
	require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT count(*) FROM taken_applied_rebuild`).Scan(&rows))
	assert.Zero(t, rows, "the second rebuild's tables hold nothing of the first's")
}

// TestRebuildTakesWhatThePoolSpares rebuilds with pools that have fewer
// connections than the workers would take: a rebuild leaves two of them to
// the rest, and takes none beyond its first worker's when the others are in
// use, rather than waiting for them while holding one.
func TestRebuildTakesWhatThePoolSpares(t *testing.T) {
	for _, tc := range []struct {
		name      string
		maxConns  int32
		held      int // connections in use elsewhere while the rebuild starts
		heldUntil time.Duration
		workers   int
	}{
		{name: "enough", maxConns: 4, workers: 2},
		{name: "two left to the rest", maxConns: 3, workers: 1},
		// The first worker takes the last connection; the rebuild
		// records its position once the others come back.
		{name: "the pool in use", maxConns: 8, held: 7, heldUntil: time.Second, workers: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			createSequenceTable(t, e)
			e.appendEvents(200)
			e.waitVisible()

			cfg := e.pool.Config().Copy()
			cfg.MaxConns = tc.maxConns
			pool, err := pgxpool.NewWithConfig(e.ctx, cfg)
			require.NoError(t, err)
			t.Cleanup(pool.Close)
			for range tc.held {
				conn, err := pool.Acquire(e.ctx)
				require.NoError(t, err)
				time.AfterFunc(tc.heldUntil, conn.Release)
			}
			rt, err := New(pool, e.store, []Projector{sequence{}}, WithLogger(e.log), WithProgress(io.Discard), WithBatchSize(10))
			require.NoError(t, err)
			t.Cleanup(rt.Close)
			require.NoError(t, rt.Rebuild(e.ctx, "sequence"))

			var backends, applied int
			require.NoError(t, e.pool.QueryRow(e.ctx,
				`SELECT count(DISTINCT b), (SELECT sum(applied) FROM sequence) FROM sequence, unnest(backends) b`).Scan(&backends, &applied))
			assert.Equal(t, tc.workers, backends, "workers")
			assert.Positive(t, applied)
		})
	}
}
