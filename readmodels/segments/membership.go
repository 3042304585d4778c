package segments

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/segmentio/encoding/json"

	"github.com/clubcrm/crm/domain/segment"
)

// Membership tables: functions of the read models, kept by refreshes and
// the membership projector in the transaction that decides them.
const (
	MembersTable = "segment_members"
	StateTable   = "segment_state"
	OutboxTable  = "segment_outbox"
)

// Querier runs statements: a transaction, a connection or a pool.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// live is a segment that has members: created and not deleted, its
// definition checked.
type live struct {
	Tenant  string
	ID      uuid.UUID
	Version int64
	Type    segment.Type
	Node    segment.Node
}

// loadLive answers the live segments of tenants (all when ids is nil, else
// those of ids), in id order: the order their locks are taken in.
func loadLive(ctx context.Context, q Querier, tenants []string, ids []uuid.UUID) ([]live, error) {
	sql := `SELECT tenant_id, id, version, name, description, type, rules, smart FROM segments
WHERE tenant_id = ANY($1) AND deleted_at IS NULL AND ($2::uuid[] IS NULL OR id = ANY($2)) ORDER BY tenant_id, id`
	var idArg any
	if ids != nil {
		idArg = ids
	}
	rows, err := q.Query(ctx, sql, tenants, idArg)
	if err != nil {
		return nil, fmt.Errorf("load segments: %w", err)
	}
	defer rows.Close()
	var out []live
	for rows.Next() {
		var (
			l           live
			d           segment.Definition
			typ         string
			rules       []byte
			smart       []byte
			name, descr string
		)
		if err := rows.Scan(&l.Tenant, &l.ID, &l.Version, &name, &descr, &typ, &rules, &smart); err != nil {
			return nil, fmt.Errorf("load segments: %w", err)
		}
		var g segment.Rules
		if err := json.Unmarshal(rules, &g); err != nil {
			return nil, fmt.Errorf("segment %s: rules: %w", l.ID, err)
		}
		d = segment.Definition{Name: name, Description: descr, Type: segment.Type(typ), Combinator: g.Combinator, Rules: g.Rules}
		if smart != nil {
			d.Smart = &segment.Smart{}
			if err := json.Unmarshal(smart, d.Smart); err != nil {
				return nil, fmt.Errorf("segment %s: smart: %w", l.ID, err)
			}
		}
		node, p := d.Check()
		if p != nil {
			// Stored definitions were checked when decided; one that no
			// longer checks (a field since removed) is left as it is,
			// members and all, rather than emptied or allowed to hold up
			// every other segment. Refreshing it answers why.
			if ids != nil {
				return nil, fmt.Errorf("segment %s: %w", l.ID, segment.ErrInvalid(p))
			}
			slog.Warn("segment definition no longer valid: its membership is not kept until it is redefined",
				slog.String("tenant", l.Tenant), slog.String("segment", l.ID.String()), slog.Any("problems", p))
			continue
		}
		l.Type, l.Node = d.Type, node
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load segments: %w", err)
	}
	return out, nil
}

// predicate answers the SQL that selects the segment's members among the
// customers c of its tenant ($1) and what it reads.
func (l live) predicate(p *params, now time.Time) (string, needs, error) {
	if l.Type == segment.Static {
		return `EXISTS (SELECT 1 FROM ` + StaticTable + ` sm WHERE sm.tenant_id = c.tenant_id AND sm.segment_id = ` +
			p.add(l.ID) + `::uuid AND sm.customer_id = c.id)`, needs{}, nil
	}
	return compile(l.Node, p, now)
}

// selectMembers answers the query of the segment's members: a tenant's
// live profiles (never a merged-away one) that satisfy the predicate,
// restricted to only when it is not empty.
func selectMembers(pred string, n needs, tenant string, only string) string {
	s := `SELECT c.id FROM ` + n.from() + ` WHERE c.tenant_id = ` + tenant + ` AND c.status <> 'MERGED' AND ` + pred
	if only != "" {
		s += ` AND c.id = ANY(` + only + `)`
	}
	return s
}

// lock serialises every writer of a segment's membership for the rest of
// the transaction: refreshes, the membership projector and the sync.
func lock(ctx context.Context, q Querier, tenant string, id uuid.UUID) error {
	if _, err := q.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('crm-segment:' || $1 || ':' || $2, 0))`, tenant, id.String()); err != nil {
		return fmt.Errorf("lock segment %s: %w", id, err)
	}
	return nil
}

// lockAll takes the locks of segments, in their order, in one statement.
func lockAll(ctx context.Context, q Querier, segs []live) error {
	tenants, ids := make([]string, len(segs)), make([]string, len(segs))
	for i, l := range segs {
		tenants[i], ids[i] = l.Tenant, l.ID.String()
	}
	if _, err := q.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('crm-segment:' || t || ':' || id, 0))
FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS x(t, id, n) ORDER BY n`, tenants, ids); err != nil {
		return fmt.Errorf("lock %d segments: %w", len(segs), err)
	}
	return nil
}

