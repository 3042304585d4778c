package activities

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/segmentio/encoding/json"

	"github.com/clubcrm/crm/adapters/postgres"
	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/domain/timeline"
	"github.com/clubcrm/crm/readmodels/customers"
)

// ErrNotFound is answered for a customer or note the tenant does not have.
var ErrNotFound = customers.ErrNotFound

// Paging limits.
const (
	DefaultLimit = 50
	MaxLimit     = 500
	// MaxSearchWords bounds how many words of q a search uses.
	MaxSearchWords = 8
)

// Activity is the API's representation of a timeline entry (specification
// section 4). Absent optional values are null.
type Activity struct {
	ID            uuid.UUID       `json:"id"`
	CustomerID    uuid.UUID       `json:"customerId" doc:"the profile whose timeline holds it"`
	ProfileID     uuid.UUID       `json:"profileId" doc:"the profile it was recorded on: another than customerId when that profile was merged into this one"`
	Type          string          `json:"type" doc:"e.g. TEETIME_BOOKED, PAYMENT_RECEIVED, NOTE_ADDED, VISIT"`
	Category      string          `json:"category" enum:"MEMBERSHIP,BOOKING,COMMUNICATION,ENGAGEMENT,FINANCIAL,GOLF,MARKETING,SUPPORT,SOCIAL,SYSTEM"`
	Channel       *string         `json:"channel" doc:"EMAIL, SMS, PUSH, WHATSAPP, IN_PERSON, PHONE... where one applies"`
	Title         string          `json:"title"`
	Description   *string         `json:"description"`
	Metadata      json.RawMessage `json:"metadata" doc:"the details: for upstream events their data and upstreamEventId"`
	SourceService string          `json:"sourceService" enum:"scl,teetime,messaging,crm"`
	SourceID      *string         `json:"sourceId" doc:"the record in the source service (booking, payment, message, note...)"`
	OccurredAt    time.Time       `json:"occurredAt" doc:"when it happened; the timeline's order"`
	RecordedAt    time.Time       `json:"recordedAt" doc:"when the CRM recorded it"`
}

// Cursor is a position in a timeline: the keyset of the last activity a
// page held. Activities sort by (occurredAt, id) descending, so a page
// after a cursor is the same whatever is added meanwhile: an activity that
// arrives later sorts before the cursor if it happened later, or lands in
// its place further on if it happened earlier.
type Cursor struct {
	OccurredAt time.Time `json:"o"`
	ID         uuid.UUID `json:"i"`
}

// Page asks for up to Limit activities after a cursor (from the newest
// when nil).
type Page struct {
	Limit int
	After *Cursor
}

func (p Page) limit() int {
	switch {
	case p.Limit <= 0:
		return DefaultLimit
	case p.Limit > MaxLimit:
		return MaxLimit
	}
	return p.Limit
}

// Filter narrows a timeline. Empty fields match everything; a list matches
// any of its values.
type Filter struct {
	Categories []string
	Types      []string
	From       time.Time // occurredAt at or after
	To         time.Time // occurredAt before
	// Q searches titles and descriptions: every word must start a word
	// of either.
	Q string
}

// Reader answers queries of the timeline and notes read models. Each method
// reads through postgres.ReadInTenant.
type Reader struct {
	DB postgres.Beginner
}

const selectActivity = `SELECT a.id, a.customer_id, a.profile_id, a.type, a.category, a.channel, a.title, a.description, a.metadata,
	a.source_service, a.source_id, a.occurred_at, a.recorded_at FROM activities a`

// scanActivity scans selectActivity's columns, after lead's when a query
// selects some before them.
func scanActivity(row pgx.CollectableRow, lead ...any) (Activity, error) {
	var a Activity
	var md []byte
	err := row.Scan(append(lead, &a.ID, &a.CustomerID, &a.ProfileID, &a.Type, &a.Category, &a.Channel, &a.Title, &a.Description, &md,
		&a.SourceService, &a.SourceID, &a.OccurredAt, &a.RecordedAt)...)
	a.Metadata = json.RawMessage(md)
	a.OccurredAt, a.RecordedAt = a.OccurredAt.UTC(), a.RecordedAt.UTC()
	return a, err
}

