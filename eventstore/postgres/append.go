package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/segmentio/encoding/json"

	"github.com/clubcrm/crm/eventstore"
)

// How an append runs. Every path first takes a transaction-scoped advisory
// lock per stream, in a statement of its own: advisory locks, unlike row
// locks, do not give the transaction an id, so its id comes with the insert,
// after every earlier writer of its streams has committed, and tx_id order
// agrees with each stream's version order. Statements after the lock take
// their snapshots after it, so they see what those writers committed.
//
//   - Exact path, when every stream's expected version is known (Exact,
//     NoStream) and the call is small: one round trip, the lock and an
//     INSERT that writes only if every stream is where the caller expects
//     and holds none of the ids, in the implicit transaction of a pipeline.
//     When it writes nothing, the general path finds out why.
//   - General path: lock and read the streams' versions and held ids in one
//     round trip inside an explicit transaction, decide in Go, then write
//     (INSERT over arrays, or COPY from copyFrom events on) and commit.

// lockNamespace is the first key of the advisory locks that serialise
// appends per stream ("crme"); the second is the hash of the stream name.
// Two-key advisory locks live apart from the one-key locks migrations and
// tests take. Hash collisions only make unrelated streams wait for each other.
const lockNamespace = 0x63726d65

// defaultCopyFrom is the number of events from which an append writes by
// COPY rather than by INSERT.
const defaultCopyFrom = 100

// maxDeadlockRetries bounds how often an append is retried after PostgreSQL
// broke a deadlock by aborting it.
const maxDeadlockRetries = 3

const (
	// The sort makes appenders lock in one order, so they cannot deadlock.
	sqlLock = `SELECT pg_advisory_xact_lock($1::int4, h) FROM (SELECT DISTINCT hashtext(s) AS h FROM unnest($2::text[]) AS s ORDER BY h) AS k`
	// One row per stream with its version and no id, then one per event id
	// the streams already hold, with no version. An id is looked up by the
	// index on id alone (OFFSET 0 keeps the stream out of the probe, so
	// the planner cannot scan a long stream's (stream, version) range for
	// it instead), then its stream compared: see migration 00012.
	sqlReadStreams = `SELECT s, coalesce((SELECT version FROM events WHERE stream = s ORDER BY version DESC LIMIT 1), 0), NULL::uuid FROM unnest($1::text[]) AS s
UNION ALL
SELECT k.stream, NULL, k.id FROM unnest($2::text[], $3::uuid[]) AS k(stream, id)
WHERE EXISTS (SELECT FROM (SELECT stream FROM events WHERE id = k.id OFFSET 0) AS e WHERE e.stream = k.stream)`
	sqlInsert = `INSERT INTO events (id, stream, version, type, data, metadata, tenant_id, occurred_at)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::text[], $5::text[]::jsonb[], $6::text[]::jsonb[], $7::text[], $8::timestamptz[])
RETURNING tx_id, seq, stream, version`
	// sqlInsertIf writes all the events or none: none when a stream is not
	// at the version in ($9, $10) or already holds one of the ids (looked
	// up as in sqlReadStreams). Both conditions are uncorrelated, so they
	// are checked once, on the statement's snapshot, before any row is
	// written.
	sqlInsertIf = `INSERT INTO events (id, stream, version, type, data, metadata, tenant_id, occurred_at)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::text[], $5::text[]::jsonb[], $6::text[]::jsonb[], $7::text[], $8::timestamptz[])
WHERE NOT EXISTS (SELECT FROM unnest($9::text[], $10::bigint[]) AS x(stream, version)
		WHERE coalesce((SELECT version FROM events WHERE stream = x.stream ORDER BY version DESC LIMIT 1), 0) <> x.version)
	AND NOT EXISTS (SELECT FROM unnest($2::text[], $1::uuid[]) AS k(stream, id)
		WHERE EXISTS (SELECT FROM (SELECT stream FROM events WHERE id = k.id OFFSET 0) AS e WHERE e.stream = k.stream))
RETURNING tx_id, seq, stream, version`
	sqlPositions = `SELECT e.tx_id, e.seq, e.stream, e.version FROM events e JOIN unnest($1::text[], $2::bigint[]) AS k(stream, version) ON e.stream = k.stream AND e.version = k.version`
)

