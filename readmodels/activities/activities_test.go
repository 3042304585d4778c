package activities_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/domain/identity"
	"github.com/clubcrm/crm/projections"
	"github.com/clubcrm/crm/readmodels/activities"
	"github.com/clubcrm/crm/readmodels/customers/customerstest"
)

const tenant = "club-a"

var t0 = time.Date(2026, 3, 14, 7, 30, 0, 0, time.UTC)

// world is a test database with the customers, timeline and notes
// projectors applied by hand over what the test appends.
type world struct {
	t    *testing.T
	env  *customerstest.Env
	done int // events of the log already projected
	n    int
}

func newWorld(t *testing.T) *world {
	return &world{t: t, env: customerstest.New(t)}
}

// ingest records an upstream event that happened at `at` on p (a new
// profile of tenant when nil).
func (w *world) ingest(tn string, p *customer.Profile, typ, data string, at time.Time) *customer.Profile {
	w.t.Helper()
	if p == nil {
		p = &customer.Profile{ID: uuid.New(), TenantID: tn}
	}
	v, err := customer.ParseUpstream(typ, json.RawMessage(data))
	require.NoError(w.t, err)
	person := customer.PersonOf(v)
	x := identity.Extract(identity.Raw{AuthUserID: person.AuthUserID, SCLMemberID: person.SCLMemberID, TeeTimePlayerID: person.TeeTimePlayerID,
		MessagingContactID: person.MessagingContactID, Email: person.Email, Phone: person.Phone}, identity.DefaultSettings())
	d := identity.Decision{Customer: p.ID, MatchedBy: "test", Confidence: 100}
	if !p.Exists() {
		d = identity.Decision{MatchedBy: "new"}
	}
	for _, k := range x.Keys {
		if !p.Holds(k) {
			d.Link = append(d.Link, k)
		}
	}
	w.n++
	id := "up-" + strconv.Itoa(w.n)
	evs, err := p.Ingest(customer.Ingestion{Upstream: customer.Upstream{ID: id, Type: typ, Source: customer.SourceOf(typ), OccurredAt: at},
		Data: json.RawMessage(data), Person: person, Extracted: x, Decision: d})
	require.NoError(w.t, err)
	return w.env.Record(p, evs, customer.SourceOf(typ), id)
}

// ok answers a decision's events, failing the test on its error.
func (w *world) ok(evs []customer.Event, err error) []customer.Event {
	w.t.Helper()
	require.NoError(w.t, err)
	return evs
}

func (w *world) record(p *customer.Profile, evs []customer.Event) *customer.Profile {
	w.t.Helper()
	w.n++
	return w.env.Record(p, evs, "staff-1", "cmd-"+strconv.Itoa(w.n))
}

// project applies every event appended since the last call, size events
// a batch (all at once when size < 1), with every projector.
func (w *world) project(size int) {
	w.t.Helper()
	w.env.Project(0)
	all := w.env.Events()
	pending := all[w.done:]
	w.done = len(all)
	if size < 1 {
		size = max(len(pending), 1)
	}
	for _, p := range []projections.Projector{activities.Projector{}, activities.NotesProjector{}} {
		tables := projections.Tables{}
		for _, t := range p.Tables() {
			tables[t] = t
		}
		for rest := pending; len(rest) > 0; {
			n := min(size, len(rest))
			var batch = rest[:n]
			filter := p.Filter()
			matching := batch[:0:0]
			for _, e := range batch {
				if filter.Match(e) {
					matching = append(matching, e)
				}
			}
			err := pgx.BeginFunc(context.Background(), w.env.Pool, func(tx pgx.Tx) error {
				return p.Apply(context.Background(), tx, tables, matching)
			})
			require.NoError(w.t, err)
			rest = rest[n:]
		}
	}
}

func (w *world) reader() activities.Reader { return activities.Reader{DB: w.env.Pool} }

func (w *world) timeline(id uuid.UUID, f activities.Filter) []activities.Activity {
	w.t.Helper()
	_, items, next, err := w.reader().Timeline(context.Background(), tenant, id, f, activities.Page{Limit: activities.MaxLimit})
	require.NoError(w.t, err)
	require.Nil(w.t, next)
	return items
}

