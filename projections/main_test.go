package projections

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/adapters/postgres/pgtest"
	"github.com/clubcrm/crm/eventstore"
	"github.com/clubcrm/crm/eventstore/postgres"
)

// helperEnv makes the test binary act as a projector process (see
// runHelper) instead of running tests, the way Go's os/exec tests re-exec
// themselves.
const helperEnv = "CRM_PROJECTIONS_TEST_HELPER"

// visibilityTimeout bounds waits for events to reach a projector. Events
// turn visible only once every older transaction on the server has ended,
// other tests' and other packages' included, which under a parallel
// `go test ./...` occasionally takes seconds.
const visibilityTimeout = 30 * time.Second

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(runHelper())
	}
	os.Exit(m.Run())
}

// counter is the test projector. Per event it bumps a per-stream counter
// and records the event id with how often it was applied: a double
// application shows as times > 1 and in the counters, a skipped event as a
// missing row. delay slows Apply down per event, half way through its
// writes, so that a kill lands mid-batch with writes in flight.
type counter struct {
	name     string
	delay    time.Duration
	fail     func(eventstore.Event) error // fails the batch when it answers an error
	announce io.Writer                    // told "apply N" as each batch starts
}

func (c *counter) Name() string     { return c.name }
func (c *counter) Tables() []string { return []string{c.name + "_counts", c.name + "_applied"} }
func (c *counter) Filter() eventstore.Filter {
	return eventstore.Filter{Categories: []string{"member"}}
}

func (c *counter) Apply(ctx context.Context, tx pgx.Tx, tables Tables, events []eventstore.Event) error {
	if c.announce != nil {
		fmt.Fprintf(c.announce, "apply %d\n", len(events))
	}
	applied := fmt.Sprintf(`INSERT INTO %s (event_id, tenant_id, stream, version, commit_position, prepare_position)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (event_id) DO UPDATE SET times = %[1]s.times + 1`, tables.Ident(c.name+"_applied"))
	counts := fmt.Sprintf(`INSERT INTO %s (tenant_id, stream, n, last_version) VALUES ($1, $2, 1, $3)
ON CONFLICT (tenant_id, stream) DO UPDATE SET n = %[1]s.n + 1, last_version = excluded.last_version`, tables.Ident(c.name+"_counts"))
	send := func(events []eventstore.Event) error {
		b := &pgx.Batch{}
		for _, e := range events {
			if c.fail != nil {
				if err := c.fail(e); err != nil {
					return err
				}
			}
			b.Queue(applied, e.ID, e.Metadata.TenantID, e.Stream, int64(e.Version), int64(e.Position.Commit), int64(e.Position.Prepare))
			b.Queue(counts, e.Metadata.TenantID, e.Stream, int64(e.Version))
		}
		return tx.SendBatch(ctx, b).Close()
	}
	half := len(events) / 2
	if err := send(events[:half]); err != nil {
		return err
	}
	if c.delay > 0 && !sleep(ctx, c.delay*time.Duration(len(events))) {
		return ctx.Err()
	}
	return send(events[half:])
}

// createCounterTables creates the counter projector's read model; it has a
// tenant_id column, so it sits under row-level security like real ones.
func createCounterTables(t testing.TB, pool *pgxpool.Pool, name string) {
	t.Helper()
	counts, applied := pgx.Identifier{name + "_counts"}.Sanitize(), pgx.Identifier{name + "_applied"}.Sanitize()
	sql := fmt.Sprintf(`
CREATE TABLE %[1]s (
    tenant_id    text   NOT NULL,
    stream       text   NOT NULL,
    n            bigint NOT NULL,
    last_version bigint NOT NULL,
    PRIMARY KEY (tenant_id, stream)
);
SELECT crm_enable_tenancy('%[1]s');
CREATE TABLE %[2]s (
    event_id         uuid   PRIMARY KEY,
    tenant_id        text   NOT NULL,
    stream           text   NOT NULL,
    version          bigint NOT NULL,
    commit_position  bigint NOT NULL,
    prepare_position bigint NOT NULL,
    times            int    NOT NULL DEFAULT 1
);
CREATE INDEX %[3]s ON %[2]s (stream, version);
SELECT crm_enable_tenancy('%[2]s');`, counts, applied, pgx.Identifier{name + "_applied_by_stream"}.Sanitize())
	_, err := pool.Exec(context.Background(), sql)
	require.NoError(t, err)
}

// env is one test's database, event store and logger.
type env struct {
	t     testing.TB
	ctx   context.Context
	pool  *pgxpool.Pool
	dsn   string
	store *postgres.Store
	log   *slog.Logger
	last  eventstore.Position // of the newest event appended
}

func newEnv(t testing.TB) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	pool, dsn := pgtest.New(t)
	store := postgres.New(pool, postgres.WithPollInterval(200*time.Millisecond))
	t.Cleanup(func() { store.Close() })
	return &env{t: t, ctx: ctx, pool: pool, dsn: dsn, store: store, log: testLogger(t)}
}

