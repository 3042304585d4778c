package projections

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/eventstore"
)

// TestRebuildWhileServing rebuilds one of two identical projectors while
// events keep arriving and queries keep reading its tables, then compares
// its tables with its twin's, which was never rebuilt.
func TestRebuildWhileServing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	createCounterTables(t, e.pool, "live")
	createCounterTables(t, e.pool, "twin")
	members := e.appendEvents(1500)
	rt := e.runtime([]Projector{&counter{name: "live"}, &counter{name: "twin"}}, WithBatchSize(200))
	e.run(rt)
	e.waitCaughtUp(rt, "live")
	before := catalog(t, e, "live_counts", "live_applied")

	ctx, stop := context.WithCancel(e.ctx)
	var wg sync.WaitGroup
	// Commands go on appending (members and e.last are the writer's until
	// wg.Wait) ...
	wg.Go(func() {
		for ctx.Err() == nil {
			members += e.appendEvents(14)
			sleep(ctx, 5*time.Millisecond)
		}
	})
	var reads, readErrors int
	var lastRows int
	// ... and queries go on reading, as the API's tenant role.
	wg.Go(func() {
		for ctx.Err() == nil {
			var rows int
			err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, `SELECT set_config('role', 'crm_tenant', true), set_config('crm.tenant_id', 'club-1', true)`); err != nil {
					return err
				}
				return tx.QueryRow(ctx, `SELECT count(*) FROM live_applied`).Scan(&rows)
			})
			if ctx.Err() != nil {
				return
			}
			reads++
			if err != nil {
				readErrors++
				t.Errorf("query during rebuild: %v", err)
				continue
			}
			assert.GreaterOrEqual(t, rows, lastRows, "a query saw the read model go back")
			lastRows = rows
		}
	})

	require.NoError(t, rt.Rebuild(e.ctx, "live"))
	time.Sleep(100 * time.Millisecond) // keep writing a little after the swap
	stop()
	wg.Wait()
	assert.Positive(t, reads)
	assert.Zero(t, readErrors)

	e.waitCaughtUp(rt, "live")
	e.waitCaughtUp(rt, "twin")
	e.requireCounted("live", members)
	assert.Equal(t, e.dump("twin_counts"), e.dump("live_counts"))
	assert.Equal(t, e.dump("twin_applied"), e.dump("live_applied"))

	// The swap left the schema as it was and cleaned up after itself.
	assert.Equal(t, before, catalog(t, e, "live_counts", "live_applied"))
	var leftovers int
	require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT (SELECT count(*) FROM pg_class WHERE relname LIKE 'live%\_rebuild%' OR relname LIKE 'live%\_retired%')
  + (SELECT count(*) FROM projection_rebuilds)`).Scan(&leftovers))
	assert.Zero(t, leftovers)
	var rebuilt *time.Time
	require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT rebuilt_at FROM projection_checkpoints WHERE name = 'live'`).Scan(&rebuilt))
	assert.NotNil(t, rebuilt)
}

// TestRebuildCopiesSchema rebuilds a table with the trimmings a read model
// may have and compares the catalog before and after.
func TestRebuildCopiesSchema(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, err := e.pool.Exec(e.ctx, `
CREATE TABLE notes (
    id        bigserial PRIMARY KEY,
    tenant_id text NOT NULL,
    stream    text NOT NULL,
    body      text CHECK (body <> ''),
    UNIQUE (tenant_id, stream, id)
) WITH (fillfactor = 70);
CREATE INDEX notes_partial ON notes (stream) WHERE body IS NOT NULL;
COMMENT ON TABLE notes IS 'notes, it''s a test';
COMMENT ON COLUMN notes.body IS 'the text';
SELECT crm_enable_tenancy('notes');
GRANT SELECT ON notes TO PUBLIC;`)
	require.NoError(t, err)
	e.appendEvents(40)
	p := &notes{}
	rt := e.runtime([]Projector{p})
	e.run(rt)
	e.waitCaughtUp(rt, "notes")
	before := catalog(t, e, "notes")

	require.NoError(t, rt.Rebuild(e.ctx, "notes"))
	assert.Equal(t, before, catalog(t, e, "notes"))

	// The serial column's sequence went over to the new table.
	_, err = e.pool.Exec(e.ctx, `INSERT INTO notes (tenant_id, stream, body) VALUES ('club-0', 'x', 'hand-written')`)
	require.NoError(t, err)
	var owner string
	require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT pg_get_serial_sequence('notes', 'id')`).Scan(&owner))
	assert.Equal(t, "public.notes_id_seq", owner)
}

func TestFailedRebuildLeavesTheLiveModel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	createCounterTables(t, e.pool, "keep")
	e.appendEvents(200)
	var broken atomic.Bool
	p := &counter{name: "keep", fail: func(ev eventstore.Event) error {
		if broken.Load() && eventIndex(ev) == 150 {
			return errors.New("scoring bug")
		}
		return nil
	}}
	rt := e.runtime([]Projector{p})
	e.run(rt)
	e.waitCaughtUp(rt, "keep")
	counts, applied, cp := e.dump("keep_counts"), e.dump("keep_applied"), e.checkpoint("keep")

	broken.Store(true)
	err := rt.Rebuild(e.ctx, "keep")
	require.ErrorContains(t, err, "scoring bug")
	assert.Equal(t, counts, e.dump("keep_counts"))
	assert.Equal(t, applied, e.dump("keep_applied"))
	assert.Equal(t, cp, e.checkpoint("keep"))
	var leftovers int
	require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT (SELECT count(*) FROM pg_class WHERE relname LIKE 'keep%\_rebuild')
  + (SELECT count(*) FROM projection_rebuilds)`).Scan(&leftovers))
	assert.Zero(t, leftovers)
}

