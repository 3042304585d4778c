package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/adapters/auth"
	"github.com/clubcrm/crm/adapters/httpapi"
	"github.com/clubcrm/crm/adapters/postgres"
	"github.com/clubcrm/crm/commands"
	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/readmodels/activities"
	"github.com/clubcrm/crm/readmodels/activities/activitiestest"
	"github.com/clubcrm/crm/readmodels/customers"
	"github.com/clubcrm/crm/readmodels/customers/customerstest"
)

type timelineWorld struct {
	api    *httpapi.API
	env    *customerstest.Env
	run    *activitiestest.Runner
	reader string // crm:read
	staff1 string // crm:write, sub staff-1
	staff2 string // crm:write, sub staff-2
	admin  string // crm:admin, sub boss
	jane   *customer.Profile
}

func staffToken(t *testing.T, sub, tenant string, roles ...string) string {
	t.Helper()
	tok, err := auth.Mint(secret, auth.Principal{Subject: sub, Tenant: tenant, Roles: roles}, time.Hour, time.Now())
	require.NoError(t, err)
	return tok
}

func newTimelineWorld(t *testing.T) *timelineWorld {
	t.Helper()
	v, err := auth.NewVerifier(context.Background(), auth.Config{HMACSecret: secret})
	require.NoError(t, err)
	api := httpapi.New(slog.New(slog.NewTextHandler(io.Discard, nil)), v, prometheus.NewRegistry())
	env := customerstest.New(t)
	index := &postgres.IdentityIndex{Pool: env.Pool}
	reader := customers.Reader{DB: env.Pool}
	merge := &commands.Merge{Store: env.Store, Index: index}
	api.RegisterCustomerCommands(httpapi.CustomerCommands{
		Register: &commands.Register{Store: env.Store, Index: index, Settings: &commands.Settings{Store: env.Store}},
		Edit:     &commands.Edit{Store: env.Store}, Merge: merge, Resolve: &commands.ResolveDuplicate{Store: env.Store, Merge: merge},
		Settings: &commands.Settings{Store: env.Store}, Duplicate: reader.DuplicateByID, Computed: reader.Computed,
	})
	api.RegisterTimeline(httpapi.TimelineEndpoints{DB: env.Pool, Record: &commands.RecordActivity{Store: env.Store}})
	api.RegisterNotes(httpapi.NoteEndpoints{DB: env.Pool, Notes: &commands.Notes{Store: env.Store}})
	api.RegisterTags(httpapi.TagEndpoints{DB: env.Pool, Tags: &commands.Tags{Store: env.Store}})
	api.RegisterCustomerQueries(httpapi.CustomerQueries{DB: env.Pool, Store: env.Store})
	w := &timelineWorld{api: api, env: env, run: activitiestest.New(env, nil),
		reader: staffToken(t, "viewer", "club-a", auth.RoleRead),
		staff1: staffToken(t, "staff-1", "club-a", auth.RoleWrite),
		staff2: staffToken(t, "staff-2", "club-a", auth.RoleWrite),
		admin:  staffToken(t, "boss", "club-a", auth.RoleAdmin),
	}
	w.jane = env.Ingest("club-a", nil, "member.created", `{"memberId": 42, "email": "jane@mail.com", "firstName": "Jane", "membershipTier": "Gold"}`)
	w.jane = env.Ingest("club-a", w.jane, "teetime.booked", `{"playerId": "p-7", "bookingId": "b-1", "clubId": "club-1", "teeTimeAt": "2026-03-21T07:30:00Z"}`)
	w.jane = env.Ingest("club-a", w.jane, "payment.received", `{"memberId": 42, "paymentId": "pay-1", "amountCents": 125000, "currency": "ZAR"}`)
	w.run.Project(0)
	return w
}

func (w *timelineWorld) do(t *testing.T, method, path, tok, body string) *httptest.ResponseRecorder {
	t.Helper()
	return do(t, w.api, method, path, tok, body)
}

func (w *timelineWorld) path(suffix string) string {
	return "/api/v1/customers/" + w.jane.ID.String() + suffix
}

func (w *timelineWorld) timeline(t *testing.T, query string) httpapi.List[activities.Activity] {
	t.Helper()
	rec := w.do(t, "GET", w.path("/activities?"+query), w.reader, "")
	require.Equal(t, 200, rec.Code, rec.Body.String())
	return decodeBody[httpapi.List[activities.Activity]](t, rec)
}

