package projections

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/clubcrm/crm/eventstore"
)

// ErrRebuildInProgress is answered by Rebuild while another rebuild of the
// same projector runs, in any process.
var ErrRebuildInProgress = errors.New("projection rebuild already in progress")

// ErrNoReadModel is answered by Rebuild for a projector that declares no
// tables, such as one that only publishes.
var ErrNoReadModel = errors.New("projector owns no read model")

// errRebuildTakenOver reports that the rebuild's row is not where this
// rebuild left it: its lock connection dropped and another rebuild started,
// whose shadow tables these now are.
var errRebuildTakenOver = errors.New("another rebuild took over")

// Swap tuning: the swap waits at most swapLockTimeout for each lock (readers
// queue behind its wait, so it must be short), and tries swapAttempts times.
// It applies at most swapRounds reads of events that arrived since the
// shadow caught up, so a busy log cannot keep it from finishing; the live
// projector resumes from wherever the swap left the checkpoint.
const (
	swapLockTimeout = "2s"
	swapAttempts    = 10
	swapRounds      = 16
)

// rebuild is one Rebuild in progress.
type rebuild struct {
	rt       *Runtime
	rn       *runner
	shadow   Tables
	deferred map[string][]string // shadow table → its deferred indexes' definitions from USING on
	indexed  map[string]string   // table → its shadow's indexed columns, quoted, for analyze
	started  time.Time           // the rebuild's row's started_at: whose shadow tables these are
	pos      eventstore.Position
	events   int64     // events read so far
	applied  int64     // events applied so far
	recorded time.Time // recorded time of the last applied event
}

// Rebuild replays the whole log through the projector into shadow tables
// while the live projector goes on serving, then swaps them in atomically
// (see the package comment). It reports progress as WithProgress says. A
// rebuild that fails or is cancelled drops its shadow tables and leaves the
// live read model as it was; one whose process dies leaves them for the next
// Rebuild to drop.
func (r *Runtime) Rebuild(ctx context.Context, name string) error {
	rn, err := r.runner(name)
	if err != nil {
		return fmt.Errorf("rebuild %s: %w", name, err)
	}
	if len(rn.p.Tables()) == 0 {
		// Replaying would only repeat the projector's side effects.
		return fmt.Errorf("rebuild %s: %w", name, ErrNoReadModel)
	}
	// The lock lives as long as this session, so a rebuild that dies frees it.
	conn, err := pgx.ConnectConfig(ctx, r.watch.cfg)
	if err != nil {
		return fmt.Errorf("rebuild %s: connect: %w", name, err)
	}
	defer closeConn(conn)
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1::int4, $2::int4)`, rebuildLockSpace, lockKey(name)).Scan(&locked); err != nil {
		return fmt.Errorf("rebuild %s: lock: %w", name, err)
	}
	if !locked {
		return fmt.Errorf("rebuild %s: %w", name, ErrRebuildInProgress)
	}
	if err := ensureCheckpoint(ctx, r.pool, name); err != nil {
		return fmt.Errorf("rebuild %s: %w", name, err)
	}
	rb := &rebuild{rt: r, rn: rn, shadow: Tables{}}
	for _, t := range rn.p.Tables() {
		rb.shadow[t] = t + shadowSuffix
	}
	if err := rb.prepare(ctx); err != nil {
		return fmt.Errorf("rebuild %s: %w", name, err)
	}
	r.log.Info("projection rebuild started", "projector", name)
	prog := newProgress(r.opts.progress, r.log, name)
	if err := rb.run(ctx, prog); err != nil {
		if !errors.Is(err, errRebuildTakenOver) {
			rb.abandon()
		}
		return fmt.Errorf("rebuild %s: %w", name, err)
	}
	prog.finish(rb.events)
	r.log.Info("projection rebuilt and swapped in", "projector", name, "position", rb.pos.String(), "events_applied", rb.applied)
	return nil
}

// run fills the shadow tables and swaps them in.
func (rb *rebuild) run(ctx context.Context, prog progress) error {
	if err := rb.fill(ctx, prog); err != nil {
		return err
	}
	if err := rb.buildIndexes(ctx); err != nil {
		return err
	}
	if err := rb.analyzeAll(ctx); err != nil {
		return err
	}
	if err := rb.swap(ctx); err != nil {
		return fmt.Errorf("swap: %w", err)
	}
	return nil
}

// prepare creates empty shadow tables and the rebuild's row. It first
// locks the row of an earlier rebuild of the projector, if any: a rebuild
// whose lock connection dropped may still be applying a batch, and holds
// the row (FOR KEY SHARE) while it does, so its tables are not dropped
// under it; its next batch finds the row changed and stops.
func (rb *rebuild) prepare(ctx context.Context) error {
	tx, err := rb.rt.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after commit
	if _, err := tx.Exec(ctx, `SELECT FROM projection_rebuilds WHERE name = $1 FOR UPDATE`, rb.rn.name); err != nil {
		return fmt.Errorf("lock earlier rebuild: %w", err)
	}
	for _, t := range sortedTables(rb.shadow) {
		if err := createShadow(ctx, tx, t, rb.shadow[t]); err != nil {
			return err
		}
	}
	if err := rb.deferIndexes(ctx, tx); err != nil {
		return err
	}
	err = tx.QueryRow(ctx, `INSERT INTO projection_rebuilds (name, state) VALUES ($1, 'building')
