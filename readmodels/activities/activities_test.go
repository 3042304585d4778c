package activities_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
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
	p = w.record(p, w.ok(p.AddNote(customer.NoteAdded{NoteID: uuid.New(), Author: "staff-1", Body: "Asked about the spring open"})))
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
	dup = w.record(dup, w.ok(dup.AddNote(customer.NoteAdded{NoteID: uuid.New(), Author: "staff-1", Body: "Left-handed"})))
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
	owner, via, _, err = w.reader().Timeline(context.Background(), tenant, dup.ID, activities.Filter{Types: []string{"NONE_SUCH"}}, activities.Page{})
	require.NoError(t, err)
	assert.Equal(t, jane.ID, owner, "an empty page still names the survivor")
	assert.NotNil(t, via)
	assert.Empty(t, via)
	owner, notes, _, err := w.reader().Notes(context.Background(), tenant, dup.ID, activities.NoteFilter{}, 0, nil)
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
	p = w.record(p, w.ok(p.AddNote(customer.NoteAdded{NoteID: a, Author: "staff-1", Body: "First"})))
	p = w.record(p, w.ok(p.AddNote(customer.NoteAdded{NoteID: b, Author: "staff-2", Body: "Second"})))
	p = w.record(p, w.ok(p.AddNote(customer.NoteAdded{NoteID: c, Author: "staff-1", Body: "Third"})))
	w.project(0)
	p = w.record(p, w.ok(p.EditNote(customer.NoteEdited{NoteID: a, Body: ptr("First, edited"), Pinned: ptr(true), Actor: "staff-9"}, true)))
	p = w.record(p, w.ok(p.DeleteNote(c, "staff-1", false)))
	w.project(1)

	r := w.reader()
	_, notes, next, err := r.Notes(ctx, tenant, p.ID, activities.NoteFilter{}, 1, nil)
	require.NoError(t, err)
	require.Len(t, notes, 1)
	assert.Equal(t, "First, edited", notes[0].Body, "pinned first")
	assert.True(t, notes[0].Pinned)
	assert.Equal(t, "staff-1", notes[0].Author)
	assert.Equal(t, "staff-9", *notes[0].EditedBy)
	assert.True(t, notes[0].UpdatedAt.After(notes[0].CreatedAt))
	require.NotNil(t, next)
	_, notes, next, err = r.Notes(ctx, tenant, p.ID, activities.NoteFilter{}, 1, next)
	require.NoError(t, err)
	require.Len(t, notes, 1)
	assert.Equal(t, "Second", notes[0].Body)
	assert.Nil(t, next, "the deleted note is not listed")
	_, deleted, _, err := r.Notes(ctx, tenant, p.ID, activities.NoteFilter{Deleted: true}, 0, nil)
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
	p = w.record(p, w.ok(p.AddNote(customer.NoteAdded{NoteID: n, Author: "staff-1", Body: "x"})))
	p = w.record(p, w.ok(p.EditNote(customer.NoteEdited{NoteID: n, Body: ptr("y"), Actor: "staff-1"}, false)))
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

