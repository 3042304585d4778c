package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/adapters/auth"
	"github.com/clubcrm/crm/adapters/httpapi"
	"github.com/clubcrm/crm/adapters/postgres"
	"github.com/clubcrm/crm/adapters/postgres/pgtest"
	"github.com/clubcrm/crm/commands"
	"github.com/clubcrm/crm/domain/identity"
	pgstore "github.com/clubcrm/crm/eventstore/postgres"
)

// fakeIngest validates as the real one does and records what it is given.
type fakeIngest struct {
	mu      sync.Mutex
	batches [][]commands.Envelope
	fail    error
}

func (f *fakeIngest) Handle(_ context.Context, batch []commands.Envelope) ([]commands.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	f.batches = append(f.batches, batch)
	out := make([]commands.Result, len(batch))
	for i, e := range batch {
		out[i] = commands.Result{ID: e.ID, Status: commands.Recorded, Stream: "customer-x"}
		if err := e.Validate(); err != nil {
			out[i] = commands.Result{ID: e.ID, Status: commands.Invalid, Error: err.Error()}
		}
	}
	return out, nil
}

func eventsAPI(t *testing.T, h httpapi.Ingester) *httpapi.API {
	t.Helper()
	v, err := auth.NewVerifier(context.Background(), auth.Config{HMACSecret: secret})
	require.NoError(t, err)
	api := httpapi.New(slog.New(slog.NewTextHandler(io.Discard, nil)), v, prometheus.NewRegistry())
	api.RegisterEvents(h)
	return api
}

func member(id, tenant string, memberID int) string {
	return fmt.Sprintf(`{"id":%q,"type":"member.created","tenantId":%q,"data":{"memberId":%d,"email":"m%d@fairway.co.za","firstName":"M","lastName":"Dlamini"}}`,
		id, tenant, memberID, memberID)
}

func postEvents(t *testing.T, api *httpapi.API, tok string, elems ...string) httpapi.EventsResponse {
	t.Helper()
	rec := do(t, api, "POST", "/api/v1/events", tok, "["+strings.Join(elems, ",")+"]")
	require.Equal(t, 200, rec.Code, rec.Body.String())
	var out httpapi.EventsResponse
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out))
	require.Len(t, out.Results, len(elems))
	return out
}

func TestPostEventsMixed(t *testing.T) {
	f := &fakeIngest{}
	api := eventsAPI(t, f)
	out := postEvents(t, api, token(t, "club-a", auth.RoleIngest),
		member("e1", "club-a", 1),
		member("e2", "club-b", 2), // another tenant's
		`{"id":"e3","type":"member.exploded","tenantId":"club-a","data":{}}`,
		`"not an object"`,
		`{"id":"e5","type":"member.created","tenantId":"club-a","data":{"memberId":"x"}}`,
		`{"id":"e6","type":42}`,
		member("e7", "club-a", 7),
	)
	r := out.Results
	assert.Equal(t, httpapi.EventResult{ID: "e1", Status: "recorded", Stream: "customer-x"}, r[0])
	assert.Equal(t, httpapi.EventResult{ID: "e2", Status: "invalid", Error: "tenantId: does not match the token's tenant"}, r[1])
	assert.Equal(t, "e3", r[2].ID)
	assert.Equal(t, "invalid", r[2].Status)
	assert.Contains(t, r[2].Error, `type: "member.exploded" is not an event of the contract`)
	assert.Equal(t, httpapi.EventResult{ID: "", Status: "invalid", Error: "envelope: must be a JSON object"}, r[3])
	assert.Equal(t, "e5", r[4].ID)
	assert.Contains(t, r[4].Error, "memberId")
	assert.Equal(t, "e6", r[5].ID, "the id is found even when the envelope does not decode")
	assert.Equal(t, "invalid", r[5].Status)
	assert.Equal(t, httpapi.EventResult{ID: "e7", Status: "recorded", Stream: "customer-x"}, r[6])

	// Only the acceptable envelopes reach the handler, in one batch, in order.
	require.Len(t, f.batches, 1)
	ids := []string{}
	for _, e := range f.batches[0] {
		ids = append(ids, e.ID)
	}
	assert.Equal(t, []string{"e1", "e7"}, ids)
}

func TestPostEventsPlatformToken(t *testing.T) {
	f := &fakeIngest{}
	api := eventsAPI(t, f)
	out := postEvents(t, api, token(t, auth.PlatformTenant, auth.RoleIngest),
		member("e1", "club-a", 1), member("e2", "club-b", 2), `{"id":"e3","type":"member.created","data":{"memberId":3}}`)
	assert.Equal(t, "recorded", out.Results[0].Status)
	assert.Equal(t, "recorded", out.Results[1].Status)
	assert.Equal(t, "invalid", out.Results[2].Status)
	assert.Contains(t, out.Results[2].Error, "tenantId: missing")
}

