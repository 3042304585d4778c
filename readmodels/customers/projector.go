package customers

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/segmentio/encoding/json"

	"github.com/clubcrm/crm/adapters/postgres"
	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/domain/identity"
	"github.com/clubcrm/crm/eventstore"
	"github.com/clubcrm/crm/projections"
)

// Name is the projector's name and checkpoint.
const Name = "customers"

// The tables the projector owns, by their live names.
const (
	customersTable  = "customers"
	duplicatesTable = "duplicate_candidates"
)

// Statuses of a duplicate candidate pair.
const (
	DuplicateOpen      = "OPEN"
	DuplicateMerged    = "MERGED"
	DuplicateDismissed = "DISMISSED"
)

// DuplicateStatuses lists every status of a candidate pair.
var DuplicateStatuses = []string{DuplicateOpen, DuplicateMerged, DuplicateDismissed}

// pairNamespace roots the ids of duplicate candidate pairs.
var pairNamespace = uuid.MustParse("9d3c1f57-2a8e-4e0b-b7f4-1c6a5e2d8f30")

// PairID answers the id of the candidate pair of a and b in tenant. It does
// not depend on the order of a and b, so a pair flagged from either side is
// one row.
func PairID(tenant string, a, b uuid.UUID) uuid.UUID {
	if bytes.Compare(b[:], a[:]) < 0 {
		a, b = b, a
	}
	return uuid.NewSHA1(pairNamespace, []byte(tenant+"\x1f"+a.String()+"\x1f"+b.String()))
}

// Projector keeps the customers and duplicate_candidates tables from the
// customer-* streams.
//
// Each customers row holds the folded aggregate in its state column; a
// batch reads the rows of the streams it touches in one query, applies the
// new events to them with the aggregate's own Apply, and writes every
// changed row and every duplicate-review change in one pipelined round trip.
// The columns are therefore always exactly FromProfile of a fold of the
// stream.
type Projector struct{}

var _ projections.IndexDeferrer = Projector{}

// Name implements projections.Projector.
func (Projector) Name() string { return Name }

// Tables implements projections.Projector.
func (Projector) Tables() []string { return []string{customersTable, duplicatesTable} }

// DeferredIndexes implements projections.IndexDeferrer: Apply reads and
// writes rows by primary key only, so a rebuild builds the listing, filter
// and search indexes once at the end.
func (Projector) DeferredIndexes() []string {
	return []string{
		"customers_created", "customers_tags", "customers_search", "customers_fuzzy", "customers_tagged",
		"duplicate_candidates_open",
	}
}

// Filter implements projections.Projector.
func (Projector) Filter() eventstore.Filter {
	return eventstore.Filter{Categories: []string{customer.Category}}
}

type streamKey struct {
	tenant string
	id     uuid.UUID
}

// Apply implements projections.Projector.
func (Projector) Apply(ctx context.Context, tx pgx.Tx, tables projections.Tables, events []eventstore.Event) error {
	var keys []streamKey
	seen := map[streamKey]bool{}
	for _, e := range events {
		if k, ok := keyOf(e); ok && !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	profiles, err := loadStates(ctx, tx, tables, keys)
	if err != nil {
		return err
	}
	var dups duplicateWrites
	changed, err := fold(profiles, events, func(k streamKey, e eventstore.Event, v any) { dups.note(k, v, e.RecordedAt) })
	if err != nil {
		return err
	}
	return write(ctx, tx, tables, profiles, changed, &dups)
}

// fold applies events to profiles, starting an empty profile for a stream
// profiles lacks, calls seen for each event applied, and answers the
// profiles changed in the order they were first changed.
//
// Events are applied in the order given (log order, or stream by stream in
// a rebuild's fold), never stream after stream out of it, because seen may
// gather what spans streams: the review of a pair may be flagged on one
// stream and decided on another.
func fold(profiles map[streamKey]*customer.Profile, events []eventstore.Event, seen func(streamKey, eventstore.Event, any)) ([]streamKey, error) {
	var changed []streamKey
	marked := map[streamKey]bool{}
	for _, e := range events {
		k, ok := keyOf(e)
		if !ok {
			continue
		}
		p := profiles[k]
		if p == nil {
			p = &customer.Profile{ID: k.id, TenantID: k.tenant}
			profiles[k] = p
		}
		if e.Version <= p.Version {
			continue // already folded into the row: a replayed batch
		}
		v, err := projections.Decode(e, customer.Decode)
		if err != nil {
			// The aggregate could not load this stream either: stop here
			// rather than serve a row that disagrees with it.
			return nil, fmt.Errorf("project %s version %d: %w", e.Stream, e.Version, err)
		}
		if !marked[k] {
			marked[k] = true
			changed = append(changed, k)
		}
		p.Apply(v, e.RecordedAt)
		seen(k, e, v)
	}
	return changed, nil
}

// write upserts the rows of the changed profiles and the duplicate-review
// changes dups gathered (nil for none) in one pipelined round trip.
func write(ctx context.Context, tx pgx.Tx, tables projections.Tables, profiles map[streamKey]*customer.Profile, changed []streamKey, dups *duplicateWrites) error {
	var rows upsertRows
	for _, k := range changed {
		if err := rows.add(profiles[k]); err != nil {
			return err
		}
	}
	batch := &pgx.Batch{}
	if rows.len() > 0 {
		batch.Queue(upsertSQL(tables.Ident(customersTable)), rows.args()...)
	}
	if dups != nil {
		dups.queue(batch, tables.Ident(duplicatesTable))
	}
	if batch.Len() == 0 {
		return nil
	}
	br := tx.SendBatch(ctx, batch)
	for i := 0; i < batch.Len(); i++ {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return fmt.Errorf("write customers read model (statement %d of %d): %w", i+1, batch.Len(), err)
		}
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("write customers read model: %w", err)
	}
	return nil
}

