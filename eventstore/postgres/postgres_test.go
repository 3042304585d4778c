package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/adapters/postgres/pgtest"
	"github.com/clubcrm/crm/eventstore"
	"github.com/clubcrm/crm/eventstore/storetest"
)

// newPool answers a pool on a fresh database with room for maxConns
// transactions open at once (the default pool has as few as four).
func newPool(t testing.TB, maxConns int32) *pgxpool.Pool {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	cfg, err := pgxpool.ParseConfig(dsn)
	require.NoError(t, err)
	cfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

func testEvent(n int) eventstore.EventData {
	return eventstore.EventData{
		ID:         uuid.New(),
		Type:       "Tested",
		Data:       json.RawMessage(fmt.Sprintf(`{"n":%d}`, n)),
		Metadata:   eventstore.Metadata{TenantID: "t1"},
		OccurredAt: time.Now(),
	}
}

var errAbort = errors.New("aborted on purpose")

// TestConformanceCopy runs the suite with every append written by COPY, the
// path large appends take.
func TestConformanceCopy(t *testing.T) {
	storetest.Run(t, func(t *testing.T) eventstore.Store {
		pool, _ := pgtest.New(t)
		s := New(pool)
		s.copyFrom = 1
		return s
	})
}

// TestGapSafety holds append transactions open for random times between
// their inserts and their commits, rolls some back, and rolls back raw
// inserts too, while a subscription follows the log: it must see every
// committed event exactly once and never a rolled-back one. Ordering by seq
// alone fails this test: seq values are taken at insert, and a transaction
// holding a low one commits after others holding higher ones.
func TestGapSafety(t *testing.T) {
	t.Parallel()
	const writers, appendsEach, rawWriters, rawEach = 24, 60, 4, 25
	pool := newPool(t, writers+rawWriters+4)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	s := New(pool, WithPollInterval(200*time.Millisecond), WithTailSize(64))
	defer s.Close()
	s.copyFrom = 3 // appends of 1 to 4 events: both write paths
	s.beforeCommit = func(context.Context) error {
		time.Sleep(time.Duration(rand.IntN(8000)) * time.Microsecond)
		if rand.IntN(10) == 0 {
			return errAbort
		}
		return nil
	}

	sub, err := s.Subscribe(ctx, eventstore.Start, eventstore.Filter{}, 100)
	require.NoError(t, err)
	defer sub.Close()

	var (
		mu         sync.Mutex
		committed  = map[uuid.UUID]bool{}
		rolledBack = map[uuid.UUID]bool{}
		wg         sync.WaitGroup
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Two streams of its own, appended to at exact versions (the
			// one-round-trip path), and one shared by all at any version.
			streams := []string{fmt.Sprintf("gap-%d.a", w), fmt.Sprintf("gap-%d.b", w), "gap-shared"}
			versions := make([]uint64, 2)
			for i := range appendsEach {
				batch := make([]eventstore.EventData, 1+rand.IntN(4))
				for j := range batch {
					batch[j] = testEvent(w*10000 + i*10 + j)
				}
				k := rand.IntN(len(streams))
				expected := eventstore.Any
				if k < 2 {
					expected = eventstore.Exact(versions[k])
				}
				res, err := s.Append(ctx, streams[k], expected, batch...)
				if err == nil && k < 2 {
					versions[k] = res.Version
				}
				mu.Lock()
				for _, e := range batch {
					switch {
					case err == nil:
						committed[e.ID] = true
					case errors.Is(err, errAbort):
						rolledBack[e.ID] = true
					}
				}
				mu.Unlock()
				if err != nil && !errors.Is(err, errAbort) {
					t.Errorf("append: %v", err)
					return
				}
			}
		}()
	}
	// Raw inserts that bypass the store and always roll back, after holding
	// their row (and a seq value) for a while.
	for w := range rawWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rawEach {
				id := uuid.New()
				mu.Lock()
				rolledBack[id] = true
				mu.Unlock()
				tx, err := pool.Begin(ctx)
				if err != nil {
					t.Errorf("begin: %v", err)
					return
				}
				_, err = tx.Exec(ctx, `INSERT INTO events (id, stream, version, type, data, metadata, tenant_id, occurred_at)
VALUES ($1, $2, 1, 'Raw', '{}', '{"tenantId":"t1"}', 't1', now())`, id, fmt.Sprintf("raw-%d.%d", w, i))
				if err == nil {
					time.Sleep(time.Duration(rand.IntN(10)) * time.Millisecond)
				}
				if rerr := tx.Rollback(ctx); err == nil {
					err = rerr
				}
				if err != nil {
					t.Errorf("raw insert: %v", err)
					return
				}
			}
		}()
	}
	writing := make(chan struct{})
	go func() { wg.Wait(); close(writing) }()

	// Subscriptions of other batch sizes follow the same log at once,
	// sharing the store's tail (kept small, so that it is trimmed often):
	// each must read what the first does.
	others := make([]eventstore.Subscription, 0, 2)
	for _, size := range []int{7, 250} {
		o, err := s.Subscribe(ctx, eventstore.Start, eventstore.Filter{}, size)
		require.NoError(t, err)
		defer o.Close()
		others = append(others, o)
	}
	done := func(seen map[uuid.UUID]int) bool {
		mu.Lock()
		defer mu.Unlock()
		return isClosed(writing) && len(seen) >= len(committed)
	}
	var followers sync.WaitGroup
	for _, o := range others {
		followers.Go(func() {
			seen, err := follow(ctx, o, done)
			if err != nil {
				t.Errorf("another subscription: %v", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			assert.Equal(t, len(committed), len(seen), "another subscription")
		})
	}

	seen, err := follow(ctx, sub, done)
	require.NoError(t, err)
	followers.Wait()
	mu.Lock()
	defer mu.Unlock()
	for id := range seen {
		require.False(t, rolledBack[id], "rolled-back event %s was read", id)
		require.True(t, committed[id], "event %s read but never written", id)
	}
	assert.Equal(t, len(committed), len(seen))
	assert.NotEmpty(t, rolledBack)
	t.Logf("%d events committed, %d rolled back", len(committed), len(rolledBack))

	// Nothing more arrives: no rolled-back event surfaces late.
	nctx, ncancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer ncancel()
	b, err := sub.Next(nctx)
	if err == nil {
		assert.Empty(t, b.Events)
	}
}

// follow reads sub until done says it has seen enough, checking that
// positions only move forward and that every stream's versions come in
// order, once each; it answers how often it read each event.
func follow(ctx context.Context, sub eventstore.Subscription, done func(map[uuid.UUID]int) bool) (map[uuid.UUID]int, error) {
	seen := map[uuid.UUID]int{}
	versions := map[string]uint64{}
	var pos eventstore.Position
	for !done(seen) {
		nctx, ncancel := context.WithTimeout(ctx, 300*time.Millisecond)
		b, err := sub.Next(nctx)
		ncancel()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !pos.Less(b.Position) {
			return nil, fmt.Errorf("position went from %s to %s", pos, b.Position)
		}
		pos = b.Position
		for _, e := range b.Events {
			if pos.Less(e.Position) {
				return nil, fmt.Errorf("event %s past its batch position", e.ID)
			}
			if seen[e.ID]++; seen[e.ID] > 1 {
				return nil, fmt.Errorf("event %s seen twice", e.ID)
			}
			if e.Version != versions[e.Stream]+1 {
				return nil, fmt.Errorf("stream %s went from version %d to %d", e.Stream, versions[e.Stream], e.Version)
			}
			versions[e.Stream] = e.Version
		}
	}
	return seen, nil
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestExactContention has writers race for the same streams at exact
// versions, retrying on conflict: the one-round-trip path under lock waits.
// The global log must hold each stream's events in version order, once.
func TestExactContention(t *testing.T) {
	t.Parallel()
	const writers, appendsEach, streams = 16, 40, 4
	pool := newPool(t, writers+4)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := New(pool, WithPollInterval(100*time.Millisecond))
	defer s.Close()
	sub, err := s.Subscribe(ctx, eventstore.Start, eventstore.Filter{}, 100)
	require.NoError(t, err)
	defer sub.Close()

	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range appendsEach {
				stream := fmt.Sprintf("race-%d", rand.IntN(streams))
				e := testEvent(w*1000 + i)
				for {
					var version uint64
					last, err := s.ReadStreamBackward(ctx, stream, 0, 1)
					if err == nil {
						version = last[0].Version
					} else if !errors.Is(err, eventstore.ErrStreamNotFound) {
						t.Errorf("read: %v", err)
						return
					}
					_, err = s.Append(ctx, stream, eventstore.Exact(version), e)
					if errors.Is(err, eventstore.ErrConflict) {
						continue
					}
					if err != nil {
						t.Errorf("append: %v", err)
						return
					}
					break
				}
			}
		}()
	}
	wg.Wait()

	versions := map[string]uint64{}
	seen := map[uuid.UUID]bool{}
	for len(seen) < writers*appendsEach {
		b, err := sub.Next(ctx)
		require.NoError(t, err)
		for _, e := range b.Events {
			require.False(t, seen[e.ID], "event %s seen twice", e.ID)
			seen[e.ID] = true
			require.Equal(t, versions[e.Stream]+1, e.Version, "stream %s out of order in the global log", e.Stream)
			versions[e.Stream] = e.Version
		}
	}
	var total uint64
	for _, v := range versions {
		total += v
	}
	assert.Equal(t, uint64(writers*appendsEach), total)
}

