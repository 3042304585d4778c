// Package activities is the activity timeline read model (specification
// section 6) and the staff notes read model: the activities, timeline_state
// and customer_notes tables, the "timeline" and "notes" projectors that
// keep them from the customer-* streams, and the queries the HTTP API
// serves from them.
//
// What becomes an activity, and how it is written, is decided by the pure
// domain/timeline package; this package stores it. Every query runs inside
// postgres.InTenant, so row-level security confines it to the caller's
// tenant.
//
// Merges. When a profile is merged away its activities (and notes) move to
// the survivor: the customer.merged event rewrites their customer_id, in
// log order, so the survivor's timeline holds both histories and one index
// range answers a page. profile_id keeps the profile each was recorded on.
// Chains follow: merging the survivor later moves everything it holds.
package activities

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/segmentio/encoding/json"

	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/domain/timeline"
	"github.com/clubcrm/crm/eventstore"
	"github.com/clubcrm/crm/projections"
)

// Name is the timeline projector's name and checkpoint.
const Name = "timeline"

// Tables the timeline projector owns.
const (
	activitiesTable = "activities"
	stateTable      = "timeline_state"
)

// Projector keeps the activities and timeline_state tables from the
// customer-* streams. Options shape the titles (the zone dates are written
// in; UTC by default).
type Projector struct {
	Options timeline.Options
}

var _ projections.Projector = Projector{}

// Name implements projections.Projector.
func (Projector) Name() string { return Name }

// Tables implements projections.Projector.
func (Projector) Tables() []string { return []string{activitiesTable, stateTable} }

// Filter implements projections.Projector.
func (Projector) Filter() eventstore.Filter {
	return eventstore.Filter{Categories: []string{customer.Category}}
}

type streamKey struct {
	tenant string
	id     uuid.UUID
}

// keyOf answers the profile an event belongs to; a stream of the category
// whose id is not a UUID holds no profile and is passed over.
func keyOf(e eventstore.Event) (streamKey, bool) {
	id, ok := customer.StreamID(e.Stream)
	if !ok {
		return streamKey{}, false
	}
	return streamKey{tenant: e.Metadata.TenantID, id: id}, true
}

// Apply implements projections.Projector. A batch reads the state of every
// profile it touches in one query, describes its events in log order, and
// sends its writes in one pipelined round trip: runs of inserts, with each
// note change or merge in its place between them.
func (p Projector) Apply(ctx context.Context, tx pgx.Tx, tables projections.Tables, events []eventstore.Event) error {
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
	states, err := loadStates(ctx, tx, tables.Ident(stateTable), keys)
	if err != nil {
		return err
	}
	w := writes{table: tables.Ident(activitiesTable)}
	dirty := map[streamKey]bool{}
	for _, e := range events {
		k, ok := keyOf(e)
		if !ok {
			continue
		}
		v, err := projections.Decode(e, customer.Decode)
		if err != nil {
			return fmt.Errorf("project %s version %d: %w", e.Stream, e.Version, err)
		}
		ev := timeline.Event{ID: e.ID, Type: e.Type, Data: v, Actor: e.Metadata.Actor, OccurredAt: e.OccurredAt}
		st := states[k]
		owner := ownerOf(k, states)
		switch d := v.(type) {
		case *customer.NoteEdited:
			w.editNote(k.tenant, d)
		case *customer.NoteDeleted:
			w.deleteNote(k.tenant, d.NoteID)
		case *customer.Merged:
			w.move(k.tenant, d.SourceID, owner)
		}
		if a, ok := timeline.Describe(ev, *st, p.Options); ok {
			w.insert(rowOf(k, owner, a, e))
		}
		if timeline.Changes(e.Type) {
			before := *st
			st.Apply(ev)
			if !before.Equal(*st) {
				dirty[k] = true
			}
		}
	}
	batch := w.batch()
	var tenants []string
	var ids []uuid.UUID
	var docs [][]byte
	for _, k := range keys {
		if dirty[k] {
			b, err := json.Marshal(states[k])
			if err != nil {
				return fmt.Errorf("encode timeline state: %w", err)
			}
			tenants, ids, docs = append(tenants, k.tenant), append(ids, k.id), append(docs, b)
		}
	}
	if len(ids) > 0 {
		batch.Queue(fmt.Sprintf(`INSERT INTO %s AS s (tenant_id, customer_id, state)
SELECT * FROM unnest($1::text[], $2::uuid[], $3::bytea[])
ON CONFLICT (tenant_id, customer_id) DO UPDATE SET state = excluded.state`, tables.Ident(stateTable)), tenants, ids, pgtype.FlatArray[[]byte](docs))
	}
	return send(ctx, tx, batch, "timeline")
}