var copyColumns = []string{"id", "stream", "version", "type", "data", "metadata", "tenant_id", "occurred_at"}

// AppendMulti appends to several streams in one transaction: all or none.
// Appends to the same stream may appear more than once; they apply in order,
// each expectation checked against the version the earlier ones left.
func (s *Store) AppendMulti(ctx context.Context, appends []eventstore.Append) ([]eventstore.AppendResult, error) {
	if len(appends) == 0 {
		return nil, nil
	}
	for _, a := range appends {
		if err := eventstore.Validate(a.Stream, a.Expected, a.Events); err != nil {
			return nil, err
		}
	}
	in, err := prepare(appends)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		res, err := s.appendOnce(ctx, appends, in)
		var pgErr *pgconn.PgError
		if attempt < maxDeadlockRetries && errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001") {
			continue
		}
		return res, err
	}
}

// prepared is the part of an append that does not depend on the database.
type prepared struct {
	streams    []string // distinct
	keyStreams []string // (keyStreams[i], keyIDs[i]) for every event
	keyIDs     []uuid.UUID
	data       [][]pgtype.Text
	metadata   [][]string
	occurred   [][]time.Time
}

func prepare(appends []eventstore.Append) (*prepared, error) {
	p := &prepared{
		data:     make([][]pgtype.Text, len(appends)),
		metadata: make([][]string, len(appends)),
		occurred: make([][]time.Time, len(appends)),
	}
	now := time.Now()
	for i, a := range appends {
		p.streams = append(p.streams, a.Stream)
		p.data[i] = make([]pgtype.Text, len(a.Events))
		p.metadata[i] = make([]string, len(a.Events))
		p.occurred[i] = make([]time.Time, len(a.Events))
		for j, e := range a.Events {
			p.keyStreams = append(p.keyStreams, a.Stream)
			p.keyIDs = append(p.keyIDs, e.ID)
			// Empty data is stored as SQL NULL so that it reads back empty.
			p.data[i][j] = pgtype.Text{String: string(e.Data), Valid: len(e.Data) > 0}
			m, err := json.Marshal(e.Metadata)
			if err != nil {
				return nil, fmt.Errorf("append %s: encode metadata: %w", a.Stream, err)
			}
			p.metadata[i][j] = string(m)
			p.occurred[i][j] = e.OccurredAt
			if e.OccurredAt.IsZero() {
				p.occurred[i][j] = now
			}
		}
	}
	slices.Sort(p.streams)
	p.streams = slices.Compact(p.streams)
	return p, nil
}

type streamKey struct {
	stream string
	id     uuid.UUID
}

type versionKey struct {
	stream  string
	version int64
}

// writeSet is what an append writes, column by column, and what it answers.
type writeSet struct {
	ids      []uuid.UUID
	streams  []string
	versions []int64
	types    []string
	data     []pgtype.Text
	metadata []string
	tenants  []string
	occurred []time.Time

	results []eventstore.AppendResult
	lastOf  map[versionKey]int // an append's last event → the append's index

	// For the exact path: the version each stream must be at.
	expStreams  []string
	expVersions []int64
}

// decide works out an append given the streams' versions and the ids they
// hold: it skips held ids, checks expectations and numbers the rest. It
// answers a *ConflictError when an expectation fails.
func decide(appends []eventstore.Append, in *prepared, versions map[string]int64, held map[streamKey]bool) (*writeSet, error) {
	w := &writeSet{results: make([]eventstore.AppendResult, len(appends)), lastOf: make(map[versionKey]int)}
	for i, a := range appends {
		cur := versions[a.Stream]
		first := len(w.ids)
		for j, e := range a.Events {
			k := streamKey{a.Stream, e.ID}
			if held[k] {
				continue
			}
			held[k] = true // an id repeated within the call is written once
			w.ids = append(w.ids, e.ID)
			w.streams = append(w.streams, a.Stream)
			w.versions = append(w.versions, cur+int64(len(w.ids)-first))
			w.types = append(w.types, e.Type)
			w.data = append(w.data, in.data[i][j])
			w.metadata = append(w.metadata, in.metadata[i][j])
			w.tenants = append(w.tenants, e.Metadata.TenantID)
			w.occurred = append(w.occurred, in.occurred[i][j])
		}
		n := int64(len(w.ids) - first)
		if n == 0 {
			w.results[i].Version = uint64(cur)
			continue
		}
		if !a.Expected.Allows(uint64(cur)) {
			actual := cur
			if actual == 0 {
				actual = -1
			}
			return nil, &eventstore.ConflictError{Stream: a.Stream, Expected: a.Expected, Actual: actual}
		}
		versions[a.Stream] = cur + n
		w.results[i].Version = uint64(cur + n)
		w.lastOf[versionKey{a.Stream, cur + n}] = i
	}
	return w, nil
}