// TestVisibilityWaitsForOlderTransactions holds one append open while a
// later one commits: readers must not see the later event until the earlier
// commits, and then see both in transaction order. The subscription has a
// long poll interval, so it finds the events through the listener and the
// quick retries made while committed events are not yet visible.
func TestVisibilityWaitsForOlderTransactions(t *testing.T) {
	t.Parallel()
	pool := newPool(t, 8)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	plain := New(pool, WithPollInterval(time.Hour))
	defer plain.Close()
	held := New(pool)
	inserted, release := make(chan struct{}), make(chan struct{})
	held.beforeCommit = func(context.Context) error {
		close(inserted)
		<-release
		return nil
	}

	sub, err := plain.Subscribe(ctx, eventstore.Start, eventstore.Filter{}, 10)
	require.NoError(t, err)
	defer sub.Close()

	first, second := testEvent(1), testEvent(2)
	firstDone := make(chan error, 1)
	go func() {
		_, err := held.Append(ctx, "vis-first", eventstore.NoStream, first)
		firstDone <- err
	}()
	<-inserted
	res, err := plain.Append(ctx, "vis-second", eventstore.NoStream, second)
	require.NoError(t, err)
	require.NotEqual(t, eventstore.Start, res.Position)

	got, err := plain.ReadAll(ctx, eventstore.Start, 10)
	require.NoError(t, err)
	assert.Empty(t, got, "an event became visible while an older transaction was open")
	head, err := plain.Head(ctx)
	require.NoError(t, err)
	assert.Equal(t, eventstore.Start, head)
	nctx, ncancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = sub.Next(nctx)
	ncancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)

	close(release)
	require.NoError(t, <-firstDone)
	began := time.Now()
	var ids []uuid.UUID
	for len(ids) < 2 {
		nctx, ncancel := context.WithTimeout(ctx, 5*time.Second)
		b, err := sub.Next(nctx)
		ncancel()
		require.NoError(t, err)
		for _, e := range b.Events {
			ids = append(ids, e.ID)
		}
	}
	assert.Equal(t, []uuid.UUID{first.ID, second.ID}, ids, "transaction order, not commit order")
	assert.Less(t, time.Since(began), 3*time.Second)
}