func titles(items []activities.Activity) []string {
	out := make([]string, len(items))
	for i, a := range items {
		out[i] = a.Title
	}
	return out
}

func TestTimelineOrderAndLateEvents(t *testing.T) {
	w := newWorld(t)
	jane := w.ingest(tenant, nil, "member.created", `{"memberId": 42, "email": "jane@mail.com", "membershipTier": "Gold", "membershipStatus": "ACTIVE"}`, t0)
	jane = w.ingest(tenant, jane, "player.created", `{"playerId": "p-7", "handicap": 12.4}`, t0.Add(time.Hour))
	jane = w.ingest(tenant, jane, "handicap.updated", `{"playerId": "p-7", "handicap": 11.8}`, t0.Add(3*time.Hour))
	jane = w.ingest(tenant, jane, "payment.failed", `{"memberId": 42, "paymentId": "pay-2", "amountCents": 125000, "currency": "ZAR", "reason": "card expired"}`, t0.Add(4*time.Hour))
	// Arrives last, happened second: it lands in its place.
	jane = w.ingest(tenant, jane, "teetime.booked", `{"playerId": "p-7", "bookingId": "b-1", "clubId": "club-1", "teeTimeAt": "2026-03-21T07:30:00Z"}`, t0.Add(2*time.Hour))
	w.project(1)

	items := w.timeline(jane.ID, activities.Filter{})
	assert.Equal(t, []string{
		"Payment of R 1 250.00 failed: card expired",
		"Handicap 12.4 → 11.8",
		"Booked a tee time for 21 Mar, 07:30",
		"Registered with TeeTime, handicap 12.4",
		"Joined as a Gold member",
	}, titles(items))
	b := items[2]
	assert.Equal(t, "TEETIME_BOOKED", b.Type)
	assert.Equal(t, "BOOKING", b.Category)
	assert.Nil(t, b.Channel)
	assert.Equal(t, "teetime", b.SourceService)
	assert.Equal(t, "b-1", *b.SourceID)
	assert.Equal(t, t0.Add(2*time.Hour), b.OccurredAt)
	assert.Equal(t, jane.ID, b.CustomerID)
	assert.Equal(t, jane.ID, b.ProfileID)
	assert.JSONEq(t, `{"playerId": "p-7", "bookingId": "b-1", "clubId": "club-1", "teeTimeAt": "2026-03-21T07:30:00Z", "upstreamEventId": "up-5"}`, string(b.Metadata))
	assert.True(t, b.RecordedAt.After(b.OccurredAt))

	// Another tenant sees nothing of it.
	_, _, _, err := w.reader().Timeline(context.Background(), "club-b", jane.ID, activities.Filter{}, activities.Page{})
	assert.ErrorIs(t, err, activities.ErrNotFound)
	got, _, err := w.reader().Page(context.Background(), "club-b", jane.ID, activities.Filter{}, activities.Page{})
	require.NoError(t, err)
	assert.Empty(t, got, "row-level security")
	_, _, _, err = w.reader().Timeline(context.Background(), tenant, uuid.New(), activities.Filter{}, activities.Page{})
	assert.ErrorIs(t, err, activities.ErrNotFound)
}