func TestRebuildRefusesASecondRebuild(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rt := e.runtime([]Projector{&counter{name: "busy"}})
	conn, err := pgx.Connect(e.ctx, e.dsn)
	require.NoError(t, err)
	defer conn.Close(e.ctx)
	_, err = conn.Exec(e.ctx, `SELECT pg_advisory_lock($1::int4, $2::int4)`, rebuildLockSpace, lockKey("busy"))
	require.NoError(t, err)
	assert.ErrorIs(t, rt.Rebuild(e.ctx, "busy"), ErrRebuildInProgress)
	assert.ErrorIs(t, rt.Rebuild(e.ctx, "nope"), ErrUnknownProjector)
	none, err := New(e.pool, e.store, []Projector{&aliasProjector{counter{name: "publisher"}, ""}})
	require.NoError(t, err)
	assert.ErrorIs(t, none.Rebuild(e.ctx, "publisher"), ErrNoReadModel)
}

// notes projects events into a table with a serial key.
type notes struct{}

func (notes) Name() string              { return "notes" }
func (notes) Tables() []string          { return []string{"notes"} }
func (notes) Filter() eventstore.Filter { return eventstore.Filter{Categories: []string{"member"}} }

func (notes) Apply(ctx context.Context, tx pgx.Tx, tables Tables, events []eventstore.Event) error {
	for _, e := range events {
		_, err := tx.Exec(ctx, fmt.Sprintf(`INSERT INTO %s (tenant_id, stream, body) VALUES ($1, $2, $3)`, tables.Ident("notes")),
			e.Metadata.TenantID, e.Stream, string(e.Data))
		if err != nil {
			return err
		}
	}
	return nil
}

// catalog describes tables as the catalog sees them, with nothing that
// changes when a table is recreated (oids), so that a rebuild must leave it
// unchanged.
func catalog(t *testing.T, e *env, tables ...string) string {
	t.Helper()
	var s string
	err := e.pool.QueryRow(e.ctx, `
SELECT jsonb_agg(jsonb_build_object(
    'table', c.relname,
    'options', c.reloptions,
    'acl', c.relacl::text,
    'rls', c.relrowsecurity,
    'comment', obj_description(c.oid, 'pg_class'),
    'columns', (SELECT jsonb_agg(jsonb_build_array(a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                    pg_get_expr(d.adbin, d.adrelid), col_description(c.oid, a.attnum)) ORDER BY a.attnum)
                FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
    'indexes', (SELECT jsonb_agg(pg_get_indexdef(x.indexrelid) ORDER BY pg_get_indexdef(x.indexrelid)) FROM pg_index x WHERE x.indrelid = c.oid),
    'constraints', (SELECT jsonb_agg(jsonb_build_array(conname, pg_get_constraintdef(oid)) ORDER BY conname)
                    FROM pg_constraint WHERE conrelid = c.oid),
    'policies', (SELECT jsonb_agg(jsonb_build_array(policyname, roles, cmd, qual, with_check) ORDER BY policyname)
                 FROM pg_policies WHERE tablename = c.relname)
) ORDER BY c.relname)::text
FROM pg_class c WHERE c.relname = ANY($1) AND c.relkind = 'r'`, tables).Scan(&s)
	require.NoError(t, err)
	return s
}