// TestOtherWritersDoNotHoldReadersBack holds a transaction open that wrote
// a row elsewhere (a projector's batch, say), so it has an id older than
// the append that follows: readers must see the appended event at once, not
// when that transaction ends. A transaction that took an append lock before
// its id, as every appender does, still holds them back.
func TestOtherWritersDoNotHoldReadersBack(t *testing.T) {
	t.Parallel()
	pool := newPool(t, 8)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := New(pool)
	defer s.Close()
	_, err := pool.Exec(ctx, `CREATE TABLE elsewhere (n int)`)
	require.NoError(t, err)

	other, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer other.Rollback(ctx) //nolint:errcheck // ends the transaction on failure
	_, err = other.Exec(ctx, `INSERT INTO elsewhere VALUES (1)`)
	require.NoError(t, err)

	e := testEvent(1)
	_, err = s.Append(ctx, "horizon-a", eventstore.NoStream, e)
	require.NoError(t, err)
	// A read can stop short at a transaction of another test that ended
	// while the horizon was worked out (its role unknown, it counts as an
	// appender); the next read passes it.
	var got []eventstore.Event
	require.Eventually(t, func() bool {
		got, err = s.ReadAll(ctx, eventstore.Start, 10)
		require.NoError(t, err)
		return len(got) > 0
	}, 10*time.Second, 5*time.Millisecond, "an open transaction that appends nothing held the log back")
	require.Len(t, got, 1)
	assert.Equal(t, e.ID, got[0].ID)
	var head eventstore.Position
	require.Eventually(t, func() bool {
		head, err = s.Head(ctx)
		require.NoError(t, err)
		return head == got[0].Position
	}, 10*time.Second, 5*time.Millisecond)

	// An appender in the making: its lock first, then its id.
	appender, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer appender.Rollback(ctx) //nolint:errcheck // ends the transaction on failure
	_, err = appender.Exec(ctx, `SELECT pg_advisory_xact_lock($1::int4, hashtext('horizon-b'))`, lockNamespace)
	require.NoError(t, err)
	_, err = appender.Exec(ctx, `INSERT INTO elsewhere VALUES (2)`)
	require.NoError(t, err)
	later := testEvent(2)
	_, err = s.Append(ctx, "horizon-c", eventstore.NoStream, later)
	require.NoError(t, err)
	for range 20 {
		got, err = s.ReadAll(ctx, head, 10)
		require.NoError(t, err)
		require.Empty(t, got, "an event passed an appender still running")
	}

	require.NoError(t, appender.Rollback(ctx))
	require.Eventually(t, func() bool {
		got, err = s.ReadAll(ctx, head, 10)
		require.NoError(t, err)
		return len(got) > 0
	}, 10*time.Second, 5*time.Millisecond)
	require.Len(t, got, 1)
	assert.Equal(t, later.ID, got[0].ID)
	require.NoError(t, other.Commit(ctx))
}