// PageQuery answers the SQL and arguments of a timeline page of customerID
// (limit+1 rows, the extra one telling another page follows): what Page
// runs, for measuring the bare index scan beside the API.
func PageQuery(tenant string, customerID uuid.UUID, f Filter, p Page) (string, []any) {
	return pageQuery("$2", []any{tenant, customerID}, f, p)
}

// timelineQuery answers the SQL and arguments of a timeline page of the
// profile id stands for: PageQuery's rows, each led by that profile's id,
// none when the profile has no activity that f matches or does not exist.
func timelineQuery(tenant string, id uuid.UUID, f Filter, p Page) (string, []any) {
	sql, args := pageQuery("o.id", []any{tenant, id}, f, p)
	return `SELECT o.id, a.* FROM (` + customers.SurvivorQuery + `) AS o
CROSS JOIN LATERAL (` + sql + `) AS a ORDER BY a.occurred_at DESC, a.id DESC`, args
}

// pageQuery is PageQuery of the profile the SQL expression customer names,
// its arguments from $1, the tenant, on.
func pageQuery(customer string, args []any, f Filter, p Page) (string, []any) {
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	where := []string{"a.tenant_id = $1", "a.customer_id = " + customer}
	if len(f.Categories) > 0 {
		where = append(where, "a.category = ANY("+arg(f.Categories)+"::text[])")
	}
	if len(f.Types) > 0 {
		where = append(where, "a.type = ANY("+arg(f.Types)+"::text[])")
	}
	if !f.From.IsZero() {
		where = append(where, "a.occurred_at >= "+arg(f.From))
	}
	if !f.To.IsZero() {
		where = append(where, "a.occurred_at < "+arg(f.To))
	}
	if q := searchQuery(f.Q); q != "" {
		where = append(where, "to_tsvector('simple', a.title || ' ' || coalesce(a.description, '')) @@ to_tsquery('simple', "+arg(q)+")")
	}
	if p.After != nil {
		where = append(where, "(a.occurred_at, a.id) < ("+arg(p.After.OccurredAt)+"::timestamptz, "+arg(p.After.ID)+"::uuid)")
	}
	sql := selectActivity + " WHERE " + strings.Join(where, " AND ") +
		" ORDER BY a.occurred_at DESC, a.id DESC LIMIT " + arg(p.limit()+1)
	return sql, args
}