func TestPostEventsRefusals(t *testing.T) {
	f := &fakeIngest{}
	api := eventsAPI(t, f)
	ingest := token(t, "club-a", auth.RoleIngest)
	many := make([]string, httpapi.MaxEventsPerRequest+1)
	for i := range many {
		many[i] = member(fmt.Sprintf("e%d", i), "club-a", i+1)
	}
	cases := []struct {
		name, tok, body string
		status          int
		field, reason   string
	}{
		{name: "empty array", tok: ingest, body: `[]`, status: 400, field: "(body)", reason: "at least one event"},
		{name: "null", tok: ingest, body: `null`, status: 400, field: "(body)", reason: "at least one event"},
		{name: "too many", tok: ingest, body: "[" + strings.Join(many, ",") + "]", status: 400, field: "(body)", reason: "at most 1000 events, not 1001"},
		{name: "not an array", tok: ingest, body: member("e1", "club-a", 1), status: 400, field: "(body)", reason: "must be an array"},
		{name: "malformed", tok: ingest, body: `[{"id":`, status: 400},
		{name: "too large", tok: ingest, body: `["` + strings.Repeat("x", httpapi.EventsBodyLimit) + `"]`, status: 413},
		{name: "without crm:ingest", tok: token(t, "club-a", auth.RoleAdmin), body: "[" + member("e1", "club-a", 1) + "]", status: 403},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := do(t, api, "POST", "/api/v1/events", c.tok, c.body)
			require.Equal(t, c.status, rec.Code, rec.Body.String())
			assert.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
			if c.field != "" {
				var p httpapi.Problem
				require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p))
				require.Len(t, p.Errors, 1)
				assert.Equal(t, c.field, p.Errors[0].Field)
				assert.Contains(t, p.Errors[0].Reason, c.reason)
			}
		})
	}
	assert.Empty(t, f.batches)

	// 1,000 is allowed.
	out := postEvents(t, api, ingest, many[:httpapi.MaxEventsPerRequest]...)
	assert.Equal(t, "recorded", out.Results[999].Status)

	// A failure of the handler asks for the batch again.
	f.fail = errors.New("connect: connection refused")
	rec := do(t, api, "POST", "/api/v1/events", ingest, "["+member("e1", "club-a", 1)+"]")
	assert.Equal(t, 503, rec.Code)
	assert.Equal(t, "5", rec.Header().Get("Retry-After"))
	assert.NotContains(t, rec.Body.String(), "connection refused")
}

func TestPostEventsDocumented(t *testing.T) {
	api := eventsAPI(t, &fakeIngest{})
	doc, err := json.Marshal(api.OpenAPI())
	require.NoError(t, err)
	var d struct {
		Paths map[string]map[string]struct {
			RequestBody struct {
				Content map[string]struct {
					Schema map[string]any `json:"schema"`
				} `json:"content"`
			} `json:"requestBody"`
			Role string `json:"x-required-role"`
		} `json:"paths"`
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	require.NoError(t, json.Unmarshal(doc, &d))
	op, ok := d.Paths["/api/v1/events"]["post"]
	require.True(t, ok)
	assert.Equal(t, auth.RoleIngest, op.Role)
	assert.Equal(t, "array", op.RequestBody.Content["application/json"].Schema["type"])
	assert.Contains(t, d.Components.Schemas, "Envelope")
	assert.Contains(t, string(d.Components.Schemas["EventResult"]), `"recorded","duplicate","invalid"`)
}

type fixedSettings struct{}

func (fixedSettings) IdentitySettings(context.Context, string) (identity.Settings, error) {
	return identity.DefaultSettings(), nil
}

// TestPostEventsRealIngest posts through the real ingest command: a batch
// posted twice is recorded once.
func TestPostEventsRealIngest(t *testing.T) {
	pool, _ := pgtest.New(t)
	store := pgstore.New(pool)
	t.Cleanup(func() { store.Close() })
	index := &postgres.IdentityIndex{Pool: pool}
	api := eventsAPI(t, &commands.Ingest{Store: store, Index: index, Inbox: index, Settings: fixedSettings{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	tok := token(t, "club-a", auth.RoleIngest)
	batch := []string{member("e1", "club-a", 11), member("e2", "club-b", 12), `[]`, member("e3", "club-a", 13)}

	first := postEvents(t, api, tok, batch...).Results
	assert.Equal(t, []string{"recorded", "invalid", "invalid", "recorded"}, statuses(first))
	require.NotNil(t, first[0].CustomerID)
	assert.NotEqual(t, uuid.Nil, *first[0].CustomerID)
	assert.NotEmpty(t, first[0].MatchedBy)
	p, err := commands.LoadProfile(context.Background(), store, "club-a", *first[0].CustomerID)
	require.NoError(t, err)
	assert.Equal(t, "m11@fairway.co.za", p.Email)

	again := postEvents(t, api, tok, batch...).Results
	assert.Equal(t, []string{"duplicate", "invalid", "invalid", "duplicate"}, statuses(again))
	assert.Equal(t, first[0].Stream, again[0].Stream)
}

func statuses(rs []httpapi.EventResult) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Status
	}
	return out
}