// TestAppendMultiAtomic: a conflict on any stream writes nothing at all.
func TestAppendMultiAtomic(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	ctx := context.Background()
	s := New(pool)
	defer s.Close()
	_, err := s.Append(ctx, "atom-b", eventstore.NoStream, testEvent(0))
	require.NoError(t, err)
	_, err = s.AppendMulti(ctx, []eventstore.Append{
		{Stream: "atom-a", Expected: eventstore.NoStream, Events: []eventstore.EventData{testEvent(1)}},
		{Stream: "atom-b", Expected: eventstore.Exact(5), Events: []eventstore.EventData{testEvent(2)}},
	})
	var ce *eventstore.ConflictError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "atom-b", ce.Stream)
	assert.Equal(t, int64(1), ce.Actual)
	_, err = s.ReadStream(ctx, "atom-a", 1, 10)
	assert.ErrorIs(t, err, eventstore.ErrStreamNotFound, "the first append was rolled back with the conflict")

	var n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&n))
	assert.Equal(t, 1, n)
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
WHERE l.locktype = 'advisory' AND d.datname = current_database() AND l.classid = $1 AND l.objsubid = 2`, int64(lockNamespace)).Scan(&n))
	assert.Zero(t, n, "the failed append's locks were released")
}

// TestReadAllUsesIndex checks the global read and the subscriptions' look
// for pending events are range scans of the primary key, not a sort or a
// sequential scan, whatever the table's size: their prepared statements
// get generic plans.
func TestReadAllUsesIndex(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, `SET plan_cache_mode = force_generic_plan`)
	require.NoError(t, err)
	// Statistics of a sizeable log, for the planner's estimates.
	_, err = conn.Exec(ctx, `INSERT INTO events (id, stream, version, type, metadata, tenant_id, occurred_at)
		SELECT gen_random_uuid(), 's-' || i, 1, 't', '{}', 'x', now() FROM generate_series(1, 20000) AS i`)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `ANALYZE events`)
	require.NoError(t, err)
	for name, q := range map[string]struct{ sql, args, cond string }{
		"readall": {sqlReadAll, "'0', 0, 100", "Index Cond: ((ROW(tx_id, seq) > ROW($1, $2)) AND (tx_id < $0))"},
		"pending": {sqlPending, "'0', 0", "Index Cond: (ROW(tx_id, seq) > ROW($1, $2))"},
	} {
		_, err = conn.Exec(ctx, `PREPARE `+name+` AS `+q.sql)
		require.NoError(t, err)
		text := explain(t, conn, `EXECUTE `+name+`(`+q.args+`)`)
		assert.Contains(t, text, "using events_pkey", name)
		assert.Contains(t, text, q.cond, name)
		assert.NotContains(t, text, "Sort", name)
		assert.NotContains(t, text, "Seq Scan", name)
	}
}

// explain answers the plan PostgreSQL shows for sql through q, one line
// after another.
func explain(t *testing.T, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, sql string, args ...any) string {
	t.Helper()
	rows, err := q.Query(context.Background(), `EXPLAIN `+sql, args...)
	require.NoError(t, err)
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return strings.Join(lines, "\n")
}

// TestReadStreamsUsesIndex plans the ingest's read of many streams, with
// the settings the store reads it with, while the log is empty and never
// analyzed, and again over an analyzed log: each stream must be a range
// scan of (stream, version), never a scan of the whole log.
func TestReadStreamsUsesIndex(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	ctx := context.Background()
	streams := make([]string, 125)
	versions := make([]int64, 125)
	for i := range streams {
		streams[i], versions[i] = fmt.Sprintf("s-%d", i*7), 1
	}
	check := func(state string) {
		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck // read only
		_, err = tx.Exec(ctx, sqlGenericPlans)
		require.NoError(t, err)
		text := explain(t, tx, sqlReadStreamsFrom, streams, versions)
		assert.Contains(t, text, "events_stream_version", state+": "+text)
		assert.NotContains(t, text, "Seq Scan on events", state+": "+text)
	}
	check("empty")
	_, err := pool.Exec(ctx, `INSERT INTO events (id, stream, version, type, metadata, tenant_id, occurred_at)
		SELECT gen_random_uuid(), 's-' || (i % 5000), i / 5000 + 1, 't', '{}', 'x', now() FROM generate_series(0, 19999) AS i`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `ANALYZE events`)
	require.NoError(t, err)
	check("20,000 events")
}

// TestListenerReconnects kills the listening connection: subscriptions must
// keep receiving events, woken again once the listener is back.
func TestListenerReconnects(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := New(pool, WithPollInterval(300*time.Millisecond))
	defer s.Close()
	sub, err := s.Subscribe(ctx, eventstore.Start, eventstore.Filter{}, 10)
	require.NoError(t, err)
	defer sub.Close()

	var killed int
	require.Eventually(t, func() bool {
		err := pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = current_database() AND query LIKE 'LISTEN%'`).Scan(&killed)
		return err == nil && killed == 1
	}, 10*time.Second, 20*time.Millisecond)

	for i := range 3 {
		e := testEvent(i)
		_, err := s.Append(ctx, "relisten-1", eventstore.Any, e)
		require.NoError(t, err)
		nctx, ncancel := context.WithTimeout(ctx, 10*time.Second)
		b, err := sub.Next(nctx)
		ncancel()
		require.NoError(t, err)
		require.Len(t, b.Events, 1)
		assert.Equal(t, e.ID, b.Events[0].ID)
	}
	s.hub.mu.Lock()
	running := s.hub.cancel != nil
	s.hub.mu.Unlock()
	assert.True(t, running)

	require.NoError(t, sub.Close())
	s.hub.mu.Lock()
	running = s.hub.cancel != nil
	s.hub.mu.Unlock()
	assert.False(t, running, "the listener stops with its last subscription")
}

