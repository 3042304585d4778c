package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/adapters/auth"
	"github.com/clubcrm/crm/adapters/httpapi"
	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/domain/identity"
	"github.com/clubcrm/crm/eventstore"
	"github.com/clubcrm/crm/readmodels/customers"
	"github.com/clubcrm/crm/readmodels/customers/customerstest"
)

// customerWorld is a tenant club-a with a few profiles, and club-b with one.
type customerWorld struct {
	api    *httpapi.API
	env    *customerstest.Env
	reader string // club-a crm:read token
	admin  string // club-a crm:admin token
	other  string // club-b crm:read token

	jane, john, merged, elsewhere *customer.Profile
	janeCreated                   time.Time // when jane's first events were recorded
	mergedAt                      time.Time // when the merge was recorded
}

func newCustomerWorld(t *testing.T) *customerWorld {
	t.Helper()
	v, err := auth.NewVerifier(context.Background(), auth.Config{HMACSecret: secret})
	require.NoError(t, err)
	api := httpapi.New(slog.New(slog.NewTextHandler(io.Discard, nil)), v, prometheus.NewRegistry())
	env := customerstest.New(t)
	// serve registers the command routes first: a PATCH /customers/{id}
	// ahead of GET /customers/resolve must not take "resolve" for an id.
	api.Handle(httpapi.Route{Method: http.MethodPatch, Path: "/customers/{id}", Role: auth.RoleWrite},
		func(w http.ResponseWriter, r *http.Request) error { return httpapi.Conflict("not in this test") })
	api.RegisterCustomerQueries(httpapi.CustomerQueries{DB: env.Pool, Store: env.Store})

	w := &customerWorld{api: api, env: env,
		reader: token(t, "club-a", auth.RoleRead), admin: token(t, "club-a", auth.RoleAdmin), other: token(t, "club-b", auth.RoleRead)}
	w.jane = env.Ingest("club-a", nil, "member.created", `{"memberId": 42, "authUserId": "idp|jane", "email": "Jane.Doe@Mail.co.za", "phoneNumber": "082 555 1234",
		"firstName": "Jane", "lastName": "Doe", "membershipTier": "Gold", "membershipStatus": "active", "homeClubId": "club-1"}`)
	w.janeCreated = w.jane.UpdatedAt
	w.jane = env.Ingest("club-a", w.jane, "player.created", `{"playerId": "p-1", "email": "jane.doe@mail.co.za", "handicap": 12.4}`)
	w.jane = env.Ingest("club-a", w.jane, "contactPreference.updated", `{"contactId": "c-1", "email": "jane.doe@mail.co.za", "emailOptIn": true}`)
	w.john = env.Ingest("club-a", nil, "member.created", `{"memberId": 7, "email": "john@smith.org", "firstName": "John", "lastName": "Smith", "membershipStatus": "suspended"}`)
	w.merged = env.Ingest("club-a", nil, "message.sent", `{"contactId": "c-9", "email": "johnny@smith.org"}`,
		identity.Conflict{Other: w.john.ID, Key: identity.Key{Kind: identity.Email, Value: "smith.org"}, Reason: "similar name at the same email domain", Confidence: 60})
	w.john, w.merged = env.Merge(w.john, w.merged, "staff-1")
	w.mergedAt = w.merged.UpdatedAt
	w.elsewhere = env.Ingest("club-b", nil, "member.created", `{"memberId": 42, "email": "jane.doe@mail.co.za", "firstName": "Jane"}`)
	env.Project(0)
	return w
}

func (w *customerWorld) get(t *testing.T, path, tok string) *httptest.ResponseRecorder {
	t.Helper()
	return do(t, w.api, "GET", path, tok, "")
}

func decodeBody[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &v), rec.Body.String())
	return v
}

func assertProblem(t *testing.T, rec *httptest.ResponseRecorder, status int, field string) {
	t.Helper()
	require.Equal(t, status, rec.Code, rec.Body.String())
	assert.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
	if field != "" {
		p := decodeBody[httpapi.Problem](t, rec)
		require.NotEmpty(t, p.Errors, rec.Body.String())
		assert.Equal(t, field, p.Errors[0].Field)
	}
}

