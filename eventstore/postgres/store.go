// Package postgres keeps the event log in PostgreSQL (schema in
// migrations/00002_eventstore.sql, and 00012 for the index on event ids).
//
// Global order is the pair (writing transaction id, sequence number), exposed
// as eventstore.Position{Commit: tx_id, Prepare: seq}. Readers of the global
// log see only rows whose transaction id lies below a horizon: the oldest
// transaction running at their snapshot that may be appending
// (events_horizon, migration 00022); so a reader never moves past an event
// that could still commit with a smaller key, which ordering by a sequence
// alone cannot promise (sequence values are taken at insert, not at commit).
// Appenders are known by the advisory locks every append takes before its
// transaction has an id: anything that writes events other than through the
// Store must take one too. Other transactions, the projectors' among them,
// do not hold readers back; the horizon was once the snapshot's xmin, and
// an event appended while a projector's batch was open waited for it to
// commit (docs/performance.md, 2026-12-08).
//
// Appends take a transaction-scoped advisory lock per target stream, then
// write every event of the call at once, by INSERT over arrays or by COPY:
// one round trip when the caller names the versions its streams are at,
// two or three otherwise, however many events and streams the call carries
// (see append.go). Because the locks are taken before the transaction has an
// id, each stream's events also appear in the global order by version.
// NOTIFY follows the commit (see notifier) and wakes subscriptions, which
// also poll.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/segmentio/encoding/json"
	"golang.org/x/sync/singleflight"

	"github.com/clubcrm/crm/eventstore"
)

// DefaultChannel is the NOTIFY channel appends signal on.
const DefaultChannel = "crm_events"

// DefaultPollInterval is how often an idle subscription looks for events
// when no notification arrives (a lost listener connection, or events that
// became visible only when an unrelated transaction ended).
const DefaultPollInterval = time.Second

// defaultBatchSize is used by Subscribe when asked for a batch size of zero.
const defaultBatchSize = 256

// ErrClosed is answered by a closed store or subscription.
var ErrClosed = errors.New("event store closed")

// Store is the PostgreSQL event store. It does not own the pool: Close stops
// its listener and subscriptions, and the caller closes the pool.
type Store struct {
	pool    *pgxpool.Pool
	poll    time.Duration
	channel string
	// beforeCommit, when set, runs inside every append transaction after its
	// statements and before COMMIT; an error rolls the append back. Tests use
	// it to hold transactions open and to abort them.
	beforeCommit func(ctx context.Context) error
	// copyFrom is the number of events from which an append uses COPY.
	copyFrom int
	// sortMemory is the work_mem of ReadCategory's sort
	// (categorySortMemory); tests lower it to make the sort spill.
	sortMemory string

	hub      hub
	notifier notifier
	tail     tail
	reads    singleflight.Group
}

var (
	_ eventstore.Store          = (*Store)(nil)
	_ eventstore.StreamsReader  = (*Store)(nil)
	_ eventstore.CategoryReader = (*Store)(nil)
)

// Option configures a Store.
type Option func(*Store)

// WithPollInterval sets how often idle subscriptions poll in addition to
// waking on notifications.
func WithPollInterval(d time.Duration) Option {
	return func(s *Store) {
		if d > 0 {
			s.poll = d
		}
	}
}

// WithChannel sets the LISTEN/NOTIFY channel, so that stores whose
// subscriptions need not wake each other (other services' databases on the
// same server, say) do not.
func WithChannel(name string) Option {
	return func(s *Store) {
		if name != "" {
			s.channel = name
		}
	}
}

// WithTailSize sets how many of the newest events of the global log the
// store keeps for its subscriptions to share (defaultTailSize; 0: none).
func WithTailSize(n int) Option {
	return func(s *Store) { s.tail.max = max(n, 0) }
}

// New answers a store on pool, which must reach a database migrated with the
// service's migrations.
func New(pool *pgxpool.Pool, opts ...Option) *Store {
	s := &Store{pool: pool, poll: DefaultPollInterval, channel: DefaultChannel, copyFrom: defaultCopyFrom,
		sortMemory: categorySortMemory}
	s.tail.max = defaultTailSize
	for _, o := range opts {
		o(s)
	}
	s.hub.store = s
	s.notifier.store = s
	return s
}