ON CONFLICT (name) DO UPDATE SET state = 'building', commit_position = 0, prepare_position = 0,
    events_applied = 0, started_at = now(), updated_at = now()
RETURNING started_at`, rb.rn.name).Scan(&rb.started)
	if err != nil {
		return fmt.Errorf("record rebuild: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("create shadow tables: %w", err)
	}
	return nil
}

// fill applies the log from its start into the shadow tables until it has
// read every event visible and at least every event the live read model
// holds: the store shows no event while an older transaction anywhere on
// the server may still commit one before it, and a rebuild that took a log
// held back that way for its end would swap in a read model older than the
// one it replaces.
//
// The batches are applied by workers, each in transactions of its own, for
// the events of its share of the tenants (see applier). A StreamFolder's
// log up to the head is first folded stream by stream (foldStreams), and
// the batches start from there.
func (rb *rebuild) fill(ctx context.Context, prog progress) error {
	var first eventstore.Position
	head, err := rb.rt.store.Head(ctx)
	if err != nil {
		return err
	}
	live, err := loadCheckpoint(ctx, rb.rt.pool, rb.rn.name)
	if err != nil {
		return err
	}
	if err := rb.foldStreams(ctx, prog, head); err != nil {
		return err
	}
	ap, err := startApplier(ctx, rb, rebuildWorkers(rb.rt.pool))
	if err != nil {
		return err
	}
	defer ap.stop()
	// The next batch is read while this one is applied.
	size := rebuildBatchFactor * rb.rn.batchSize
	ahead := readAhead(ctx, rb.rt.store, rb.pos, size)
	var (
		read    = rb.pos // where the batches handed to the workers end
		waited  time.Time
		headAt  = time.Now()
		analyze = int64(firstAnalyze)
	)
	for {
		if rb.events >= analyze {
			if err := rb.analyze(ctx); err != nil {
				return err
			}
			analyze = rb.events * 2
		}
		r := <-ahead
		if r.err != nil {
			return r.err
		}
		events := r.events
		if len(events) == 0 {
			// Whatever is in flight must land before the log's end is
			// judged: rb.pos is what the shadow tables hold.
			if err := ap.drain(ctx); err != nil {
				return err
			}
			if !rb.pos.Less(live) {
				return nil
			}
			if waited.IsZero() || time.Since(waited) > 10*time.Second {
				rb.rt.log.Warn("rebuild waits for the log to show what the live read model holds: a transaction elsewhere on the server holds back what readers see",
					"projector", rb.rn.name, "at", rb.pos.String(), "live", live.String())
				waited = time.Now()
			}
			if !sleep(ctx, 100*time.Millisecond) {
				return ctx.Err()
			}
			ahead = readAhead(ctx, rb.rt.store, read, size)
			continue
		}
		if first == eventstore.Start {
			first = events[0].Position
		}
		read = events[len(events)-1].Position
		ahead = readAhead(ctx, rb.rt.store, read, size)
		if err := ap.submit(ctx, events, rb.filter(events)); err != nil {
			return err
		}
		if time.Since(headAt) > time.Second {
			if head, err = rb.rt.store.Head(ctx); err != nil {
				return err
			}
			headAt = time.Now()
		}
		prog.update(rb.events, doneShare(first, rb.pos, head))
	}
}

// rebuildBatchFactor is how many live batches a rebuild applies in one
// transaction: nothing waits on its transactions, so larger ones cost only
// memory, and a projector that folds rows (customers) writes a row touched
// several times in a batch once.
const rebuildBatchFactor = 5

type readResult struct {
	events []eventstore.Event
	err    error
}

// readAhead reads up to n events after from in the background.
func readAhead(ctx context.Context, store eventstore.Store, from eventstore.Position, n int) <-chan readResult {
	out := make(chan readResult, 1)
	go func() {
		events, err := store.ReadAll(ctx, from, n)
		out <- readResult{events, err}
	}()
	return out
}

// releaseRelaxed gives conn back to its pool with the server's defaults, or
// closes it when they cannot be restored.
func releaseRelaxed(conn *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, "RESET synchronous_commit"); err != nil {
		conn.Conn().Close(ctx) //nolint:errcheck // the pool drops a closed connection
	}
	conn.Release()
}

// deferIndexes drops the indexes the projector defers from the shadow
// tables and notes how to build them again.
func (rb *rebuild) deferIndexes(ctx context.Context, tx pgx.Tx) error {
	d, ok := rb.rn.p.(IndexDeferrer)
	if !ok {
		return nil
	}
	names := d.DeferredIndexes()
	seen := map[string]bool{}
	rb.deferred = map[string][]string{}
	for _, t := range sortedTables(rb.shadow) {
		using, found, err := deferIndexes(ctx, tx, t, rb.shadow[t], names)
		if err != nil {
			return err
		}
		rb.deferred[rb.shadow[t]] = using
		for _, n := range found {
			seen[n] = true
		}
	}
	for _, n := range names {
		if !seen[n] {
			return fmt.Errorf("deferred index %s is not an index of the projector's tables", n)
		}
	}
	return nil
}

// buildIndexes builds the deferred indexes on the filled shadow tables,
// several at once on connections of their own (as many as the rebuild has
// workers): PostgreSQL builds a GIN index in one process, and the others'
// heap scans and sorts overlap with the longest rather than queue behind it.
func (rb *rebuild) buildIndexes(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(rebuildWorkers(rb.rt.pool))
	for _, t := range sortedTables(rb.shadow) {
		shadow := rb.shadow[t]
		for _, using := range rb.deferred[shadow] {
			g.Go(func() error {
				start := time.Now()
				if _, err := rb.rt.pool.Exec(ctx, "CREATE INDEX ON "+ident(shadow)+using); err != nil {
					return fmt.Errorf("build deferred index on %s%s: %w", shadow, using, err)
				}
				rb.rt.log.Info("deferred index built", "projector", rb.rn.name, "table", t, "index", using,
					"took", time.Since(start).Round(time.Millisecond).String())
				return nil
			})
		}
	}
	return g.Wait()
}

// firstAnalyze is how many events a rebuild applies before it first
// analyzes its shadow tables; it analyzes them again each time the count
// doubles.
const firstAnalyze = 5_000

// analyze refreshes the planner's statistics of the shadow tables. They
// start empty, and a projector's look-ups of the rows a batch touches
// would otherwise be planned as sequential scans of a table the planner
// believes tiny: on a server with autovacuum off, or before autoanalyze
// gets to them, every batch scanned the whole growing table (a 12-million
// event rebuild of the scores fell from 11,000 to 3,600 events/s).
//
// While filling, only the columns of the shadow tables' indexes are
// analyzed: with the deferred indexes gone, they are the ones a batch's
// look-ups go through. The other columns (folded states, documents, text)
// were most of the cost of a whole-table ANALYZE, 3.7 s of a 53 s customers
// rebuild, and plan nothing there. analyzeAll gives the filled tables every
// statistic before they are swapped in.
func (rb *rebuild) analyze(ctx context.Context) error {
	if rb.indexed == nil {
		rb.indexed = map[string]string{}
		for _, name := range sortedTables(rb.shadow) {
			var cols []string
			err := rb.rt.pool.QueryRow(ctx, `SELECT coalesce(array_agg(DISTINCT quote_ident(a.attname::text)), '{}')