func TestCustomerList(t *testing.T) {
	w := newCustomerWorld(t)
	list := func(query string) httpapi.List[customers.Customer] {
		t.Helper()
		rec := w.get(t, "/api/v1/customers?"+query, w.reader)
		require.Equal(t, 200, rec.Code, rec.Body.String())
		return decodeBody[httpapi.List[customers.Customer]](t, rec)
	}
	l := list("q=" + url.QueryEscape("jane do"))
	require.Len(t, l.Items, 1)
	assert.Equal(t, customers.FromProfile(w.jane), l.Items[0])
	assert.Nil(t, l.NextCursor)
	assert.Len(t, list("q="+url.QueryEscape("082 555 1234")).Items, 1)
	assert.Len(t, list("status=merged").Items, 1, "enum values in any case")
	assert.Len(t, list("lifecycleStage=LAPSED").Items, 1)
	assert.Empty(t, list("q=zebedee").Items)
	assert.Equal(t, "[]", string(mustRaw(t, w.get(t, "/api/v1/customers?q=zebedee", w.reader), "items")))

	// Pages of one, in order, with nothing repeated.
	var seen []uuid.UUID
	path := "/api/v1/customers?limit=1"
	for {
		rec := w.get(t, path, w.reader)
		require.Equal(t, 200, rec.Code, rec.Body.String())
		l := decodeBody[httpapi.List[customers.Customer]](t, rec)
		for _, c := range l.Items {
			seen = append(seen, c.ID)
		}
		if l.NextCursor == nil {
			break
		}
		path = "/api/v1/customers?limit=1&cursor=" + url.QueryEscape(*l.NextCursor)
	}
	assert.Equal(t, []uuid.UUID{w.john.ID, w.jane.ID}, seen)

	// Another tenant's list is its own.
	rec := w.get(t, "/api/v1/customers?q=jane", w.other)
	require.Equal(t, 200, rec.Code)
	l = decodeBody[httpapi.List[customers.Customer]](t, rec)
	require.Len(t, l.Items, 1)
	assert.Equal(t, w.elsewhere.ID, l.Items[0].ID)

	assertProblem(t, w.get(t, "/api/v1/customers?status=GONE", w.reader), 400, "status")
	assertProblem(t, w.get(t, "/api/v1/customers?lifecycleStage=VIP", w.reader), 400, "lifecycleStage")
	assertProblem(t, w.get(t, "/api/v1/customers?cursor=nonsense", w.reader), 400, "cursor")
	assertProblem(t, w.get(t, "/api/v1/customers?limit=0", w.reader), 400, "limit")
	assertProblem(t, w.get(t, "/api/v1/customers?q="+url.QueryEscape(string(make([]byte, 201))), w.reader), 400, "q")
	assertProblem(t, w.get(t, "/api/v1/customers", ""), 401, "")
	assertProblem(t, w.get(t, "/api/v1/customers", token(t, "club-a", auth.RoleIngest)), 403, "")
}

func mustRaw(t *testing.T, rec *httptest.ResponseRecorder, field string) json.RawMessage {
	t.Helper()
	m := decodeBody[map[string]json.RawMessage](t, rec)
	return m[field]
}

func TestCustomerGet(t *testing.T) {
	w := newCustomerWorld(t)
	base := "/api/v1/customers/"

	rec := w.get(t, base+w.jane.ID.String(), w.reader)
	require.Equal(t, 200, rec.Code, rec.Body.String())
	assert.Equal(t, httpapi.CustomerResponse{Customer: customers.FromProfile(w.jane)}, decodeBody[httpapi.CustomerResponse](t, rec))
	assert.NotContains(t, rec.Body.String(), "requestedId")
	assert.Empty(t, rec.Header().Get("Content-Location"))

	// A merged-away id answers the survivor, naming the id asked for.
	rec = w.get(t, base+w.merged.ID.String(), w.reader)
	require.Equal(t, 200, rec.Code, rec.Body.String())
	got := decodeBody[httpapi.CustomerResponse](t, rec)
	assert.Equal(t, customers.FromProfile(w.john), got.Customer)
	require.NotNil(t, got.RequestedID)
	assert.Equal(t, w.merged.ID.String(), *got.RequestedID)
	assert.Equal(t, "/api/v1/customers/"+w.john.ID.String(), rec.Header().Get("Content-Location"))

	for name, path := range map[string]string{
		"not a uuid":     base + "jane",
		"nobody":         base + uuid.NewString(),
		"another tenant": base + w.elsewhere.ID.String(),
	} {
		t.Run(name, func(t *testing.T) {
			assertProblem(t, w.get(t, path, w.reader), 404, "")
			assertProblem(t, w.get(t, path+"?asOf="+url.QueryEscape(time.Now().Format(time.RFC3339)), w.reader), 404, "")
		})
	}
	assertProblem(t, w.get(t, base+w.jane.ID.String(), w.other), 404, "")
}