// Complaints in the read models: the notes table holds the mark and
// answers the complaint filter, and the timeline's activity says so in its
// title and metadata, following each mark and unmark; a rebuild agrees
// with what was projected live.
func TestComplaints(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	p := w.ingest(tenant, nil, "member.created", `{"memberId": 1, "email": "a@b.com"}`, t0)
	a, b, c := uuid.New(), uuid.New(), uuid.New()
	p = w.record(p, w.ok(p.AddNote(customer.NoteAdded{NoteID: a, Author: "staff-1", Body: "Greens were not cut", Complaint: true})))
	p = w.record(p, w.ok(p.AddNote(customer.NoteAdded{NoteID: b, Author: "staff-2", Body: "Prefers early tee times"})))
	p = w.record(p, w.ok(p.AddNote(customer.NoteAdded{NoteID: c, Author: "staff-1", Body: "Rude starter", Complaint: true})))
	act := uuid.New()
	p = w.record(p, w.ok(p.RecordActivity(customer.ActivityRecorded{ActivityID: act, Kind: customer.KindCall, Title: "Called about slow play",
		OccurredAt: t0.Add(time.Hour), Actor: "staff-1", Complaint: true}, t0.Add(2*time.Hour))))
	w.project(0)

	type note struct {
		complaint bool
		title     string
		metadata  string
	}
	md := func(id uuid.UUID, author string, extra string) string {
		return `{"noteId": "` + id.String() + `", "author": "` + author + `", "pinned": false` + extra + `}`
	}
	check := func(step string, want map[uuid.UUID]note) {
		t.Helper()
		_, notes, _, err := w.reader().Notes(ctx, tenant, p.ID, activities.NoteFilter{}, 0, nil)
		require.NoError(t, err)
		got := map[uuid.UUID]bool{}
		for _, n := range notes {
			got[n.ID] = n.Complaint
		}
		items := w.timeline(p.ID, activities.Filter{Types: []string{"NOTE_ADDED"}})
		byID := map[uuid.UUID]activities.Activity{}
		for _, it := range items {
			byID[it.ID] = it
		}
		var complaints []uuid.UUID
		for id, n := range want {
			assert.Equal(t, n.complaint, got[id], "%s: note %s", step, id)
			assert.Equal(t, n.title, byID[id].Title, step)
			assert.JSONEq(t, n.metadata, string(byID[id].Metadata), step)
			if n.complaint {
				complaints = append(complaints, id)
			}
		}
		_, only, _, err := w.reader().Notes(ctx, tenant, p.ID, activities.NoteFilter{Complaint: ptr(true)}, 0, nil)
		require.NoError(t, err)
		var ids []uuid.UUID
		for _, n := range only {
			ids = append(ids, n.ID)
		}
		assert.ElementsMatch(t, complaints, ids, "%s: ?complaint=true", step)
		_, others, _, err := w.reader().Notes(ctx, tenant, p.ID, activities.NoteFilter{Complaint: ptr(false)}, 0, nil)
		require.NoError(t, err)
		assert.Len(t, others, len(want)-len(complaints), "%s: ?complaint=false", step)
	}
	notes := map[uuid.UUID]note{
		a: {true, "Complaint: Note by staff-1", md(a, "staff-1", `, "complaint": true`)},
		b: {false, "Note by staff-2", md(b, "staff-2", ``)},
		c: {true, "Complaint: Note by staff-1", md(c, "staff-1", `, "complaint": true`)},
	}
	check("added", notes)

	for _, s := range []struct {
		name string
		edit customer.NoteEdited
		want map[uuid.UUID]note // the notes it changes, as they stand after it
	}{
		{"a unmarked", customer.NoteEdited{NoteID: a, Complaint: ptr(false), Actor: "staff-1"}, map[uuid.UUID]note{
			a: {false, "Note by staff-1", md(a, "staff-1", `, "editedBy": "staff-1"`)},
		}},
		{"b marked", customer.NoteEdited{NoteID: b, Complaint: ptr(true), Actor: "staff-2"}, map[uuid.UUID]note{
			b: {true, "Complaint: Note by staff-2", md(b, "staff-2", `, "complaint": true, "editedBy": "staff-2"`)},
		}},
		{"a marked again, with a new body", customer.NoteEdited{NoteID: a, Body: ptr("Greens not cut, again"), Complaint: ptr(true), Actor: "staff-9"}, map[uuid.UUID]note{
			a: {true, "Complaint: Note by staff-1", md(a, "staff-1", `, "complaint": true, "editedBy": "staff-9"`)},
		}},
		{"b pinned stays a complaint", customer.NoteEdited{NoteID: b, Pinned: ptr(true), Actor: "staff-2"}, map[uuid.UUID]note{
			b: {true, "Complaint: Note by staff-2", `{"noteId": "` + b.String() + `", "author": "staff-2", "pinned": true, "complaint": true, "editedBy": "staff-2"}`},
		}},
	} {
		p = w.record(p, w.ok(p.EditNote(s.edit, true)))
		w.project(1)
		for id, n := range s.want {
			notes[id] = n
		}
		check(s.name, notes)
	}
	p = w.record(p, w.ok(p.DeleteNote(c, "staff-1", false)))
	w.project(1)
	_, only, _, err := w.reader().Notes(ctx, tenant, p.ID, activities.NoteFilter{Complaint: ptr(true)}, 0, nil)
	require.NoError(t, err)
	assert.Len(t, only, 2, "a deleted complaint is listed no more")
	_, gone, _, err := w.reader().Notes(ctx, tenant, p.ID, activities.NoteFilter{Deleted: true, Complaint: ptr(true)}, 0, nil)
	require.NoError(t, err)
	require.Len(t, gone, 1)
	assert.Equal(t, c, gone[0].ID)

	calls := w.timeline(p.ID, activities.Filter{Types: []string{"CALL"}})
	require.Len(t, calls, 1)
	assert.Equal(t, "Complaint: Called about slow play", calls[0].Title)
	assert.JSONEq(t, `{"recordedBy": "staff-1", "complaint": true}`, string(calls[0].Metadata))
	assert.Len(t, w.timeline(p.ID, activities.Filter{Q: "complaint"}), 3, "q finds the complaints: two notes and the call")

	// A rebuild, one event a batch or all at once, equals the live read models.
	want := dump(t, w)
	for _, size := range []int{0, 1} {
		_, err := w.env.Pool.Exec(ctx, `TRUNCATE activities, timeline_state, customer_notes`)
		require.NoError(t, err)
		w.done = 0
		w.project(size)
		assert.Equal(t, want, dump(t, w), "batch size %d", size)
	}

	// And through the projections runtime, which replays into shadow
	// tables made LIKE the live ones (the complaint column included) and
	// swaps them in. It reads the log as subscribers do: an event shows
	// once no transaction on the server that began before it is open.
	all := w.env.Events()
	last := all[len(all)-1].Position
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		head, err := w.env.Store.Head(ctx)
		require.NoError(t, err)
		if !head.Less(last) {
			break
		}
		if time.Now().After(deadline) {
			t.Skip("the server kept a transaction open for 15s: the log is not visible to the runtime")
		}
	}
	rt, err := projections.New(w.env.Pool, w.env.Store, []projections.Projector{activities.Projector{}, activities.NotesProjector{}},
		projections.WithRegisterer(prometheus.NewRegistry()), projections.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), projections.WithProgress(io.Discard))
	require.NoError(t, err)
	defer rt.Close()
	require.NoError(t, rt.Rebuild(ctx, activities.NotesName))
	require.NoError(t, rt.Rebuild(ctx, activities.Name))
	assert.Equal(t, want, dump(t, w), "rebuilt by the runtime")
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