// Close stops the store's listener and closes its subscriptions.
func (s *Store) Close() error {
	s.hub.close()
	s.notifier.close()
	return nil
}

// Append writes events to one stream; see eventstore.Store.
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.Expected, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	res, err := s.AppendMulti(ctx, []eventstore.Append{{Stream: stream, Expected: expected, Events: events}})
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	return res[0], nil
}

const eventColumns = `tx_id, seq, id, stream, version, type, data, metadata, occurred_at, recorded_at`

// visible limits a query over events to rows no running appender can
// precede; see the package comment. The subquery evaluates the horizon once
// per statement, as a bound of the index scan.
const visible = `tx_id < (SELECT events_horizon())`

// ReadStream answers up to limit events of stream from version from on,
// oldest first; a limit of zero or less means all of them.
func (s *Store) ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]eventstore.Event, error) {
	if from > math.MaxInt64 {
		from = math.MaxInt64
	}
	events, err := s.readStream(ctx, `SELECT `+eventColumns+` FROM events WHERE stream = $1 AND version >= $2 ORDER BY version LIMIT $3`,
		stream, int64(from), sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", stream, err)
	}
	return events, nil
}

// ReadStreams answers the events of each stream in from at version
// from[stream] and later, oldest first, by stream, in one statement
// (eventstore.StreamsReader); a stream with no such event has no entry.
func (s *Store) ReadStreams(ctx context.Context, from map[string]uint64) (map[string][]eventstore.Event, error) {
	out := make(map[string][]eventstore.Event, len(from))
	if len(from) == 0 {
		return out, nil
	}
	streams, versions := make([]string, 0, len(from)), make([]int64, 0, len(from))
	for stream, v := range from {
		streams, versions = append(streams, stream), append(versions, int64(min(v, math.MaxInt64)))
	}
	events, err := s.queryGeneric(ctx, sqlReadStreamsFrom, streams, versions)
	if err != nil {
		return nil, fmt.Errorf("read %d streams: %w", len(from), err)
	}
	for _, e := range events {
		out[e.Stream] = append(out[e.Stream], e)
	}
	return out, nil
}

// sqlReadStreamsFrom reads each stream $1[i] from version $2[i] on. Each
// stream is its own range scan of (stream, version): the subquery's ORDER
// BY keeps the planner from flattening it into a join, which it had planned
// as a hash join over a sequential scan of the whole log whenever it
// guessed that version >= k_from kept a third of the rows (about 300 times
// in the first minute of a 200,000-people ingest, up to 94 ms each). It
// runs as queryGeneric does, so no plan of it scans the whole log, even one
// made while the log was empty.
const sqlReadStreamsFrom = `SELECT e.* FROM unnest($1::text[], $2::bigint[]) AS k(k_stream, k_from)
CROSS JOIN LATERAL (
	SELECT ` + eventColumns + ` FROM events WHERE stream = k.k_stream AND version >= k.k_from ORDER BY version
) AS e
ORDER BY e.stream, e.version`

// sqlReadCategory reads a category in (stream, version) order, bounded by
// the category's names ($1 itself, then those that begin with "$1-", all
// below "$1."): the stream column's collation is "C" (migration 00021), so
// that range is every name of the category whatever the database's
// collation.
const sqlReadCategory = `SELECT ` + eventColumns + ` FROM events
WHERE stream >= $1 AND stream < $2 AND (stream = $1 OR starts_with(stream, $1 || '-'))
  AND (tx_id, seq) <= ($3::xid8, $4::bigint)
ORDER BY stream, version`

// categorySortMemory is the work_mem of ReadCategory's sort.
const categorySortMemory = "256MB"