// TestGenericPlansStayInTheRead: the read of the log asks for generic plans
// for its own statement only; the connection goes back to the pool with
// the server's setting.
func TestGenericPlansStayInTheRead(t *testing.T) {
	pool := newPool(t, 1)
	s := New(pool)
	ctx := context.Background()
	_, err := s.Append(ctx, "test-1", eventstore.NoStream, testEvent(1))
	require.NoError(t, err)
	read := func() []eventstore.Event {
		evs, err := s.queryGeneric(ctx, sqlReadAll, uint64(0), int64(0), int64(10))
		require.NoError(t, err)
		return evs
	}
	// A transaction open elsewhere on the server (a parallel test) holds
	// the event back from readers for a while.
	require.Eventually(t, func() bool { return len(read()) == 1 }, 10*time.Second, 10*time.Millisecond)
	for range 6 { // past the five custom plans after which the planner may choose
		require.Len(t, read(), 1)
	}
	for _, name := range []string{"plan_cache_mode", "enable_seqscan", "enable_bitmapscan"} {
		var server, got string
		require.NoError(t, pool.QueryRow(ctx, `SELECT boot_val, current_setting(name) FROM pg_settings WHERE name = $1`, name).Scan(&server, &got))
		assert.Equal(t, server, got, name)
	}
}