FROM pg_index i CROSS JOIN unnest(i.indkey::int2[]) AS k(attnum)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = $1::regclass`, rb.shadow.Ident(name)).Scan(&cols)
			if err != nil {
				return fmt.Errorf("index columns of %s: %w", rb.shadow[name], err)
			}
			rb.indexed[name] = strings.Join(cols, ", ")
		}
	}
	return rb.analyzeColumns(ctx, rb.indexed)
}

// analyzeAll gathers every statistic of the filled shadow tables, their
// built indexes' expressions included, so that the read model's queries
// are planned well from the moment it is swapped in.
func (rb *rebuild) analyzeAll(ctx context.Context) error { return rb.analyzeColumns(ctx, nil) }

// analyzeColumns analyzes the shadow tables: of each, the columns columns
// lists (quoted, comma-separated; a table with none is skipped), or every
// column when columns is nil.
func (rb *rebuild) analyzeColumns(ctx context.Context, columns map[string]string) error {
	for _, name := range sortedTables(rb.shadow) {
		stmt := "ANALYZE " + rb.shadow.Ident(name)
		if columns != nil {
			if columns[name] == "" {
				continue
			}
			stmt += " (" + columns[name] + ")"
		}
		if _, err := rb.rt.pool.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("analyze %s: %w", rb.shadow[name], err)
		}
	}
	return nil
}

func (rb *rebuild) filter(events []eventstore.Event) []eventstore.Event {
	f := rb.rn.p.Filter()
	var out []eventstore.Event
	for _, e := range events {
		if f.Match(e) {
			out = append(out, e)
		}
	}
	return out
}

func (rb *rebuild) apply(ctx context.Context, tx pgx.Tx, matching []eventstore.Event) error {
	if len(matching) == 0 {
		return nil
	}
	if err := apply(ctx, rb.rn.p, tx, rb.shadow, matching); err != nil {
		return fmt.Errorf("apply %d events after %s: %w", len(matching), rb.pos, err)
	}
	return nil
}

// advance notes a committed batch.
func (rb *rebuild) advance(events, matching []eventstore.Event) {
	rb.pos = events[len(events)-1].Position
	rb.events += int64(len(events))
	rb.applied += int64(len(matching))
	if n := len(matching); n > 0 {
		rb.recorded = matching[n-1].RecordedAt
	}
}

// swap swaps the caught-up shadow tables in, retrying when it waited too
// long for a lock.
func (rb *rebuild) swap(ctx context.Context) error {
	c, p := ints(rb.pos)
	tag, err := rb.rt.pool.Exec(ctx, `UPDATE projection_rebuilds SET state = 'swapping', updated_at = now()