func TestTimelineEndpoints(t *testing.T) {
	w := newTimelineWorld(t)
	l := w.timeline(t, "")
	require.Len(t, l.Items, 3)
	assert.Equal(t, "Payment of R 1 250.00 received", l.Items[0].Title)
	assert.Equal(t, "Booked a tee time for 21 Mar, 07:30", l.Items[1].Title)
	assert.Equal(t, "Joined as a Gold member", l.Items[2].Title)
	assert.Nil(t, l.NextCursor)

	// A manual activity, dated yesterday.
	yesterday := time.Now().UTC().Add(-24 * time.Hour).Truncate(time.Second)
	rec := w.do(t, "POST", w.path("/activities"), w.staff1, `{"type": "visit", "title": "Came in to the pro shop", "description": "Asked about lessons", "occurredAt": "`+yesterday.Format(time.RFC3339)+`"}`)
	require.Equal(t, 201, rec.Code, rec.Body.String())
	pos := rec.Header().Get(httpapi.PositionHeader)
	assert.NotEmpty(t, pos)
	made := decodeBody[activities.Activity](t, rec)
	assert.Equal(t, "VISIT", made.Type)
	assert.Equal(t, "ENGAGEMENT", made.Category)
	assert.Equal(t, "IN_PERSON", *made.Channel)
	assert.Equal(t, yesterday, made.OccurredAt)
	assert.Equal(t, "crm", made.SourceService)
	assert.JSONEq(t, `{"recordedBy": "staff-1"}`, string(made.Metadata))
	w.run.Project(0)
	l = w.timeline(t, "type=VISIT")
	require.Len(t, l.Items, 1)
	got := l.Items[0]
	assert.WithinDuration(t, made.RecordedAt, got.RecordedAt, 5*time.Second)
	got.RecordedAt = made.RecordedAt
	assert.Equal(t, made, got, "the command answers the activity as the timeline holds it")

	for _, c := range []struct{ body, field string }{
		{`{"type": "LUNCH", "title": "x"}`, "type"},
		{`{"type": "CALL"}`, "title"},
		{`{"type": "CALL", "title": "x", "occurredAt": "` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `"}`, "occurredAt"},
		{`{"type": "CALL", "title": "x", "channel": "PIGEON"}`, "channel"},
	} {
		assertProblem(t, w.do(t, "POST", w.path("/activities"), w.staff1, c.body), 400, c.field)
	}
	assertProblem(t, w.do(t, "POST", w.path("/activities"), w.reader, `{"type": "CALL", "title": "x"}`), 403, "")
	assertProblem(t, w.do(t, "POST", "/api/v1/customers/"+w.env.Ingest("club-a", nil, "member.created", `{"memberId": 1}`).ID.String()[:8]+"/activities", w.staff1, `{"type": "CALL", "title": "x"}`), 404, "")

	// Filters and their validation.
	assert.Len(t, w.timeline(t, "category=booking&category=FINANCIAL").Items, 2)
	assert.Len(t, w.timeline(t, "category=BOOKING,FINANCIAL").Items, 2)
	assert.Len(t, w.timeline(t, "type=PAYMENT_RECEIVED").Items, 1)
	assert.Len(t, w.timeline(t, "q="+url.QueryEscape("tee time")).Items, 1)
	assert.Len(t, w.timeline(t, "to="+yesterday.Format(time.RFC3339)).Items, 0)
	assert.Len(t, w.timeline(t, "from="+yesterday.Format(time.DateOnly)).Items, 4)
	for q, field := range map[string]string{"category=FUN": "category", "type=NOPE": "type", "from=yesterday": "from",
		"from=2026-03-02&to=2026-03-01": "to", "q=" + strings.Repeat("x", 201): "q", "cursor=zzz": "cursor", "limit=0": "limit"} {
		assertProblem(t, w.do(t, "GET", w.path("/activities?"+q), w.reader, ""), 400, field)
	}

	// Paging by cursor.
	var seen []string
	path := w.path("/activities?limit=3")
	for {
		rec := w.do(t, "GET", path, w.reader, "")
		require.Equal(t, 200, rec.Code, rec.Body.String())
		page := decodeBody[httpapi.List[activities.Activity]](t, rec)
		for _, a := range page.Items {
			seen = append(seen, a.Title)
		}
		if page.NextCursor == nil {
			break
		}
		path = w.path("/activities?limit=3&cursor=" + *page.NextCursor)
	}
	assert.Len(t, seen, 4)

	// Another tenant, an unknown id.
	assertProblem(t, w.do(t, "GET", w.path("/activities"), staffToken(t, "x", "club-b", auth.RoleRead), ""), 404, "")
	assertProblem(t, w.do(t, "GET", "/api/v1/customers/6f1c1a0e-0000-4000-8000-000000000000/activities", w.reader, ""), 404, "")
	assertProblem(t, w.do(t, "GET", "/api/v1/customers/not-a-uuid/activities", w.reader, ""), 404, "")
}