// ReadCategory calls each with the events of category's streams up to
// position upTo, in (stream, version) order (eventstore.CategoryReader).
//
// It is one statement whose rows are sorted by the server, its plain index
// scans turned off: a scan of events_stream_version in stream order
// fetches the rows in random order from the heap, where the log lies in
// log order, and once the log outgrows memory that is a read of a page for
// every event or two (at 1,000,000 people, 6.1 million events in 2 m 50 s,
// against 48 s for the scan and sort). The sort spills to temporary files
// about the size of what it reads. The transaction is read-only and never
// takes a transaction id, so however long the caller takes over the rows
// it holds back no reader of the log. A server whose temp_file_limit, or
// disk, is smaller than the sort needs fails it with
// eventstore.ErrReadTooLarge.
func (s *Store) ReadCategory(ctx context.Context, category string, upTo eventstore.Position, each func(eventstore.Event) error) error {
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('enable_indexscan', 'off', true), set_config('work_mem', $1, true)`,
			s.sortMemory); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, sqlReadCategory, category, category+".", upTo.Commit, int64(min(upTo.Prepare, math.MaxInt64)))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			e, err := scanEvent(rows)
			if err != nil {
				return err
			}
			if err := each(e); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	if tooLarge(err) {
		err = fmt.Errorf("%w: %w", eventstore.ErrReadTooLarge, err)
	}
	if err != nil {
		return fmt.Errorf("read category %s up to %s: %w", category, upTo, err)
	}
	return nil
}

// tooLarge tells the errors of a statement that ran out of temporary
// space: past temp_file_limit (configuration_limit_exceeded) or out of
// disk (disk_full).
func tooLarge(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "53400" || pe.Code == "53100")
}

// ReadStreamBackward answers up to limit events of stream from version from
// (0 for the newest) back, newest first; a limit of zero or less means all.
func (s *Store) ReadStreamBackward(ctx context.Context, stream string, from uint64, limit int) ([]eventstore.Event, error) {
	upTo := int64(from)
	if from == 0 || from > math.MaxInt64 {
		upTo = math.MaxInt64
	}
	events, err := s.readStream(ctx, `SELECT `+eventColumns+` FROM events WHERE stream = $1 AND version <= $2 ORDER BY version DESC LIMIT $3`,
		stream, upTo, sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("read %s backward: %w", stream, err)
	}
	return events, nil
}

// readStream runs a read of one stream and tells an empty read of an
// existing stream from a read of a stream that does not exist.
func (s *Store) readStream(ctx context.Context, sql string, stream string, args ...any) ([]eventstore.Event, error) {
	args = append([]any{stream}, args...)
	events, err := s.query(ctx, sql, args...)
	if err != nil || len(events) > 0 {
		return events, err
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM events WHERE stream = $1)`, stream).Scan(&exists); err != nil {
		return nil, err
	}
	if !exists {
		return nil, eventstore.ErrStreamNotFound
	}
	// The stream may have been created between the two statements: read
	// again, now that it exists, rather than answer it empty.
	return s.query(ctx, sql, args...)
}

// The row comparison on (tx_id, seq) matches the primary key, so the read is
// a range scan of that index from the position on.
const sqlReadAll = `SELECT ` + eventColumns + ` FROM events
WHERE (tx_id, seq) > ($1::xid8, $2::bigint) AND ` + visible + `
ORDER BY tx_id, seq LIMIT $3`

// ReadAll answers up to limit events after position from in global order; a
// limit of zero or less means all of them. What the store's tail holds of
// them comes from memory, the rest from the database, in one read shared
// by every caller asking for the same events at the same time: the
// projectors of a process wake together when events are appended, and
// would each read the same new events. The events answered share their
// Data with other readers: it is for reading only.
func (s *Store) ReadAll(ctx context.Context, from eventstore.Position, limit int) ([]eventstore.Event, error) {
	kept, next, _ := s.tail.after(from, limit)
	if limit > 0 && len(kept) == limit {
		return kept, nil
	}
	rest := limit
	if limit > 0 {
		rest -= len(kept)
	}
	key := fmt.Sprintf("%d/%d/%d", next.Commit, next.Prepare, rest)
	read := s.reads.DoChan(key, func() (any, error) {
		// Not the first caller's to cancel: the others wait for it too.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sharedReadTimeout)
		defer cancel()
		events, err := s.queryGeneric(ctx, sqlReadAll, next.Commit, int64(next.Prepare), sqlLimit(rest))
		if err != nil {
			return nil, err
		}
		s.tail.keep(next, events)
		return events, nil
	})
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("read all after %s: %w", next, ctx.Err())
	case r := <-read:
		if r.Err != nil {
			return nil, fmt.Errorf("read all after %s: %w", next, r.Err)
		}
		// A slice of the caller's own: the callers that shared the read
		// may each change theirs (upcasting replaces elements).
		return append(kept, r.Val.([]eventstore.Event)...), nil
	}
}