// Page answers a page of customerID's timeline, newest first, and the
// cursor of the next page (nil on the last). It reads the activities of
// that profile id as it is: Timeline serves a merged-away id through its
// survivor.
func (r Reader) Page(ctx context.Context, tenant string, customerID uuid.UUID, f Filter, p Page) ([]Activity, *Cursor, error) {
	var out []Activity
	var next *Cursor
	err := postgres.ReadInTenant(ctx, r.DB, tenant, func(tx postgres.Queryer) error {
		var err error
		out, next, err = page(ctx, tx, tenant, customerID, f, p)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return out, next, nil
}

// Timeline answers a page of the timeline of the profile id stands for
// (itself, or the survivor it was merged into), with that profile's id. It
// answers ErrNotFound when the tenant has no profile id. A page with
// activities is one statement; only an empty one asks whether the profile
// exists.
func (r Reader) Timeline(ctx context.Context, tenant string, id uuid.UUID, f Filter, p Page) (uuid.UUID, []Activity, *Cursor, error) {
	var owner uuid.UUID
	var out []Activity
	var next *Cursor
	err := postgres.ReadInTenant(ctx, r.DB, tenant, func(tx postgres.Queryer) error {
		var err error
		if !unsearchable(f) {
			sql, args := timelineQuery(tenant, id, f, p)
			if out, next, err = collect(ctx, tx, id, p, sql, args, &owner); err != nil || len(out) > 0 {
				return err
			}
		}
		out = []Activity{}
		owner, err = customers.Survivor(ctx, tx, tenant, id)
		return err
	})
	if err != nil {
		return uuid.Nil, nil, nil, err
	}
	return owner, out, next, nil
}

func page(ctx context.Context, tx postgres.Queryer, tenant string, customerID uuid.UUID, f Filter, p Page) ([]Activity, *Cursor, error) {
	if unsearchable(f) {
		return []Activity{}, nil, nil
	}
	sql, args := PageQuery(tenant, customerID, f, p)
	return collect(ctx, tx, customerID, p, sql, args)
}

// unsearchable tells a filter whose q holds nothing to search for: it
// matches nothing.
func unsearchable(f Filter) bool {
	return strings.TrimSpace(f.Q) != "" && searchQuery(f.Q) == ""
}

// collect runs a page's query (its columns after lead's) and cuts the
// extra row off into the next page's cursor.
func collect(ctx context.Context, tx postgres.Queryer, id uuid.UUID, p Page, sql string, args []any, lead ...any) ([]Activity, *Cursor, error) {
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("timeline of %s: %w", id, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Activity, error) { return scanActivity(row, lead...) })
	if err != nil {
		return nil, nil, fmt.Errorf("timeline of %s: %w", id, err)
	}
	limit := p.limit()
	if len(out) <= limit {
		return out, nil, nil
	}
	out = out[:limit]
	last := out[limit-1]
	return out, &Cursor{OccurredAt: last.OccurredAt, ID: last.ID}, nil
}

// searchQuery answers the to_tsquery('simple', ...) text for q: every word
// must start a word of the activity. Each word goes in as a quoted lexeme,
// so nothing typed can add operators.
func searchQuery(q string) string {
	var words []string
	for _, w := range strings.Fields(strings.ToLower(q)) {
		if len(words) == MaxSearchWords {
			break
		}
		if !strings.ContainsFunc(w, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }) {
			continue
		}
		w = strings.ReplaceAll(w, `\`, `\\`)
		w = strings.ReplaceAll(w, `'`, `''`)
		words = append(words, "'"+w+"':*")
	}
	return strings.Join(words, " & ")
}

// Note is the API's representation of a staff note (CustomerNote).
type Note struct {
	ID         uuid.UUID  `json:"id"`
	CustomerID uuid.UUID  `json:"customerId" doc:"the profile the note is on (the survivor after merges)"`
	Author     string     `json:"author" doc:"the token subject of the staff member who wrote it"`
	Body       string     `json:"body"`
	Pinned     bool       `json:"pinned"`
	Complaint  bool       `json:"complaint" doc:"marked as a complaint (churn scoring counts complaints of the last 180 days)"`
	CreatedAt  time.Time  `json:"createdAt"`
	UpdatedAt  time.Time  `json:"updatedAt"`
	EditedBy   *string    `json:"editedBy" doc:"who last edited it, when someone did"`
	DeletedAt  *time.Time `json:"deletedAt,omitempty" doc:"set on deleted notes, which only ?deleted=true lists"`
	DeletedBy  *string    `json:"deletedBy,omitempty"`
}

// NoteCursor is a position in a notes list: pinned notes first, then
// newest first.
type NoteCursor struct {
	Pinned    bool      `json:"p"`
	CreatedAt time.Time `json:"c"`
	ID        uuid.UUID `json:"i"`
}

const selectNote = `SELECT n.id, n.customer_id, n.author, n.body, n.pinned, n.complaint, n.created_at, n.updated_at, n.edited_by, n.deleted_at, n.deleted_by
FROM customer_notes n`

func scanNote(row pgx.Row) (Note, error) {
	var n Note
	err := row.Scan(&n.ID, &n.CustomerID, &n.Author, &n.Body, &n.Pinned, &n.Complaint, &n.CreatedAt, &n.UpdatedAt, &n.EditedBy, &n.DeletedAt, &n.DeletedBy)
	n.CreatedAt, n.UpdatedAt = n.CreatedAt.UTC(), n.UpdatedAt.UTC()
	if n.DeletedAt != nil {
		t := n.DeletedAt.UTC()
		n.DeletedAt = &t
	}
	return n, err
}

// NoteFilter chooses the notes a list holds.
type NoteFilter struct {
	// Deleted lists the deleted notes, and only them.
	Deleted bool
	// Complaint, when set, lists only complaints (true) or only the
	// other notes (false).
	Complaint *bool
}

// Notes answers a page of the notes of the profile id stands for (itself or
// its survivor), pinned first, then newest first, with that profile's id
// and the next page's cursor (nil on the last). Deleted notes are listed
// only when f.Deleted is true, and then alone.
func (r Reader) Notes(ctx context.Context, tenant string, id uuid.UUID, f NoteFilter, limit int, after *NoteCursor) (uuid.UUID, []Note, *NoteCursor, error) {
	limit = Page{Limit: limit}.limit()
	var owner uuid.UUID
	var out []Note
	err := postgres.ReadInTenant(ctx, r.DB, tenant, func(tx postgres.Queryer) error {
		var err error
		if owner, err = customers.Survivor(ctx, tx, tenant, id); err != nil {
			return err
		}
		args := []any{tenant, owner, limit + 1, f.Deleted}
		sql := selectNote + ` WHERE n.tenant_id = $1 AND n.customer_id = $2 AND (n.deleted_at IS NOT NULL) = $4`
		if f.Complaint != nil {
			args = append(args, *f.Complaint)
			sql += fmt.Sprintf(` AND n.complaint = $%d`, len(args))
		}
		if after != nil {
			args = append(args, after.Pinned, after.CreatedAt, after.ID)
			sql += fmt.Sprintf(` AND (n.pinned, n.created_at, n.id) < ($%d, $%d, $%d)`, len(args)-2, len(args)-1, len(args))
		}
		sql += ` ORDER BY n.pinned DESC, n.created_at DESC, n.id DESC LIMIT $3`
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Note, error) { return scanNote(row) })
		return err
	})
	if err != nil {
		return uuid.Nil, nil, nil, fmt.Errorf("notes of %s: %w", id, err)
	}
	if len(out) <= limit {
		return owner, out, nil, nil
	}
	out = out[:limit]
	last := out[limit-1]
	return owner, out, &NoteCursor{Pinned: last.Pinned, CreatedAt: last.CreatedAt, ID: last.ID}, nil
}