WHERE name = $1 AND state = 'building' AND started_at = $2 AND commit_position = $3 AND prepare_position = $4`,
		rb.rn.name, rb.started, c, p)
	if err != nil {
		return fmt.Errorf("record swap: %w", err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("rebuild row is not at %s: %w", rb.pos, errRebuildTakenOver)
	}
	retry := backoff{min: 200 * time.Millisecond, max: 5 * time.Second}
	for attempt := 1; ; attempt++ {
		err := rb.swapOnce(ctx)
		var pgErr *pgconn.PgError
		if err == nil || attempt == swapAttempts || !errors.As(err, &pgErr) || pgErr.Code != "55P03" {
			return err
		}
		wait := retry.next()
		rb.rt.log.Warn("projection swap timed out waiting for a lock; retrying", "projector", rb.rn.name,
			"attempt", attempt, "retry_in", wait.Round(time.Millisecond).String(), "err", err)
		if !sleep(ctx, wait) {
			return ctx.Err()
		}
	}
}

// swapOnce holds the projector's checkpoint row, which stops the live
// projector (in whichever process) before its next batch, applies the
// events that arrived since the shadow caught up, swaps the tables and
// moves the checkpoint to the shadow's position, all in one transaction.
// The live projector then finds its checkpoint moved and resumes from the
// new one, on the new tables.
func (rb *rebuild) swapOnce(ctx context.Context) error {
	tx, err := rb.rt.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after commit
	if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '"+swapLockTimeout+"'"); err != nil {
		return err
	}
	var c, p int64
	if err := tx.QueryRow(ctx, `SELECT commit_position, prepare_position FROM projection_checkpoints WHERE name = $1 FOR UPDATE`,
		rb.rn.name).Scan(&c, &p); err != nil {
		return fmt.Errorf("lock checkpoint: %w", err)
	}
	var state string
	var started time.Time
	if err := tx.QueryRow(ctx, `SELECT state, started_at, commit_position, prepare_position FROM projection_rebuilds WHERE name = $1 FOR UPDATE`,
		rb.rn.name).Scan(&state, &started, &c, &p); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("lock rebuild: %w", err)
	}
	if state != "swapping" || !started.Equal(rb.started) || pos(c, p) != rb.pos {
		return fmt.Errorf("rebuild row is not at %s: %w", rb.pos, errRebuildTakenOver)
	}
	// Work on a copy: a failed attempt rolls back and the next one starts
	// again from the committed shadow.
	at := *rb
	for range swapRounds {
		events, err := rb.rt.store.ReadAll(ctx, at.pos, at.rn.batchSize)
		if err != nil {
			return err
		}
		if len(events) == 0 {
			break
		}
		matching := at.filter(events)
		if err := at.apply(ctx, tx, matching); err != nil {
			return err
		}
		at.advance(events, matching)
	}
	for _, t := range sortedTables(rb.shadow) {
		if err := swapTable(ctx, tx, t, rb.shadow[t], t+retiredSuffix); err != nil {
			return err
		}
	}
	var recorded *time.Time
	if !at.recorded.IsZero() {
		recorded = &at.recorded
	}
	nc, np := ints(at.pos)
	if _, err := tx.Exec(ctx, `UPDATE projection_checkpoints