func TestCustomerAsOf(t *testing.T) {
	w := newCustomerWorld(t)
	at := func(id uuid.UUID, when time.Time) *httptest.ResponseRecorder {
		return w.get(t, "/api/v1/customers/"+id.String()+"?asOf="+url.QueryEscape(when.Format(time.RFC3339Nano)), w.reader)
	}

	// Right after her first append: created and the member event, nothing later.
	rec := at(w.jane.ID, w.janeCreated)
	require.Equal(t, 200, rec.Code, rec.Body.String())
	then := decodeBody[httpapi.CustomerResponse](t, rec)
	assert.EqualValues(t, 2, then.Version)
	assert.Nil(t, then.TeeTimePlayerID)
	assert.Nil(t, then.Handicap)
	assert.Equal(t, ptrTo("Gold"), then.MembershipTier)

	rec = at(w.jane.ID, time.Now().Add(time.Hour))
	require.Equal(t, 200, rec.Code)
	assert.Equal(t, customers.FromProfile(w.jane), decodeBody[httpapi.CustomerResponse](t, rec).Customer)

	assertProblem(t, at(w.jane.ID, w.janeCreated.Add(-time.Microsecond)), 404, "")

	// Before the merge the absorbed profile answers as itself; after, its survivor.
	rec = at(w.merged.ID, w.mergedAt.Add(-time.Microsecond))
	require.Equal(t, 200, rec.Code)
	before := decodeBody[httpapi.CustomerResponse](t, rec)
	assert.Equal(t, w.merged.ID, before.ID)
	assert.Nil(t, before.RequestedID)
	rec = at(w.merged.ID, w.mergedAt)
	require.Equal(t, 200, rec.Code)
	after := decodeBody[httpapi.CustomerResponse](t, rec)
	assert.Equal(t, w.john.ID, after.ID)
	assert.Equal(t, ptrTo(w.merged.ID.String()), after.RequestedID)

	for _, bad := range []string{"yesterday", "2026-03-14", "2026-03-14T07:30:00"} {
		assertProblem(t, w.get(t, "/api/v1/customers/"+w.jane.ID.String()+"?asOf="+url.QueryEscape(bad), w.reader), 400, "asOf")
	}
}

func ptrTo[T any](v T) *T { return &v }