// Change is what one membership write did to a segment.
type Change struct {
	Added   []uuid.UUID `json:"-"`
	Removed []uuid.UUID `json:"-"`
	Total   int64       `json:"total"`
}

// Reasons a membership changes, as crm.segment.membership.changed says.
const (
	ReasonRefresh     = "refresh"
	ReasonIncremental = "incremental"
	ReasonDeleted     = "deleted"
)

// refresh recomputes a segment's membership in one statement: the members
// the predicate selects now, those to remove and those to add, diffed in
// the database. With only, it recomputes just those profiles' membership
// (the incremental path); without, the whole segment. The caller holds the
// segment's lock and the transaction, and records the change.
func refresh(ctx context.Context, q Querier, l live, now time.Time, only []uuid.UUID) (Change, error) {
	sql, args, err := refreshSQL(l, now, only)
	if err != nil {
		return Change{}, err
	}
	return scanChange(q.QueryRow(ctx, sql, args...), l)
}

func scanChange(row pgx.Row, l live) (Change, error) {
	var c Change
	if err := row.Scan(&c.Total, &c.Added, &c.Removed); err != nil {
		return Change{}, fmt.Errorf("refresh segment %s: %w", l.ID, err)
	}
	return c, nil
}

// refreshSQL answers refresh's statement and its arguments. New members
// are inserted ON CONFLICT DO NOTHING, so each is one probe of the primary
// key whatever PostgreSQL estimates: as an anti-join, with a segment that
// had grown since its statistics, the plan read the segment's every member
// once per new member (docs/performance.md, 2026-12-06, evening).
func refreshSQL(l live, now time.Time, only []uuid.UUID) (string, []any, error) {
	p := &params{}
	tenant := p.add(l.Tenant) + "::text"
	seg := p.add(l.ID) + "::uuid"
	since := p.add(now) + "::timestamptz"
	restrict, mine := "", ""
	if only != nil {
		restrict = p.add(only) + "::uuid[]"
		mine = " AND sm.customer_id = ANY(" + restrict + ")"
	}
	pred, n, err := l.predicate(p, now)
	if err != nil {
		return "", nil, fmt.Errorf("segment %s: %w", l.ID, err)
	}
	total := "(SELECT count(*) FROM want)"
	if only != nil {
		total = "-1" // the caller moves the count by the change
	}
	sql := `WITH want AS MATERIALIZED (
    ` + selectMembers(pred, n, tenant, restrict) + `
), removed AS (
    DELETE FROM ` + MembersTable + ` sm WHERE sm.tenant_id = ` + tenant + ` AND sm.segment_id = ` + seg + mine + `
    AND NOT EXISTS (SELECT 1 FROM want w WHERE w.id = sm.customer_id)
    RETURNING sm.customer_id
), added AS (
    INSERT INTO ` + MembersTable + ` (tenant_id, segment_id, customer_id, since)
    SELECT ` + tenant + `, ` + seg + `, w.id, ` + since + ` FROM want w
    ON CONFLICT (tenant_id, segment_id, customer_id) DO NOTHING
    RETURNING customer_id
)
SELECT ` + total + `,
    coalesce((SELECT array_agg(customer_id ORDER BY customer_id) FROM added), '{}'),
    coalesce((SELECT array_agg(customer_id ORDER BY customer_id) FROM removed), '{}')`
	return sql, p.args, nil
}

// clear removes every member of a deleted segment.
func clear(ctx context.Context, q Querier, tenant string, id uuid.UUID) (Change, error) {
	c := Change{Added: []uuid.UUID{}}
	err := q.QueryRow(ctx, `WITH removed AS (
    DELETE FROM `+MembersTable+` WHERE tenant_id = $1 AND segment_id = $2 RETURNING customer_id
) SELECT coalesce((SELECT array_agg(customer_id ORDER BY customer_id) FROM removed), '{}')`, tenant, id).Scan(&c.Removed)
	if err != nil {
		return Change{}, fmt.Errorf("clear segment %s: %w", id, err)
	}
	return c, nil
}

// record keeps a membership change: the segment's state (its member count,
// change sequence, last refresh) and, when anything changed, the
// crm.segment.membership.changed messages and the Messaging diff in the
// outbox, all in the caller's transaction. total < 0 says the count moved
// by the change alone (an incremental change does not count the members).
func record(ctx context.Context, q Querier, tenant string, id uuid.UUID, version int64, c Change, reason string, now time.Time, took *time.Duration) error {
	st, err := scanState(q.QueryRow(ctx, stateSQL, stateArgs(tenant, id, c, now, took)...), id)
	if err != nil {
		return err
	}
	if !c.changed() {
		return nil
	}
	return outbox{q: q, tenant: tenant, now: now}.changed(ctx, id, version, c, st, reason)
}