// keyOf answers the profile an event belongs to. A stream of the category
// whose id is not a UUID holds no profile (the aggregate only writes
// customer-<uuid>); it is passed over rather than stopping the projector.
func keyOf(e eventstore.Event) (streamKey, bool) {
	id, ok := customer.StreamID(e.Stream)
	if !ok {
		return streamKey{}, false
	}
	return streamKey{tenant: e.Metadata.TenantID, id: id}, true
}

// loadStates reads the folded profiles of keys in one query; profiles with
// no row yet come back empty, ready for their first event.
func loadStates(ctx context.Context, tx pgx.Tx, tables projections.Tables, keys []streamKey) (map[streamKey]*customer.Profile, error) {
	out, err := readStates(ctx, tx, tables.Ident(customersTable), keys, "")
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if out[k] == nil {
			out[k] = &customer.Profile{ID: k.id, TenantID: k.tenant}
		}
	}
	return out, nil
}

// readStates decodes the state of the rows of table (a quoted identifier)
// that keys name and that meet cond (SQL over the row c, "" for all, its
// arguments from $3), by their keys.
func readStates(ctx context.Context, q postgres.Queryer, table string, keys []streamKey, cond string, args ...any) (map[streamKey]*customer.Profile, error) {
	tenants, ids := make([]string, len(keys)), make([]uuid.UUID, len(keys))
	for i, k := range keys {
		tenants[i], ids[i] = k.tenant, k.id
	}
	if cond != "" {
		cond = " AND " + cond
	}
	rows, err := q.Query(ctx, `SELECT c.tenant_id, c.id, c.state FROM `+table+` c
WHERE (c.tenant_id, c.id) IN (SELECT * FROM unnest($1::text[], $2::uuid[]))`+cond,
		append([]any{tenants, ids}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("read customers state: %w", err)
	}
	defer rows.Close()
	out := make(map[streamKey]*customer.Profile, len(keys))
	for rows.Next() {
		var k streamKey
		var state []byte
		if err := rows.Scan(&k.tenant, &k.id, &state); err != nil {
			return nil, fmt.Errorf("read customers state: %w", err)
		}
		p := &customer.Profile{}
		if err := json.Unmarshal(state, p); err != nil {
			return nil, fmt.Errorf("decode state of customer %s: %w", k.id, err)
		}
		out[k] = p
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read customers state: %w", err)
	}
	return out, nil
}

// duplicateWrites gathers the batch's changes to duplicate_candidates as
// statements in log order. Consecutive flags are coalesced into one insert;
// a decision in between starts a new one, so a pair flagged, dismissed and
// flagged again within one batch stays dismissed, as it would one event at
// a time.
type duplicateWrites struct {
	stmts []dupStmt
	run   *flagRun
}

type dupStmt struct {
	flags  *flagRun
	decide *decision
}

// flagRun is a coalesced run of flags: one candidate per pair, the first
// sighting fixing the pair's sides and creation time, the strongest
// evidence its key, reason and confidence (as the insert's ON CONFLICT
// clause would have left it).
type flagRun struct {
	order []streamKey // tenant and pair id
	pairs map[streamKey]*candidate
}

type candidate struct {
	a, b       uuid.UUID
	key        identity.Key
	reason     string
	confidence int
	causedBy   string
	at         time.Time
}

type decision struct {
	tenant   string
	pair     uuid.UUID
	status   string
	onlyOpen bool // a merge settles open pairs only; staff decisions overrule dismissals too
	actor    string
	at       time.Time
}

// reviews reports whether v is an event note acts on.
func reviews(v any) bool {
	switch v.(type) {
	case *customer.DuplicateFlagged, *customer.DuplicateCleared, *customer.Merged:
		return true
	}
	return false
}

func (d *duplicateWrites) note(k streamKey, v any, at time.Time) {
	switch e := v.(type) {
	case *customer.DuplicateFlagged:
		for _, c := range e.Candidates {
			if c.Other == uuid.Nil || c.Other == k.id {
				continue
			}
			d.flag(k.tenant, candidate{a: k.id, b: c.Other, key: c.Key, reason: c.Reason, confidence: c.Confidence, causedBy: e.CausedBy, at: at})
		}
	case *customer.DuplicateCleared:
		var status string
		switch strings.ToLower(e.Action) {
		case "merged":
			status = DuplicateMerged
		case "dismissed":
			status = DuplicateDismissed
		default:
			return // an action this model does not know changes nothing
		}
		d.decide(decision{tenant: k.tenant, pair: PairID(k.tenant, k.id, e.Other), status: status, actor: e.Actor, at: at})
	case *customer.Merged:
		d.decide(decision{tenant: k.tenant, pair: PairID(k.tenant, k.id, e.SourceID), status: DuplicateMerged, onlyOpen: true, actor: e.Actor, at: at})
	}
}

func (d *duplicateWrites) flag(tenant string, c candidate) {
	if d.run == nil {
		d.run = &flagRun{pairs: map[streamKey]*candidate{}}
		d.stmts = append(d.stmts, dupStmt{flags: d.run})
	}
	k := streamKey{tenant: tenant, id: PairID(tenant, c.a, c.b)}
	prev, ok := d.run.pairs[k]
	switch {
	case !ok:
		d.run.order = append(d.run.order, k)
		d.run.pairs[k] = &c
	case c.confidence > prev.confidence:
		prev.key, prev.reason, prev.confidence, prev.causedBy = c.key, c.reason, c.confidence, c.causedBy
	}
}

func (d *duplicateWrites) decide(dec decision) {
	d.run = nil
	d.stmts = append(d.stmts, dupStmt{decide: &dec})
}

func (d *duplicateWrites) queue(b *pgx.Batch, table string) {
	insert := fmt.Sprintf(`INSERT INTO %s AS d (tenant_id, id, customer_a, customer_b, key_kind, key_value, reason, confidence, caused_by, created_at)
SELECT * FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::text[], $8::int[], $9::text[], $10::timestamptz[])
ON CONFLICT (tenant_id, id) DO UPDATE SET key_kind = excluded.key_kind, key_value = excluded.key_value,
    reason = excluded.reason, confidence = excluded.confidence, caused_by = excluded.caused_by
WHERE d.status = 'OPEN' AND excluded.confidence > d.confidence`, table)
	// Staff may merge a pair they had dismissed; nothing reopens a merge.
	update := fmt.Sprintf(`UPDATE %s SET status = $3, resolved_by = $4, resolved_at = $5
WHERE tenant_id = $1 AND id = $2 AND status <> 'MERGED' AND (status = 'OPEN' OR NOT $6)`, table)
	for _, s := range d.stmts {
		if s.decide != nil {
			x := s.decide
			b.Queue(update, x.tenant, x.pair, x.status, optional(x.actor), x.at, x.onlyOpen)
			continue
		}
		n := len(s.flags.order)
		var (
			tenants                      = make([]string, n)
			ids, as, bs                  = make([]uuid.UUID, n), make([]uuid.UUID, n), make([]uuid.UUID, n)
			kinds, values, reasons, cbys = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
			confs                        = make([]int32, n)
			ats                          = make([]time.Time, n)
		)
		for i, k := range s.flags.order {
			c := s.flags.pairs[k]
			tenants[i], ids[i], as[i], bs[i] = k.tenant, k.id, c.a, c.b
			kinds[i], values[i], reasons[i], cbys[i] = string(c.key.Kind), c.key.Value, c.reason, c.causedBy
			confs[i], ats[i] = int32(c.confidence), c.at
		}
		b.Queue(insert, tenants, ids, as, bs, kinds, values, reasons, confs, cbys, ats)
	}
}