func (w *writeSet) insertArgs() []any {
	return []any{w.ids, w.streams, w.versions, w.types, w.data, w.metadata, w.tenants, w.occurred}
}

// readPositions sets the results' positions from rows of (tx_id, seq,
// stream, version).
func (w *writeSet) readPositions(rows pgx.Rows) (int, error) {
	var (
		pos     eventstore.Position
		stream  string
		version int64
		n       int
	)
	_, err := pgx.ForEachRow(rows, []any{&pos.Commit, &pos.Prepare, &stream, &version}, func() error {
		n++
		if i, ok := w.lastOf[versionKey{stream, version}]; ok {
			w.results[i].Position = pos
		}
		return nil
	})
	return n, err
}

func (s *Store) appendOnce(ctx context.Context, appends []eventstore.Append, in *prepared) ([]eventstore.AppendResult, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("append %s: acquire connection: %w", appends[0].Stream, err)
	}
	// The pool drops a connection given back inside a transaction.
	defer conn.Release()
	if len(in.keyIDs) < s.copyFrom {
		if w := exactPlan(appends, in); w != nil {
			ok, err := s.appendExact(ctx, conn.Conn(), in, w)
			if err != nil {
				return nil, fmt.Errorf("append %s: %w", appends[0].Stream, err)
			}
			if ok {
				s.notifier.kick()
				return w.results, nil
			}
		}
	}
	res, err := s.appendGeneral(ctx, conn.Conn(), appends, in)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// exactPlan answers what the call writes if every stream is at the version
// its first append expects and holds none of the ids, or nil when a first
// expectation names no version (Any, StreamExists) or the call contradicts
// itself; the general path then decides.
func exactPlan(appends []eventstore.Append, in *prepared) *writeSet {
	versions := make(map[string]int64, len(in.streams))
	for _, a := range appends {
		if _, seen := versions[a.Stream]; seen {
			continue
		}
		switch {
		case a.Expected == eventstore.NoStream:
			versions[a.Stream] = 0
		case a.Expected >= 0:
			versions[a.Stream] = int64(a.Expected)
		default:
			return nil
		}
	}
	expStreams := make([]string, 0, len(versions))
	expVersions := make([]int64, 0, len(versions))
	for st, v := range versions {
		expStreams = append(expStreams, st)
		expVersions = append(expVersions, v)
	}
	w, err := decide(appends, in, versions, make(map[streamKey]bool))
	if err != nil {
		return nil
	}
	w.expStreams, w.expVersions = expStreams, expVersions
	return w
}