// recordMany is record for incremental changes (no refresh time), changes[i]
// of segs[i]: the state of every segment that moved in one round trip,
// then every message in another; a segment that did not move has no state
// to touch. One by one, a batch touching many clubs' segments waited for
// two round trips per segment, each on a busy server.
func recordMany(ctx context.Context, tx pgx.Tx, segs []live, changes []Change, reason string, now time.Time) error {
	var moved []int
	b := &pgx.Batch{}
	for i, l := range segs {
		if changes[i].changed() {
			moved = append(moved, i)
			b.Queue(stateSQL, stateArgs(l.Tenant, l.ID, changes[i], now, nil)...)
		}
	}
	if len(moved) == 0 {
		return nil
	}
	br := tx.SendBatch(ctx, b)
	states := make([]state, len(moved))
	for j, i := range moved {
		st, err := scanState(br.QueryRow(), segs[i].ID)
		if err != nil {
			br.Close()
			return err
		}
		states[j] = st
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("state of %d segments: %w", len(moved), err)
	}
	q := &queued{Tx: tx}
	for j, i := range moved {
		l := segs[i]
		if err := (outbox{q: q, tenant: l.Tenant, now: now}).changed(ctx, l.ID, l.Version, changes[i], states[j], reason); err != nil {
			return err
		}
	}
	return q.flush(ctx)
}

// stateSQL moves a segment's state by a change (stateArgs).
const stateSQL = `INSERT INTO ` + StateTable + ` AS st (tenant_id, segment_id, members, changes, refreshed_at, refreshed_ms)
VALUES ($1, $2, coalesce($3::bigint, $4::bigint), $5, CASE WHEN $6::int IS NOT NULL THEN $7::timestamptz END, $6::int)
ON CONFLICT (tenant_id, segment_id) DO UPDATE SET
    members = coalesce($3::bigint, st.members + $4::bigint),
    changes = st.changes + $5,
    refreshed_at = CASE WHEN $6::int IS NOT NULL THEN $7::timestamptz ELSE st.refreshed_at END,
    refreshed_ms = coalesce($6::int, st.refreshed_ms)
RETURNING members, changes, sync_snapshot_id, sync_sequence`

func stateArgs(tenant string, id uuid.UUID, c Change, now time.Time, took *time.Duration) []any {
	var ms *int
	if took != nil {
		v := int(took.Milliseconds())
		ms = &v
	}
	var total any
	if c.Total >= 0 {
		total = c.Total
	}
	inc := 0
	if c.changed() {
		inc = 1
	}
	return []any{tenant, id, total, int64(len(c.Added) - len(c.Removed)), inc, ms, now}
}

// state is a segment's state after a change: its members, its change
// sequence, and its Messaging sync (no snapshot when not synced).
type state struct {
	members, seq int64
	snapshot     *uuid.UUID
	syncSeq      int64
}

func scanState(row pgx.Row, id uuid.UUID) (state, error) {
	var st state
	if err := row.Scan(&st.members, &st.seq, &st.snapshot, &st.syncSeq); err != nil {
		return state{}, fmt.Errorf("segment %s state: %w", id, err)
	}
	return st, nil
}

func (c Change) changed() bool { return len(c.Added)+len(c.Removed) > 0 }

// queued holds back Exec until flush, sending what it held in one round
// trip; queries go straight to the transaction. For writes nothing reads
// before the flush.
type queued struct {
	pgx.Tx
	b pgx.Batch
}

func (q *queued) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	q.b.Queue(sql, args...)
	return pgconn.CommandTag{}, nil
}

func (q *queued) flush(ctx context.Context) error {
	if q.b.Len() == 0 {
		return nil
	}
	if err := q.Tx.SendBatch(ctx, &q.b).Close(); err != nil {
		return fmt.Errorf("segment messages: %w", err)
	}
	return nil
}

// errNoSegment is answered for a segment that is not live in the tenant.
var errNoSegment = segment.ErrNotFound

// one answers the live segment id of tenant, or segment.ErrNotFound.
func one(ctx context.Context, q Querier, tenant string, id uuid.UUID) (live, error) {
	ls, err := loadLive(ctx, q, []string{tenant}, []uuid.UUID{id})
	if err != nil {
		return live{}, err
	}
	if len(ls) == 0 {
		return live{}, errNoSegment
	}
	return ls[0], nil
}

// IsNotFound reports whether err says the segment does not exist.
func IsNotFound(err error) bool { return errors.Is(err, segment.ErrNotFound) }