// sharedReadTimeout bounds a read of the log that several callers share.
const sharedReadTimeout = time.Minute

// Head answers the position of the newest event readers can see.
func (s *Store) Head(ctx context.Context) (eventstore.Position, error) {
	var p eventstore.Position
	err := s.pool.QueryRow(ctx, `SELECT tx_id, seq FROM events WHERE `+visible+` ORDER BY tx_id DESC, seq DESC LIMIT 1`).
		Scan(&p.Commit, &p.Prepare)
	if errors.Is(err, pgx.ErrNoRows) {
		return eventstore.Start, nil
	}
	if err != nil {
		return eventstore.Position{}, fmt.Errorf("head: %w", err)
	}
	return p, nil
}

// sqlLimit turns a non-positive limit into LIMIT NULL, which is no limit.
func sqlLimit(limit int) *int64 {
	if limit <= 0 {
		return nil
	}
	l := int64(limit)
	return &l
}

func (s *Store) query(ctx context.Context, sql string, args ...any) ([]eventstore.Event, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return scanEvents(rows)
}

// queryGeneric is query with a generic plan that scans by index: the reads
// of the log (sqlReadAll) and of many streams (sqlReadStreamsFrom), whose
// every plan worth having is a range scan of an index. The planner keeps
// choosing a custom plan for sqlReadAll, since the generic one must guess
// its LIMIT and range, though both are the same scan of the primary key:
// planning it for each read cost PostgreSQL more than running it (about
// 0.14 ms against 0.04 ms in the 200,000-people bench; docs/performance.md). The
// settings are local to the batch's implicit transaction.
//
// A generic plan is kept until the table's statistics change, and one made
// while the log was nearly empty (a new database; autovacuum not yet
// round) was a sequential scan and a sort, which every later read on that
// connection repeated over a growing log: 39 million rows read during a
// 1,000,000-event ingest. The read's settings therefore also rule out
// sequential and bitmap scans, leaving the primary key's range scan at any
// size.
func (s *Store) queryGeneric(ctx context.Context, sql string, args ...any) ([]eventstore.Event, error) {
	b := &pgx.Batch{}
	b.Queue(sqlGenericPlans)
	b.Queue(sql, args...)
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	events, err := scanEvents(rows)
	if err != nil {
		return nil, err
	}
	return events, br.Close()
}

// sqlGenericPlans asks for generic plans that scan by index until the
// transaction ends.
const sqlGenericPlans = `SELECT set_config('plan_cache_mode', 'force_generic_plan', true),
	set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true)`

func scanEvents(rows pgx.Rows) ([]eventstore.Event, error) {
	defer rows.Close()
	events := []eventstore.Event{}
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		events = append(events, e)
	}
	return events, rows.Err()
}

// scanEvent scans the current row, of eventColumns.
func scanEvent(rows pgx.Rows) (eventstore.Event, error) {
	var (
		e       eventstore.Event
		version int64
		data    []byte
		meta    []byte
	)
	if err := rows.Scan(&e.Position.Commit, &e.Position.Prepare, &e.ID, &e.Stream, &version, &e.Type,
		&data, &meta, &e.OccurredAt, &e.RecordedAt); err != nil {
		return eventstore.Event{}, err
	}
	e.Version = uint64(version)
	if data != nil {
		e.Data = json.RawMessage(data)
	}
	if err := json.Unmarshal(meta, &e.Metadata); err != nil {
		return eventstore.Event{}, fmt.Errorf("event %s: metadata: %w", e.ID, err)
	}
	e.OccurredAt = e.OccurredAt.UTC()
	e.RecordedAt = e.RecordedAt.UTC()
	return e, nil
}