SET commit_position = $2, prepare_position = $3, event_recorded_at = $4, events_applied = $5,
    updated_at = now(), rebuilt_at = now(), last_error = NULL, last_error_at = NULL
WHERE name = $1`, rb.rn.name, nc, np, recorded, at.applied); err != nil {
		return fmt.Errorf("move checkpoint: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM projection_rebuilds WHERE name = $1`, rb.rn.name); err != nil {
		return fmt.Errorf("clear rebuild: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit swap: %w", err)
	}
	*rb = at
	return nil
}

// abandon drops the shadow tables and the rebuild's row after a failure.
func (rb *rebuild) abandon() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := pgx.BeginFunc(ctx, rb.rt.pool, func(tx pgx.Tx) error {
		for _, t := range sortedTables(rb.shadow) {
			if _, err := tx.Exec(ctx, "DROP TABLE IF EXISTS "+ident(rb.shadow[t])); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `DELETE FROM projection_rebuilds WHERE name = $1`, rb.rn.name)
		return err
	})
	if err != nil {
		rb.rt.log.Warn("could not drop the shadow tables of a failed rebuild; the next rebuild will", "projector", rb.rn.name, "err", err)
	}
}

func sortedTables(t Tables) []string {
	names := make([]string, 0, len(t))
	for n := range t {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