// appendExact runs the exact path: it reports whether it wrote the events.
// Without a beforeCommit hook the batch runs in the implicit transaction
// PostgreSQL wraps around a pipeline, committed when the batch ends.
func (s *Store) appendExact(ctx context.Context, conn *pgx.Conn, in *prepared, w *writeSet) (ok bool, err error) {
	b := &pgx.Batch{}
	explicit := s.beforeCommit != nil
	if explicit {
		b.Queue("BEGIN")
	}
	b.Queue(sqlLock, int32(lockNamespace), in.streams)
	b.Queue(sqlInsertIf, append(w.insertArgs(), w.expStreams, w.expVersions)...)
	var n int
	err = func() error {
		br := conn.SendBatch(ctx, b)
		defer br.Close()
		if explicit {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		if _, err := br.Exec(); err != nil {
			return err
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		n, err = w.readPositions(rows)
		return err
	}()
	if err != nil {
		if explicit {
			rollback(conn)
		}
		return false, fmt.Errorf("write: %w", err)
	}
	if !explicit {
		return n > 0, nil
	}
	if n == 0 {
		rollback(conn)
		return false, nil
	}
	return true, s.commit(ctx, conn)
}

// commit runs the beforeCommit hook, then commits; on failure it rolls back.
func (s *Store) commit(ctx context.Context, conn *pgx.Conn) error {
	if err := s.beforeCommit(ctx); err != nil {
		rollback(conn)
		return err
	}
	if _, err := conn.Exec(ctx, "COMMIT"); err != nil {
		rollback(conn)
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// appendGeneral runs the general path. The transaction is opened and closed
// by statements inside the batches rather than by pgx.Tx, which would add
// two round trips to every append.
func (s *Store) appendGeneral(ctx context.Context, conn *pgx.Conn, appends []eventstore.Append, in *prepared) (_ []eventstore.AppendResult, err error) {
	defer func() {
		if err == nil {
			return
		}
		rollback(conn)
		var ce *eventstore.ConflictError
		if !errors.As(err, &ce) { // a conflict names its stream already
			err = fmt.Errorf("append %s: %w", appends[0].Stream, err)
		}
	}()

	// Round trip 1: open the transaction, lock the streams, read their
	// versions and which of the events' ids they already hold.
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(sqlLock, int32(lockNamespace), in.streams)
	b.Queue(sqlReadStreams, in.streams, in.keyStreams, in.keyIDs)
	versions := make(map[string]int64, len(in.streams))
	held := make(map[streamKey]bool)
	err = func() error {
		br := conn.SendBatch(ctx, b)
		defer br.Close()
		for range 2 {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		var (
			stream  string
			version *int64
			id      *uuid.UUID
		)
		_, err = pgx.ForEachRow(rows, []any{&stream, &version, &id}, func() error {
			if id != nil {
				held[streamKey{stream, *id}] = true
			} else {
				versions[stream] = *version
			}
			return nil
		})
		return err
	}()
	if err != nil {
		return nil, fmt.Errorf("read streams: %w", err)
	}

	w, err := decide(appends, in, versions, held)
	if err != nil {
		return nil, err
	}
	if len(w.ids) == 0 {
		rollback(conn) // every event was there already
		return w.results, nil
	}

	// Round trip 2 (3 with COPY): write the events and commit. NOTIFY is
	// sent afterwards (see notifier): inside the transaction it would
	// serialise every append's commit on PostgreSQL's global notification
	// lock.
	b = &pgx.Batch{}
	if len(w.ids) >= s.copyFrom {
		// COPY costs a round trip of its own but inserts large calls
		// faster than INSERT … SELECT FROM unnest; the positions of the
		// appends' last events are read back by (stream, version).
		src := pgx.CopyFromSlice(len(w.ids), func(i int) ([]any, error) {
			var d []byte
			if w.data[i].Valid {
				d = []byte(w.data[i].String)
			}
			return []any{w.ids[i], w.streams[i], w.versions[i], w.types[i], d, w.metadata[i], w.tenants[i], w.occurred[i]}, nil
		})
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{"events"}, copyColumns, src); err != nil {
			return nil, fmt.Errorf("write: %w", err)
		}
		lastStreams := make([]string, 0, len(w.lastOf))
		lastVersions := make([]int64, 0, len(w.lastOf))
		for k := range w.lastOf {
			lastStreams = append(lastStreams, k.stream)
			lastVersions = append(lastVersions, k.version)
		}
		b.Queue(sqlPositions, lastStreams, lastVersions)
	} else {
		b.Queue(sqlInsert, w.insertArgs()...)
	}
	if s.beforeCommit == nil {
		b.Queue("COMMIT")
	}
	err = func() error {
		br := conn.SendBatch(ctx, b)
		defer br.Close()
		rows, err := br.Query()
		if err != nil {
			return err
		}
		if _, err := w.readPositions(rows); err != nil {
			return err
		}
		for range b.Len() - 1 {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		return nil
	}()
	if err != nil {
		return nil, fmt.Errorf("write: %w", err)
	}
	if s.beforeCommit != nil {
		if err := s.commit(ctx, conn); err != nil {
			return nil, err
		}
	}
	s.notifier.kick()
	return w.results, nil
}

// rollback ends a failed append's transaction, if one is open, so that its
// connection can go back to the pool; it has a context of its own because
// the caller's may be done.
func rollback(conn *pgx.Conn) {
	if conn.IsClosed() || conn.PgConn().TxStatus() == 'I' {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, "ROLLBACK"); err != nil {
		// The pool destroys a connection it gets back inside a transaction.
		conn.Close(ctx) //nolint:errcheck
	}
}