func TestNoteEndpoints(t *testing.T) {
	w := newTimelineWorld(t)
	rec := w.do(t, "POST", w.path("/notes"), w.staff1, `{"body": "Prefers early tee times"}`)
	require.Equal(t, 201, rec.Code, rec.Body.String())
	n := decodeBody[activities.Note](t, rec)
	assert.Equal(t, "staff-1", n.Author, "the author is the token's subject")
	assert.Equal(t, w.jane.ID, n.CustomerID)
	assertProblem(t, w.do(t, "POST", w.path("/notes"), w.staff1, `{"body": "  "}`), 400, "body")
	assertProblem(t, w.do(t, "POST", w.path("/notes"), w.reader, `{"body": "x"}`), 403, "")

	note := w.path("/notes/" + n.ID.String())
	// Only the author or an administrator.
	assertProblem(t, w.do(t, "PATCH", note, w.staff2, `{"body": "mine now"}`), 403, "")
	assertProblem(t, w.do(t, "DELETE", note, w.staff2, ""), 403, "")
	rec = w.do(t, "PATCH", note, w.staff1, `{"body": "Prefers 07:00 starts"}`)
	require.Equal(t, 200, rec.Code, rec.Body.String())
	assert.Equal(t, "Prefers 07:00 starts", decodeBody[activities.Note](t, rec).Body)
	rec = w.do(t, "PATCH", note, w.admin, `{"pinned": true}`)
	require.Equal(t, 200, rec.Code, rec.Body.String())
	edited := decodeBody[activities.Note](t, rec)
	assert.True(t, edited.Pinned)
	assert.Equal(t, "boss", *edited.EditedBy)
	assertProblem(t, w.do(t, "PATCH", note, w.staff1, `{}`), 400, "")
	assertProblem(t, w.do(t, "PATCH", w.path("/notes/6f1c1a0e-0000-4000-8000-000000000000"), w.staff1, `{"body": "x"}`), 404, "")

	second := decodeBody[activities.Note](t, w.do(t, "POST", w.path("/notes"), w.staff2, `{"body": "Second"}`))
	w.run.Project(0)
	rec = w.do(t, "GET", w.path("/notes"), w.reader, "")
	require.Equal(t, 200, rec.Code, rec.Body.String())
	l := decodeBody[httpapi.List[activities.Note]](t, rec)
	require.Len(t, l.Items, 2)
	assert.Equal(t, "Prefers 07:00 starts", l.Items[0].Body, "pinned first")
	assert.Equal(t, "Second", l.Items[1].Body)

	rec = w.do(t, "DELETE", w.path("/notes/"+second.ID.String()), w.staff2, "")
	require.Equal(t, 204, rec.Code, rec.Body.String())
	assert.NotEmpty(t, rec.Header().Get(httpapi.PositionHeader))
	assertProblem(t, w.do(t, "DELETE", w.path("/notes/"+second.ID.String()), w.staff2, ""), 404, "")
	w.run.Project(0)
	l = decodeBody[httpapi.List[activities.Note]](t, w.do(t, "GET", w.path("/notes"), w.reader, ""))
	assert.Len(t, l.Items, 1)
	assertProblem(t, w.do(t, "GET", w.path("/notes?deleted=true"), w.staff1, ""), 403, "")
	rec = w.do(t, "GET", w.path("/notes?deleted=true"), w.admin, "")
	require.Equal(t, 200, rec.Code, rec.Body.String())
	l = decodeBody[httpapi.List[activities.Note]](t, rec)
	require.Len(t, l.Items, 1)
	assert.Equal(t, "staff-2", *l.Items[0].DeletedBy)

	// The notes show in the timeline; the deleted one no more.
	tl := w.timeline(t, "category=SUPPORT")
	require.Len(t, tl.Items, 1)
	assert.Equal(t, "Note by staff-1", tl.Items[0].Title)
	assert.Equal(t, "Prefers 07:00 starts", *tl.Items[0].Description)

	// Edits and deletions stay in the history.
	rec = w.do(t, "GET", w.path("/history?limit=500"), w.reader, "")
	require.Equal(t, 200, rec.Code)
	var types []string
	for _, e := range decodeBody[httpapi.List[httpapi.HistoryEvent]](t, rec).Items {
		types = append(types, e.Type)
	}
	assert.Contains(t, types, customer.TypeNoteEdited)
	assert.Contains(t, types, customer.TypeNoteDeleted)
}