func TestCustomerHistory(t *testing.T) {
	w := newCustomerWorld(t)
	ctx := context.Background()
	stream, err := w.env.Store.ReadStream(ctx, customer.Stream(w.jane.ID), 1, 0)
	require.NoError(t, err)
	require.Len(t, stream, 6)

	var items []httpapi.HistoryEvent
	path := "/api/v1/customers/" + w.jane.ID.String() + "/history?limit=4"
	pages := 0
	for {
		rec := w.get(t, path, w.reader)
		require.Equal(t, 200, rec.Code, rec.Body.String())
		l := decodeBody[httpapi.List[httpapi.HistoryEvent]](t, rec)
		items = append(items, l.Items...)
		pages++
		if l.NextCursor == nil {
			break
		}
		path = "/api/v1/customers/" + w.jane.ID.String() + "/history?limit=4&cursor=" + url.QueryEscape(*l.NextCursor)
	}
	assert.Equal(t, 2, pages)
	require.Len(t, items, len(stream))
	for i, e := range stream {
		got := items[i]
		assert.Equal(t, e.ID, got.ID)
		assert.Equal(t, e.Type, got.Type)
		assert.Equal(t, e.Version, got.Version)
		assert.Equal(t, e.Position.String(), got.Position)
		assert.True(t, e.RecordedAt.Equal(got.RecordedAt))
		assert.True(t, e.OccurredAt.Equal(got.OccurredAt))
		assert.JSONEq(t, string(e.Data), string(got.Data))
		assert.Equal(t, e.Metadata, got.Metadata)
	}
	assert.Equal(t, customer.TypeCreated, items[0].Type)
	assert.Equal(t, "member.created", items[1].Type)
	assert.Equal(t, eventstore.Metadata{TenantID: "club-a", CorrelationID: items[1].Metadata.CausationID, CausationID: items[1].Metadata.CausationID, Actor: "scl", SchemaVersion: 1}, items[1].Metadata)

	// The raw JSON shape.
	rec := w.get(t, "/api/v1/customers/"+w.jane.ID.String()+"/history?limit=1", w.reader)
	var raw struct {
		Items []map[string]json.RawMessage `json:"items"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &raw))
	for _, k := range []string{"type", "version", "position", "occurredAt", "recordedAt", "data", "metadata"} {
		assert.Contains(t, raw.Items[0], k)
	}
	assert.Equal(t, `"`+stream[0].Position.String()+`"`, string(raw.Items[0]["position"]), "positions are strings")

	// Past the end: an empty page, but only for the tenant's own stream.
	past := *httpapi.EncodeCursor(map[string]uint64{"v": 99})
	rec = w.get(t, "/api/v1/customers/"+w.jane.ID.String()+"/history?cursor="+past, w.reader)
	require.Equal(t, 200, rec.Code)
	assert.JSONEq(t, `{"items":[],"nextCursor":null}`, rec.Body.String())
	assertProblem(t, w.get(t, "/api/v1/customers/"+w.jane.ID.String()+"/history?cursor="+past, w.other), 404, "")

	assertProblem(t, w.get(t, "/api/v1/customers/"+w.jane.ID.String()+"/history", w.other), 404, "")
	assertProblem(t, w.get(t, "/api/v1/customers/"+uuid.NewString()+"/history", w.reader), 404, "")
	assertProblem(t, w.get(t, "/api/v1/customers/jane/history", w.reader), 404, "")
	assertProblem(t, w.get(t, "/api/v1/customers/"+w.jane.ID.String()+"/history?cursor=x", w.reader), 400, "cursor")
}

func TestCustomerResolve(t *testing.T) {
	w := newCustomerWorld(t)
	cases := []struct {
		query      string
		want       uuid.UUID
		matchedBy  string
		confidence int
	}{
		{"email=" + url.QueryEscape(" JANE.doe@mail.co.za"), w.jane.ID, "email", 95},
		{"phoneNumber=" + url.QueryEscape("082 555 1234"), w.jane.ID, "phoneNumber", 85},
		{"phoneNumber=" + url.QueryEscape("+27825551234"), w.jane.ID, "phoneNumber", 85},
		{"email=jane.doe@mail.co.za&phoneNumber=0825551234", w.jane.ID, "email+phoneNumber", 99},
		{"authUserId=" + url.QueryEscape("idp|jane"), w.jane.ID, "authUserId", 100},
		{"sclMemberId=042", w.jane.ID, "sclMemberId", 100},
		{"teetimePlayerId=p-1", w.jane.ID, "teetimePlayerId", 100},
		{"messagingContactId=c-1", w.jane.ID, "messagingContactId", 100},
		{"messagingContactId=c-9", w.john.ID, "messagingContactId", 100}, // the merged profile's key: its survivor
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			rec := w.get(t, "/api/v1/customers/resolve?"+c.query, w.reader)
			require.Equal(t, 200, rec.Code, rec.Body.String())
			got := decodeBody[httpapi.ResolveResponse](t, rec)
			assert.Equal(t, c.want, got.Customer.ID)
			assert.Equal(t, c.matchedBy, got.MatchedBy)
			assert.Equal(t, c.confidence, got.Confidence)
		})
	}
	rec := w.get(t, "/api/v1/customers/resolve?email=jane.doe@mail.co.za", w.reader)
	assert.Equal(t, customers.FromProfile(w.jane), decodeBody[httpapi.ResolveResponse](t, rec).Customer)

	for _, q := range []string{"email=nobody@mail.co.za", "email=noreply@mail.co.za", "sclMemberId=9999"} {
		assertProblem(t, w.get(t, "/api/v1/customers/resolve?"+q, w.reader), 404, "")
	}
	// Each tenant's index answers its own profile for the same address.
	rec = w.get(t, "/api/v1/customers/resolve?email=jane.doe@mail.co.za", w.other)
	require.Equal(t, 200, rec.Code, rec.Body.String())
	assert.Equal(t, w.elsewhere.ID, decodeBody[httpapi.ResolveResponse](t, rec).Customer.ID)
	assertProblem(t, w.get(t, "/api/v1/customers/resolve?authUserId="+url.QueryEscape("idp|jane"), w.other), 404, "")

	assertProblem(t, w.get(t, "/api/v1/customers/resolve", w.reader), 400, "query")
	assertProblem(t, w.get(t, "/api/v1/customers/resolve?email=jane", w.reader), 400, "email")
	assertProblem(t, w.get(t, "/api/v1/customers/resolve?phoneNumber=12", w.reader), 400, "phoneNumber")
	assertProblem(t, w.get(t, "/api/v1/customers/resolve?sclMemberId=-1", w.reader), 400, "sclMemberId")
	assertProblem(t, w.get(t, "/api/v1/customers/resolve?phoneNumber=0825551234&country=XX", w.reader), 400, "country")
}

func TestCustomerDuplicates(t *testing.T) {
	w := newCustomerWorld(t)
	assertProblem(t, w.get(t, "/api/v1/customers/duplicates", w.reader), 403, "")

	list := func(query string) httpapi.List[customers.Duplicate] {
		t.Helper()
		rec := w.get(t, "/api/v1/customers/duplicates?"+query, w.admin)
		require.Equal(t, 200, rec.Code, rec.Body.String())
		return decodeBody[httpapi.List[customers.Duplicate]](t, rec)
	}
	assert.Empty(t, list("").Items, "the only pair was merged: nothing open")
	merged := list("status=MERGED").Items
	require.Len(t, merged, 1)
	d := merged[0]
	assert.Equal(t, customers.PairID("club-a", w.john.ID, w.merged.ID), d.ID)
	assert.Equal(t, w.merged.ID, d.CustomerA)
	assert.Equal(t, w.john.ID, d.CustomerB)
	assert.Equal(t, ptrTo("staff-1"), d.ResolvedBy)
	assert.Equal(t, &customers.Summary{Name: ptrTo("John Smith"), Email: ptrTo("john@smith.org"), Status: "ACTIVE"}, d.SummaryB)
	assert.Len(t, list("status=all").Items, 1)
	assertProblem(t, w.get(t, "/api/v1/customers/duplicates?status=MAYBE", w.admin), 400, "status")

	rec := w.get(t, "/api/v1/customers/duplicates/"+d.ID.String(), w.admin)
	require.Equal(t, 200, rec.Code, rec.Body.String())
	assert.Equal(t, d, decodeBody[customers.Duplicate](t, rec))
	assertProblem(t, w.get(t, "/api/v1/customers/duplicates/"+d.ID.String(), token(t, "club-b", auth.RoleAdmin)), 404, "")
	assertProblem(t, w.get(t, "/api/v1/customers/duplicates/nope", w.admin), 404, "")
}

func TestCustomerRoutesDocumented(t *testing.T) {
	w := newCustomerWorld(t)
	rec := do(t, w.api, "GET", "/openapi.json", "", "")
	require.Equal(t, 200, rec.Code)
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]struct {
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &doc))
	AssertDocumented(t, w.api.Router(), doc.Paths)
	resp := doc.Components.Schemas["CustomerResponse"].Properties
	for _, k := range []string{"id", "email", "externalIds", "requestedId", "engagementScore", "whatsappOptIn", "aliases", "mergedInto"} {
		assert.Contains(t, resp, k)
	}
	assert.Contains(t, string(resp["status"]), `"MERGED"`)
}