// testLogger logs into a buffer that is shown only when the test fails.
func testLogger(t testing.TB) *slog.Logger {
	buf := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("runtime log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runtime answers a Runtime for projectors with test-friendly timings.
func (e *env) runtime(projectors []Projector, opts ...Option) *Runtime {
	e.t.Helper()
	return e.runtimeOn(e.store, projectors, opts...)
}

// runtimeOn is runtime on another view of the test's store.
func (e *env) runtimeOn(store eventstore.Store, projectors []Projector, opts ...Option) *Runtime {
	e.t.Helper()
	opts = append([]Option{
		WithLogger(e.log),
		WithElectionInterval(200 * time.Millisecond),
		WithRetryBackoff(10*time.Millisecond, 100*time.Millisecond),
		WithProgress(io.Discard),
	}, opts...)
	rt, err := New(e.pool, store, projectors, opts...)
	require.NoError(e.t, err)
	e.t.Cleanup(rt.Close)
	return rt
}

// run runs rt until the test ends.
func (e *env) run(rt *Runtime) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("Run: %v", err)
		}
	})
}

// appendEvents appends n events in chunks: six in seven to "member"
// streams, which the counter projector follows, the rest to "other"
// streams, which it skips. It answers how many "member" events it wrote.
func (e *env) appendEvents(n int) int {
	e.t.Helper()
	members := 0
	for start := 0; start < n; start += 50 {
		byStream := map[string][]eventstore.EventData{}
		var order []string
		for i := start; i < min(start+50, n); i++ {
			category := "member"
			if i%7 == 6 {
				category = "other"
			} else {
				members++
			}
			stream := eventstore.StreamName(category, strconv.Itoa(i%23))
			data, _ := json.Marshal(map[string]int{"i": i})
			if _, ok := byStream[stream]; !ok {
				order = append(order, stream)
			}
			byStream[stream] = append(byStream[stream], eventstore.EventData{
				ID:       uuid.New(),
				Type:     "Touched",
				Data:     data,
				Metadata: eventstore.Metadata{TenantID: "club-" + strconv.Itoa(i%3)},
			})
		}
		var appends []eventstore.Append
		for _, s := range order {
			appends = append(appends, eventstore.Append{Stream: s, Expected: eventstore.Any, Events: byStream[s]})
		}
		res, err := e.store.AppendMulti(e.ctx, appends)
		require.NoError(e.t, err)
		for _, r := range res {
			if e.last.Less(r.Position) {
				e.last = r.Position
			}
		}
	}
	return members
}

// waitVisible waits until readers of the log see every event appended.
func (e *env) waitVisible() {
	e.t.Helper()
	require.Eventually(e.t, func() bool {
		head, err := e.store.Head(e.ctx)
		require.NoError(e.t, err)
		return !head.Less(e.last)
	}, visibilityTimeout, 5*time.Millisecond)
}

// eventIndex answers the sequence number appendEvents gave e.
func eventIndex(e eventstore.Event) int {
	var d struct{ I int }
	if err := json.Unmarshal(e.Data, &d); err != nil {
		return -1
	}
	return d.I
}

// waitCaughtUp waits until the projector has passed every event appended.
// (The head may not show them yet: events turn visible only once older
// transactions anywhere on the server have ended.)
func (e *env) waitCaughtUp(rt *Runtime, name string) {
	e.t.Helper()
	require.NoError(e.t, rt.WaitFor(e.ctx, name, e.last, visibilityTimeout))
}

// dump answers a table's full contents in a canonical form.
func (e *env) dump(table string) string {
	e.t.Helper()
	var s string
	err := e.pool.QueryRow(e.ctx, fmt.Sprintf(`SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY to_jsonb(t)::text), '[]')::text FROM %s t`,
		pgx.Identifier{table}.Sanitize())).Scan(&s)
	require.NoError(e.t, err)
	return s
}

// requireCounted checks the counter projector name applied members events,
// each exactly once.
func (e *env) requireCounted(name string, members int) {
	e.t.Helper()
	var rows, doubles, total int
	err := e.pool.QueryRow(e.ctx, fmt.Sprintf(`SELECT count(*), count(*) FILTER (WHERE times <> 1), (SELECT coalesce(sum(n), 0) FROM %s) FROM %s`,
		pgx.Identifier{name + "_counts"}.Sanitize(), pgx.Identifier{name + "_applied"}.Sanitize())).Scan(&rows, &doubles, &total)
	require.NoError(e.t, err)
	require.Equal(e.t, members, rows, "events applied")
	require.Zero(e.t, doubles, "events applied more than once")
	require.Equal(e.t, members, total, "sum of the counters")
}

func (e *env) checkpoint(name string) eventstore.Position {
	e.t.Helper()
	p, err := loadCheckpoint(e.ctx, e.pool, name)
	require.NoError(e.t, err)
	return p
}