func TestTagEndpoints(t *testing.T) {
	w := newTimelineWorld(t)
	rec := w.do(t, "POST", w.path("/tags"), w.staff1, `{"add": [" VIP ", "Early Bird"]}`)
	require.Equal(t, 200, rec.Code, rec.Body.String())
	assert.JSONEq(t, `{"customerId": "`+w.jane.ID.String()+`", "tags": ["vip", "early bird"], "added": ["vip", "early bird"], "removed": []}`, rec.Body.String())
	assert.NotEmpty(t, rec.Header().Get(httpapi.PositionHeader))
	rec = w.do(t, "POST", w.path("/tags"), w.staff2, `{"add": ["vip"], "remove": ["never"]}`)
	require.Equal(t, 200, rec.Code, rec.Body.String())
	assert.JSONEq(t, `{"customerId": "`+w.jane.ID.String()+`", "tags": ["vip", "early bird"], "added": [], "removed": []}`, rec.Body.String())
	assert.Empty(t, rec.Header().Get(httpapi.PositionHeader), "nothing written")
	assertProblem(t, w.do(t, "POST", w.path("/tags"), w.staff1, `{"add": ["ok", "semi;colon"]}`), 400, "add[1]")
	assertProblem(t, w.do(t, "POST", w.path("/tags"), w.staff1, `{}`), 400, "")
	assertProblem(t, w.do(t, "POST", w.path("/tags"), w.staff1, `{"add": ["a"], "remove": ["A"]}`), 400, "remove")

	// PATCH replaces the set, with CRM-owned fields in the same append.
	rec = w.do(t, "PATCH", w.path(""), w.staff1, `{"tags": ["Senior", "vip"], "displayName": "JD"}`)
	require.Equal(t, 200, rec.Code, rec.Body.String())
	c := decodeBody[customers.Customer](t, rec)
	assert.Equal(t, []string{"vip", "senior"}, c.Tags)
	assert.Equal(t, "JD", *c.DisplayName)
	require.NotNil(t, c.LifetimeValue, "computed fields answered with the command's profile")
	assert.EqualValues(t, 125000, *c.LifetimeValue)
	assert.Equal(t, "ZAR", *c.LifetimeValueCurrency)

	john := w.env.Ingest("club-a", nil, "member.created", `{"memberId": 7, "email": "john@mail.com"}`)
	rec = w.do(t, "POST", "/api/v1/customers/"+john.ID.String()+"/tags", w.staff1, `{"add": ["Senior"]}`)
	require.Equal(t, 200, rec.Code, rec.Body.String())
	w.run.Project(0)

	rec = w.do(t, "GET", "/api/v1/tags", w.reader, "")
	require.Equal(t, 200, rec.Code, rec.Body.String())
	assert.JSONEq(t, `{"items": [{"tag": "senior", "count": 2}, {"tag": "vip", "count": 1}], "nextCursor": null}`, rec.Body.String())
	rec = w.do(t, "GET", "/api/v1/tags?limit=1", w.reader, "")
	page := decodeBody[httpapi.List[customers.TagCount]](t, rec)
	require.NotNil(t, page.NextCursor)
	rec = w.do(t, "GET", "/api/v1/tags?limit=1&cursor="+*page.NextCursor, w.reader, "")
	assert.JSONEq(t, `{"items": [{"tag": "vip", "count": 1}], "nextCursor": null}`, rec.Body.String())
	rec = w.do(t, "GET", "/api/v1/customers?tag="+url.QueryEscape(" SENIOR"), w.reader, "")
	require.Equal(t, 200, rec.Code, rec.Body.String())
	assert.Len(t, decodeBody[httpapi.List[customers.Customer]](t, rec).Items, 2, "the tag filter normalises too")

	// The tag changes show in the timeline, and the profile row holds them.
	tl := w.timeline(t, "type=TAG_CHANGED")
	require.Len(t, tl.Items, 2)
	assert.Equal(t, "Tagged senior; untagged early bird", tl.Items[0].Title)
	got, err := customers.Reader{DB: w.env.Pool}.Get(context.Background(), "club-a", w.jane.ID)
	require.NoError(t, err)
	assert.Equal(t, []string{"vip", "senior"}, got.Tags)
	assert.Equal(t, 3, got.ActivityCount30d, "joined, booked and paid; tag changes are the club's doing")
	assert.Equal(t, 1, got.BookingCount30d)
}