// ownerOf answers the profile k's activities belong to: k itself, or the
// survivor it was merged into (commands send nothing to a merged profile,
// so this only matters for events a merge raced with).
func ownerOf(k streamKey, states map[streamKey]*timeline.State) uuid.UUID {
	id := k.id
	for hops := 0; hops < 16; hops++ {
		st, ok := states[streamKey{k.tenant, id}]
		if !ok || st.MergedInto == nil {
			break
		}
		id = *st.MergedInto
	}
	return id
}

func loadStates(ctx context.Context, tx pgx.Tx, table string, keys []streamKey) (map[streamKey]*timeline.State, error) {
	tenants, ids := make([]string, len(keys)), make([]uuid.UUID, len(keys))
	out := make(map[streamKey]*timeline.State, len(keys))
	for i, k := range keys {
		tenants[i], ids[i] = k.tenant, k.id
		out[k] = &timeline.State{}
	}
	rows, err := tx.Query(ctx, fmt.Sprintf(`SELECT s.tenant_id, s.customer_id, s.state FROM %s s
		WHERE (s.tenant_id, s.customer_id) IN (SELECT * FROM unnest($1::text[], $2::uuid[]))`, table), tenants, ids)
	if err != nil {
		return nil, fmt.Errorf("read timeline state: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k streamKey
		var b []byte
		if err := rows.Scan(&k.tenant, &k.id, &b); err != nil {
			return nil, fmt.Errorf("read timeline state: %w", err)
		}
		st := &timeline.State{}
		if err := json.Unmarshal(b, st); err != nil {
			return nil, fmt.Errorf("decode timeline state of %s: %w", k.id, err)
		}
		out[k] = st
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read timeline state: %w", err)
	}
	return out, nil
}

// row is one activities row; batch splits rows into the insert's column arrays.
type row struct {
	TenantID      string
	ID            uuid.UUID
	CustomerID    uuid.UUID
	ProfileID     uuid.UUID
	Type          string
	Category      string
	Channel       *string
	Title         string
	Description   *string
	Metadata      map[string]any
	SourceService string
	SourceID      *string
	OccurredAt    time.Time
	RecordedAt    time.Time
	Version       uint64
}

func rowOf(k streamKey, owner uuid.UUID, a timeline.Activity, e eventstore.Event) row {
	md := a.Metadata
	if md == nil {
		md = map[string]any{}
	}
	return row{
		TenantID: k.tenant, ID: a.ID, CustomerID: owner, ProfileID: k.id,
		Type: string(a.Type), Category: string(a.Category), Channel: optional(a.Channel),
		Title: a.Title, Description: optional(a.Description), Metadata: md,
		SourceService: a.SourceService, SourceID: optional(a.SourceID),
		OccurredAt: a.OccurredAt, RecordedAt: e.RecordedAt, Version: e.Version,
	}
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// writes gathers a batch's statements in log order: consecutive inserts
// coalesce into one; a note change or a merge ends the run, so it sees
// every row inserted before it.
type writes struct {
	table string
	stmts []stmt
	run   *[]row
}

type stmt struct {
	rows *[]row
	sql  string
	args []any
}

func (w *writes) insert(r row) {
	if w.run == nil {
		w.run = &[]row{}
		w.stmts = append(w.stmts, stmt{rows: w.run})
	}
	*w.run = append(*w.run, r)
}

func (w *writes) then(sql string, args ...any) {
	w.run = nil
	w.stmts = append(w.stmts, stmt{sql: sql, args: args})
}

// editNote keeps a note's activity in step with the note: its text, the
// pin and editor in its details, and its complaint mark, which adds or
// takes off "complaint" in the details and timeline.ComplaintPrefix in the
// title (a note's title is written by Describe, so the prefix is ours).
func (w *writes) editNote(tenant string, e *customer.NoteEdited) {
	patch := map[string]any{"editedBy": e.Actor}
	if e.Pinned != nil {
		patch["pinned"] = *e.Pinned
	}
	if e.Complaint != nil && *e.Complaint {
		patch["complaint"] = true
	}
	b, _ := json.Marshal(patch)
	w.then(fmt.Sprintf(`UPDATE %s SET description = coalesce($3, description),
    metadata = CASE WHEN $5::boolean IS FALSE THEN (metadata || $4::jsonb) - 'complaint' ELSE metadata || $4::jsonb END,
    title = CASE
        WHEN $5::boolean IS TRUE AND NOT starts_with(title, $6) THEN $6 || title
        WHEN $5::boolean IS FALSE AND starts_with(title, $6) THEN substr(title, length($6) + 1)
        ELSE title END
WHERE tenant_id = $1 AND id = $2`, w.table), tenant, e.NoteID, e.Body, string(b), e.Complaint, timeline.ComplaintPrefix)
}

// deleteNote takes a deleted note off the timeline; the profile's event
// history keeps it.
func (w *writes) deleteNote(tenant string, id uuid.UUID) {
	w.then(fmt.Sprintf(`DELETE FROM %s WHERE tenant_id = $1 AND id = $2`, w.table), tenant, id)
}

// move gives the survivor every activity of the merged-away profile.
func (w *writes) move(tenant string, from, to uuid.UUID) {
	if from == to {
		return
	}
	w.then(fmt.Sprintf(`UPDATE %s SET customer_id = $3 WHERE tenant_id = $1 AND customer_id = $2`, w.table), tenant, from, to)
}

func (w *writes) batch() *pgx.Batch {
	b := &pgx.Batch{}
	// Typed arrays travel in binary: no JSON to write or parse but the
	// details'.
	insert := fmt.Sprintf(`INSERT INTO %s (tenant_id, id, customer_id, profile_id, type, category, channel, title, description,
    metadata, source_service, source_id, occurred_at, recorded_at, stream_version)
SELECT t, i, c, p, ty, ca, ch, ti, de, md::jsonb, ss, si, oa, ra, v
FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
    $10::text[], $11::text[], $12::text[], $13::timestamptz[], $14::timestamptz[], $15::bigint[])
    AS r(t, i, c, p, ty, ca, ch, ti, de, md, ss, si, oa, ra, v)
ON CONFLICT (tenant_id, id) DO NOTHING`, w.table)
	for _, s := range w.stmts {
		if s.rows == nil {
			b.Queue(s.sql, s.args...)
			continue
		}
		rows := *s.rows
		n := len(rows)
		var (
			tenants, types, cats, titles, services = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
			ids, customers, profiles               = make([]uuid.UUID, n), make([]uuid.UUID, n), make([]uuid.UUID, n)
			channels, descs, sourceIDs             = make([]*string, n), make([]*string, n), make([]*string, n)
			mds                                    = make([]string, n)
			occurred, recorded                     = make([]time.Time, n), make([]time.Time, n)
			versions                               = make([]int64, n)
		)
		for i, r := range rows {
			md, err := json.Marshal(r.Metadata)
			if err != nil {
				// Metadata comes from JSON; it always encodes.
				panic(fmt.Sprintf("activities: encode metadata: %v", err))
			}
			tenants[i], ids[i], customers[i], profiles[i] = r.TenantID, r.ID, r.CustomerID, r.ProfileID
			types[i], cats[i], channels[i], titles[i], descs[i] = r.Type, r.Category, r.Channel, r.Title, r.Description
			mds[i], services[i], sourceIDs[i] = string(md), r.SourceService, r.SourceID
			occurred[i], recorded[i], versions[i] = r.OccurredAt, r.RecordedAt, int64(r.Version)
		}
		b.Queue(insert, tenants, ids, customers, profiles, types, cats, channels, titles, descs, mds, services, sourceIDs, occurred, recorded, versions)
	}
	return b
}

// send runs a batch in tx and reports the statement that failed.
func send(ctx context.Context, tx pgx.Tx, batch *pgx.Batch, what string) error {
	if batch.Len() == 0 {
		return nil
	}
	br := tx.SendBatch(ctx, batch)
	for i := 0; i < batch.Len(); i++ {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return fmt.Errorf("write %s read model (statement %d of %d): %w", what, i+1, batch.Len(), err)
		}
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("write %s read model: %w", what, err)
	}
	return nil
}