// NoteByID answers one note, deleted or not.
func (r Reader) NoteByID(ctx context.Context, tenant string, id uuid.UUID) (Note, error) {
	var n Note
	err := postgres.ReadInTenant(ctx, r.DB, tenant, func(tx postgres.Queryer) error {
		var err error
		n, err = scanNote(tx.QueryRow(ctx, selectNote+` WHERE n.tenant_id = $1 AND n.id = $2`, tenant, id))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return Note{}, fmt.Errorf("note %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Note{}, fmt.Errorf("note %s: %w", id, err)
	}
	return n, nil
}

// FromTimeline answers the representation of an activity the domain
// described, as the timeline will hold it once projected: commands answer
// it at once.
func FromTimeline(a timeline.Activity, customerID, profileID uuid.UUID, recordedAt time.Time) Activity {
	md := a.Metadata
	if md == nil {
		md = map[string]any{}
	}
	b, _ := json.Marshal(md)
	return Activity{
		ID: a.ID, CustomerID: customerID, ProfileID: profileID, Type: string(a.Type), Category: string(a.Category),
		Channel: optional(a.Channel), Title: a.Title, Description: optional(a.Description), Metadata: b,
		SourceService: a.SourceService, SourceID: optional(a.SourceID),
		OccurredAt: a.OccurredAt.UTC(), RecordedAt: recordedAt.UTC(),
	}
}

// NoteFrom answers the representation of a note as the aggregate holds it.
func NoteFrom(n customer.Note, customerID uuid.UUID) Note {
	return Note{ID: n.ID, CustomerID: customerID, Author: n.Author, Body: n.Body, Pinned: n.Pinned, Complaint: n.Complaint,
		CreatedAt: n.CreatedAt.UTC(), UpdatedAt: n.UpdatedAt.UTC(), EditedBy: optional(n.EditedBy)}
}