func TestFilters(t *testing.T) {
	w := newWorld(t)
	p := w.ingest(tenant, nil, "member.created", `{"memberId": 1, "email": "a@b.com"}`, t0)
	p = w.ingest(tenant, p, "payment.received", `{"memberId": 1, "paymentId": "p1", "amountCents": 5000, "currency": "GBP", "reason": "Green fees"}`, t0.Add(24*time.Hour))
	p = w.ingest(tenant, p, "message.sent", `{"contactId": "c", "email": "a@b.com", "channel": "EMAIL", "campaignId": "spring"}`, t0.Add(48*time.Hour))
	p = w.ingest(tenant, p, "email.opened", `{"contactId": "c", "campaignId": "spring"}`, t0.Add(49*time.Hour))
	p = w.ingest(tenant, p, "email.clicked", `{"contactId": "c", "campaignId": "spring", "url": "https://club.example/spring-open"}`, t0.Add(50*time.Hour))
	p = w.record(p, w.ok(p.ChangeTags([]string{"VIP"}, nil, "staff-1")))
	p = w.record(p, w.ok(p.AddNote(uuid.New(), "staff-1", "Asked about the spring open", false)))
	w.project(0)

	f := func(f activities.Filter) []string { return titles(w.timeline(p.ID, f)) }
	assert.Equal(t, []string{"Clicked a link in an email", "Opened an email"}, f(activities.Filter{Categories: []string{"ENGAGEMENT"}}))
	assert.Equal(t, []string{"Email sent", "Payment of £50.00 received"}, f(activities.Filter{Categories: []string{"COMMUNICATION", "FINANCIAL"}}))
	assert.Equal(t, []string{"Tagged vip", "Email sent"}, f(activities.Filter{Types: []string{"TAG_CHANGED", "MESSAGE_SENT"}}))
	assert.Equal(t, []string{"Opened an email", "Email sent", "Payment of £50.00 received"},
		f(activities.Filter{From: t0.Add(24 * time.Hour), To: t0.Add(50 * time.Hour)}), "from inclusive, to exclusive")
	assert.Equal(t, []string{"Note by staff-1", "Clicked a link in an email", "Opened an email", "Email sent"}, f(activities.Filter{Q: "spring"}), "titles and descriptions")
	assert.Equal(t, []string{"Payment of £50.00 received"}, f(activities.Filter{Q: "GREEN fee"}), "prefixes, any case, every word")
	assert.Empty(t, f(activities.Filter{Q: "green zebra"}))
	assert.Empty(t, f(activities.Filter{Q: "' & | !"}), "operators are text, and text with no word matches nothing")
	assert.Equal(t, []string{"Email sent"}, f(activities.Filter{Q: "spring", Types: []string{"MESSAGE_SENT", "EMAIL_OPENED"}, Categories: []string{"COMMUNICATION"}}))
}

func TestPagingWhileActivitiesArrive(t *testing.T) {
	w := newWorld(t)
	p := w.ingest(tenant, nil, "member.created", `{"memberId": 1, "email": "a@b.com"}`, t0)
	for i := 1; i <= 6; i++ {
		p = w.ingest(tenant, p, "teetime.booked", `{"playerId": "p", "bookingId": "b-`+strconv.Itoa(i)+`"}`, t0.Add(time.Duration(i)*time.Hour))
	}
	// Two events in the same instant: the id breaks the tie.
	p = w.ingest(tenant, p, "teetime.completed", `{"playerId": "p", "bookingId": "b-3"}`, t0.Add(3*time.Hour))
	w.project(0)
	ctx := context.Background()
	r := w.reader()

	first, next, err := r.Page(ctx, tenant, p.ID, activities.Filter{}, activities.Page{Limit: 3})
	require.NoError(t, err)
	require.Len(t, first, 3)
	require.NotNil(t, next)
	assert.Equal(t, *next, activities.Cursor{OccurredAt: first[2].OccurredAt, ID: first[2].ID})

	// While the client reads page one: something newer, something older
	// than the page boundary, and one exactly at the boundary's instant.
	p = w.ingest(tenant, p, "email.opened", `{"contactId": "c", "email": "a@b.com"}`, t0.Add(10*time.Hour))
	p = w.ingest(tenant, p, "payment.received", `{"memberId": 1, "paymentId": "late", "amountCents": 100, "currency": "ZAR"}`, t0.Add(90*time.Minute))
	p = w.ingest(tenant, p, "competition.entered", `{"playerId": "p", "competitionName": "Boundary Cup"}`, first[2].OccurredAt)
	w.project(0)

	var rest []activities.Activity
	for cur := next; cur != nil; {
		items, n, err := r.Page(ctx, tenant, p.ID, activities.Filter{}, activities.Page{Limit: 3, After: cur})
		require.NoError(t, err)
		rest = append(rest, items...)
		cur = n
	}
	all := w.timeline(p.ID, activities.Filter{})
	require.Len(t, all, 11)
	var want []activities.Activity
	for _, a := range all {
		if a.OccurredAt.Before(next.OccurredAt) || (a.OccurredAt.Equal(next.OccurredAt) && a.ID.String() < next.ID.String()) {
			want = append(want, a)
		}
	}
	assert.Equal(t, want, rest, "after the cursor: exactly what sorts after it, nothing twice, nothing skipped")
	assert.Contains(t, titles(rest), "Payment of R 1.00 received", "the late payment lands in its place")
	assert.NotContains(t, titles(rest), "Opened an email", "newer than the cursor: on a fresh first page")
	seen := map[uuid.UUID]bool{}
	for _, a := range append(first, rest...) {
		assert.False(t, seen[a.ID], "repeated %s", a.Title)
		seen[a.ID] = true
	}
}