// TestReadAllPlannedOnAnEmptyLog plans the read of the log as the store
// does, with a generic plan, while the log is empty and has never been
// analyzed: the plan, which the connection keeps until the statistics
// change, must still be the primary key's range scan.
func TestReadAllPlannedOnAnEmptyLog(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck // read only
	_, err = tx.Exec(ctx, sqlGenericPlans)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `PREPARE readall AS `+sqlReadAll)
	require.NoError(t, err)
	text := explain(t, tx, `EXECUTE readall('0', 0, 100)`)
	assert.Contains(t, text, "Index Scan using events_pkey", text)
	assert.NotContains(t, text, "Seq Scan", text)
	assert.NotContains(t, text, "Sort", text)
}

// TestReadCategoryTooLarge runs a category read whose sort must spill on a
// server that allows no temporary file that large: the error must say the
// read was too large, so that a rebuild can read the log in its order
// instead.
func TestReadCategoryTooLarge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(pgtest.NewDatabase(t))
	require.NoError(t, err)
	cfg.ConnConfig.RuntimeParams["temp_file_limit"] = "64kB"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	_, err = pool.Exec(ctx, `INSERT INTO events (id, stream, version, type, data, metadata, tenant_id, occurred_at)
		SELECT gen_random_uuid(), 'c-' || (i % 500), i / 500 + 1, 't', jsonb_build_object('pad', repeat('x', 200)), '{}', 'x', now()
		FROM generate_series(0, 4999) AS i`)
	require.NoError(t, err)
	s := New(pool)
	// The head shows the rows once no older transaction anywhere on the
	// server (other tests' included) may still commit before them.
	var last eventstore.Position
	require.NoError(t, pool.QueryRow(ctx, `SELECT tx_id::text::bigint, seq FROM events ORDER BY tx_id DESC, seq DESC LIMIT 1`).
		Scan(&last.Commit, &last.Prepare))
	var head eventstore.Position
	require.Eventually(t, func() bool {
		head, err = s.Head(ctx)
		return err == nil && !head.Less(last)
	}, 30*time.Second, 10*time.Millisecond)

	s.sortMemory = "64kB"
	err = s.ReadCategory(ctx, "c", head, func(eventstore.Event) error { return nil })
	require.ErrorIs(t, err, eventstore.ErrReadTooLarge)

	s.sortMemory = categorySortMemory
	var n int
	require.NoError(t, s.ReadCategory(ctx, "c", head, func(eventstore.Event) error { n++; return nil }))
	assert.Equal(t, 5000, n)
}