func TestMergedTimelineOverHTTP(t *testing.T) {
	w := newTimelineWorld(t)
	dup := w.env.Ingest("club-a", nil, "player.created", `{"playerId": "p-9", "email": "jd@golf.com", "handicap": 12.4}`)
	dup = w.env.Ingest("club-a", dup, "handicap.updated", `{"playerId": "p-9", "handicap": 11.8}`)
	rec := w.do(t, "POST", "/api/v1/customers/"+dup.ID.String()+"/notes", w.staff1, `{"body": "On the duplicate"}`)
	require.Equal(t, 201, rec.Code, rec.Body.String())
	rec = w.do(t, "POST", w.path("/merge"), w.admin, `{"sourceId": "`+dup.ID.String()+`"}`)
	require.Equal(t, 200, rec.Code, rec.Body.String())
	w.run.Project(0)

	for _, id := range []string{w.jane.ID.String(), dup.ID.String()} {
		rec := w.do(t, "GET", "/api/v1/customers/"+id+"/activities", w.reader, "")
		require.Equal(t, 200, rec.Code, rec.Body.String())
		l := decodeBody[httpapi.List[activities.Activity]](t, rec)
		var titles []string
		for _, a := range l.Items {
			titles = append(titles, a.Title)
			assert.Equal(t, w.jane.ID, a.CustomerID)
		}
		assert.Contains(t, titles, "Handicap 12.4 → 11.8")
		assert.Contains(t, titles, "Booked a tee time for 21 Mar, 07:30")
		assert.Contains(t, titles, "Note by staff-1")
		assert.Len(t, titles, 7)
	}
	// The note written on the duplicate is edited through the survivor.
	l := decodeBody[httpapi.List[activities.Note]](t, w.do(t, "GET", w.path("/notes"), w.reader, ""))
	require.Len(t, l.Items, 1)
	rec = w.do(t, "PATCH", w.path("/notes/"+l.Items[0].ID.String()), w.staff1, `{"body": "Now on the survivor"}`)
	require.Equal(t, 200, rec.Code, rec.Body.String())
	assertProblem(t, w.do(t, "POST", "/api/v1/customers/"+dup.ID.String()+"/notes", w.staff1, `{"body": "x"}`), 409, "")
}

func TestTimelineRoutesInOpenAPI(t *testing.T) {
	w := newTimelineWorld(t)
	rec := w.do(t, "GET", "/openapi.json", "", "")
	require.Equal(t, http.StatusOK, rec.Code)
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &doc))
	for path, methods := range map[string][]string{
		"/api/v1/customers/{id}/activities":     {"get", "post"},
		"/api/v1/customers/{id}/notes":          {"get", "post"},
		"/api/v1/customers/{id}/notes/{noteId}": {"patch", "delete"},
		"/api/v1/customers/{id}/tags":           {"post"},
		"/api/v1/tags":                          {"get"},
	} {
		for _, m := range methods {
			assert.Contains(t, doc.Paths[path], m, "%s %s", m, path)
		}
	}
}