func TestMergeJoinsTimelines(t *testing.T) {
	w := newWorld(t)
	jane := w.ingest(tenant, nil, "member.created", `{"memberId": 42, "email": "jane@mail.com", "firstName": "Jane"}`, t0)
	dup := w.ingest(tenant, nil, "player.created", `{"playerId": "p-7", "email": "jd@golf.com", "firstName": "Jane", "lastName": "D"}`, t0.Add(time.Hour))
	dup = w.ingest(tenant, dup, "teetime.booked", `{"playerId": "p-7", "bookingId": "b-1"}`, t0.Add(2*time.Hour))
	dup = w.record(dup, w.ok(dup.AddNote(uuid.New(), "staff-1", "Left-handed", false)))
	w.project(0)
	other := w.ingest(tenant, nil, "message.sent", `{"contactId": "c-9", "email": "j@elsewhere.com"}`, t0.Add(3*time.Hour))
	jane, dup = w.env.Merge(jane, dup, "staff-2")
	jane, _ = w.env.Merge(jane, other, "staff-2") // a second merge, in the same batch as its source's events
	w.project(1)

	items := w.timeline(jane.ID, activities.Filter{})
	assert.ElementsMatch(t, []string{"Joined as a member", "Registered with TeeTime", "Booked a tee time", "Note by staff-1", "Message sent",
		"Merged with duplicate profile Jane D", "Merged with duplicate profile j@elsewhere.com"}, titles(items))
	for _, a := range items {
		assert.Equal(t, jane.ID, a.CustomerID)
		if a.Title == "Booked a tee time" {
			assert.Equal(t, dup.ID, a.ProfileID, "the profile it was recorded on")
		}
	}
	// The merged-away id answers its survivor's timeline.
	owner, via, _, err := w.reader().Timeline(context.Background(), tenant, dup.ID, activities.Filter{}, activities.Page{})
	require.NoError(t, err)
	assert.Equal(t, jane.ID, owner)
	assert.Len(t, via, len(items))
	owner, notes, _, err := w.reader().Notes(context.Background(), tenant, dup.ID, false, 0, nil)
	require.NoError(t, err)
	assert.Equal(t, jane.ID, owner)
	require.Len(t, notes, 1)
	assert.Equal(t, jane.ID, notes[0].CustomerID)

	// A chain: jane merged into a third profile takes everything along.
	third := w.ingest(tenant, nil, "member.created", `{"memberId": 7, "email": "third@mail.com"}`, t0.Add(4*time.Hour))
	w.env.Merge(third, jane, "staff-2")
	w.project(0)
	assert.Len(t, w.timeline(dup.ID, activities.Filter{}), len(items)+2)
}