// Complaints over HTTP: a note added as one, unmarked and marked again by
// PATCH, listed with ?complaint=, a manual activity recorded as one, and
// the timeline saying so.
func TestComplaintEndpoints(t *testing.T) {
	w := newTimelineWorld(t)
	rec := w.do(t, "POST", w.path("/notes"), w.staff1, `{"body": "Greens were not cut", "complaint": true}`)
	require.Equal(t, 201, rec.Code, rec.Body.String())
	complaint := decodeBody[activities.Note](t, rec)
	assert.True(t, complaint.Complaint)
	assert.Contains(t, rec.Body.String(), `"complaint":true`)
	rec = w.do(t, "POST", w.path("/notes"), w.staff1, `{"body": "Prefers early tee times"}`)
	require.Equal(t, 201, rec.Code, rec.Body.String())
	plain := decodeBody[activities.Note](t, rec)
	assert.Contains(t, rec.Body.String(), `"complaint":false`, "every note answers complaint")

	note := w.path("/notes/" + complaint.ID.String())
	for _, c := range []struct {
		name, tok, body string
		status          int
		complaint       bool
	}{
		{"unmark", w.staff1, `{"complaint": false}`, 200, false},
		{"unmark again: no change", w.staff1, `{"complaint": false}`, 200, false},
		{"an administrator marks it", w.admin, `{"complaint": true}`, 200, true},
		{"null leaves it", w.staff1, `{"complaint": null, "body": "Greens were not cut on Saturday"}`, 200, true},
	} {
		rec := w.do(t, "PATCH", note, c.tok, c.body)
		require.Equal(t, c.status, rec.Code, "%s: %s", c.name, rec.Body.String())
		assert.Equal(t, c.complaint, decodeBody[activities.Note](t, rec).Complaint, c.name)
	}
	assertProblem(t, w.do(t, "PATCH", note, w.staff2, `{"complaint": false}`), 403, "")

	// Wrong types name the field.
	for _, c := range []struct{ method, path, body string }{
		{"POST", w.path("/notes"), `{"body": "x", "complaint": "yes"}`},
		{"POST", w.path("/notes"), `{"body": "x", "complaint": 1}`},
		{"PATCH", note, `{"complaint": "false"}`},
		{"POST", w.path("/activities"), `{"type": "CALL", "title": "x", "complaint": "true"}`},
	} {
		assertProblem(t, w.do(t, c.method, c.path, w.staff1, c.body), 400, "complaint")
	}

	rec = w.do(t, "POST", w.path("/activities"), w.staff1, `{"type": "CALL", "title": "Called about slow play", "complaint": true}`)
	require.Equal(t, 201, rec.Code, rec.Body.String())
	call := decodeBody[activities.Activity](t, rec)
	assert.Equal(t, "Complaint: Called about slow play", call.Title)
	assert.JSONEq(t, `{"recordedBy": "staff-1", "complaint": true}`, string(call.Metadata))

	w.run.Project(0)
	for _, c := range []struct {
		query string
		want  []string
	}{
		{"", []string{plain.ID.String(), complaint.ID.String()}},
		{"?complaint=true", []string{complaint.ID.String()}},
		{"?complaint=false", []string{plain.ID.String()}},
	} {
		rec := w.do(t, "GET", w.path("/notes"+c.query), w.reader, "")
		require.Equal(t, 200, rec.Code, rec.Body.String())
		var ids []string
		for _, n := range decodeBody[httpapi.List[activities.Note]](t, rec).Items {
			ids = append(ids, n.ID.String())
			assert.Equal(t, n.ID == complaint.ID, n.Complaint, "GET answers complaint per note")
		}
		assert.ElementsMatch(t, c.want, ids, c.query)
	}
	assertProblem(t, w.do(t, "GET", w.path("/notes?complaint=maybe"), w.reader, ""), 400, "complaint")

	tl := w.timeline(t, "q=complaint")
	require.Len(t, tl.Items, 2)
	byTitle := map[string]activities.Activity{}
	for _, a := range tl.Items {
		byTitle[a.Title] = a
	}
	require.Contains(t, byTitle, "Complaint: Note by staff-1")
	assert.JSONEq(t, `{"noteId": "`+complaint.ID.String()+`", "author": "staff-1", "pinned": false, "complaint": true, "editedBy": "staff-1"}`,
		string(byTitle["Complaint: Note by staff-1"].Metadata))
	got := byTitle["Complaint: Called about slow play"]
	got.RecordedAt = call.RecordedAt
	assert.Equal(t, call, got, "the command answers the activity as the timeline holds it")
}

// The complaint field is documented in the OpenAPI description of each
// request and of the note.
func TestComplaintInOpenAPI(t *testing.T) {
	w := newTimelineWorld(t)
	rec := w.do(t, "GET", "/openapi.json", "", "")
	require.Equal(t, http.StatusOK, rec.Code)
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Type        string `json:"type"`
					Description string `json:"description"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &doc))
	for _, name := range []string{"NoteRequest", "NoteEdit", "ActivityRequest", "Note"} {
		s, ok := doc.Components.Schemas[name]
		require.True(t, ok, name)
		p, ok := s.Properties["complaint"]
		require.True(t, ok, "%s.complaint", name)
		assert.Contains(t, p.Description, "complaint", name)
	}
}