func TestNotes(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	p := w.ingest(tenant, nil, "member.created", `{"memberId": 1, "email": "a@b.com"}`, t0)
	a, b, c := uuid.New(), uuid.New(), uuid.New()
	p = w.record(p, w.ok(p.AddNote(a, "staff-1", "First", false)))
	p = w.record(p, w.ok(p.AddNote(b, "staff-2", "Second", false)))
	p = w.record(p, w.ok(p.AddNote(c, "staff-1", "Third", false)))
	w.project(0)
	p = w.record(p, w.ok(p.EditNote(a, ptr("First, edited"), ptr(true), "staff-9", true)))
	p = w.record(p, w.ok(p.DeleteNote(c, "staff-1", false)))
	w.project(1)

	r := w.reader()
	_, notes, next, err := r.Notes(ctx, tenant, p.ID, false, 1, nil)
	require.NoError(t, err)
	require.Len(t, notes, 1)
	assert.Equal(t, "First, edited", notes[0].Body, "pinned first")
	assert.True(t, notes[0].Pinned)
	assert.Equal(t, "staff-1", notes[0].Author)
	assert.Equal(t, "staff-9", *notes[0].EditedBy)
	assert.True(t, notes[0].UpdatedAt.After(notes[0].CreatedAt))
	require.NotNil(t, next)
	_, notes, next, err = r.Notes(ctx, tenant, p.ID, false, 1, next)
	require.NoError(t, err)
	require.Len(t, notes, 1)
	assert.Equal(t, "Second", notes[0].Body)
	assert.Nil(t, next, "the deleted note is not listed")
	_, deleted, _, err := r.Notes(ctx, tenant, p.ID, true, 0, nil)
	require.NoError(t, err)
	require.Len(t, deleted, 1)
	assert.Equal(t, "Third", deleted[0].Body)
	assert.Equal(t, "staff-1", *deleted[0].DeletedBy)
	n, err := r.NoteByID(ctx, tenant, c)
	require.NoError(t, err)
	assert.NotNil(t, n.DeletedAt)

	// The timeline follows: the edit shows, the deleted note is gone.
	items := w.timeline(p.ID, activities.Filter{Types: []string{"NOTE_ADDED"}})
	require.Len(t, items, 2)
	byID := map[uuid.UUID]activities.Activity{}
	for _, it := range items {
		byID[it.ID] = it
	}
	assert.Equal(t, "First, edited", *byID[a].Description)
	assert.JSONEq(t, `{"noteId": "`+a.String()+`", "author": "staff-1", "pinned": true, "editedBy": "staff-9"}`, string(byID[a].Metadata))
	_, ok := byID[c]
	assert.False(t, ok)
}

// The timeline is a projection: projected one event a batch, all at once,
// or rebuilt through the runtime, it comes out the same.
func TestRebuildAgrees(t *testing.T) {
	w := newWorld(t)
	p := w.ingest(tenant, nil, "member.created", `{"memberId": 1, "email": "a@b.com", "membershipStatus": "ACTIVE"}`, t0)
	p = w.ingest(tenant, p, "member.updated", `{"memberId": 1, "membershipStatus": "SUSPENDED"}`, t0.Add(time.Hour))
	p = w.ingest(tenant, p, "contactPreference.updated", `{"contactId": "c", "emailOptIn": true}`, t0.Add(2*time.Hour))
	p = w.ingest(tenant, p, "contactPreference.updated", `{"contactId": "c", "emailOptIn": false, "smsOptIn": true}`, t0.Add(3*time.Hour))
	n := uuid.New()
	p = w.record(p, w.ok(p.AddNote(n, "staff-1", "x", false)))
	p = w.record(p, w.ok(p.EditNote(n, ptr("y"), nil, "staff-1", false)))
	q := w.ingest(tenant, nil, "player.created", `{"playerId": "p-2", "email": "q@b.com"}`, t0)
	p, _ = w.env.Merge(p, q, "staff-1")
	w.project(1)
	want := dump(t, w)
	assert.Contains(t, titles(w.timeline(p.ID, activities.Filter{})), "Membership status Active → Suspended")
	assert.Contains(t, titles(w.timeline(p.ID, activities.Filter{})), "Opted in to SMS; opted out of email")

	_, err := w.env.Pool.Exec(context.Background(), `TRUNCATE activities, timeline_state, customer_notes`)
	require.NoError(t, err)
	w.done = 0
	w.project(0)
	assert.Equal(t, want, dump(t, w))
}

func dump(t *testing.T, w *world) string {
	var s string
	err := w.env.Pool.QueryRow(context.Background(), `SELECT jsonb_build_object(
		'activities', (SELECT jsonb_agg(to_jsonb(a) - 'recorded_at' ORDER BY a.id) FROM activities a),
		'state', (SELECT jsonb_agg(to_jsonb(s) ORDER BY s.customer_id) FROM timeline_state s),
		'notes', (SELECT jsonb_agg(to_jsonb(n) ORDER BY n.id) FROM customer_notes n))::text`).Scan(&s)
	require.NoError(t, err)
	return s
}

func ptr[T any](v T) *T { return &v }
