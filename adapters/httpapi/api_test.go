package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/adapters/auth"
	"github.com/clubcrm/crm/adapters/httpapi"
)

var secret = []byte("test-secret-0123456789abcdef")

var errGone = errors.New("widget gone")

type widget struct {
	Name  string `json:"name"`
	Count int    `json:"count,omitempty"`
}

func (w widget) Validate() []httpapi.FieldError {
	var errs []httpapi.FieldError
	if w.Name == "" {
		errs = append(errs, httpapi.FieldError{Field: "name", Reason: "is required"})
	}
	if w.Count < 0 {
		errs = append(errs, httpapi.FieldError{Field: "count", Reason: "must not be negative"})
	}
	return errs
}

func newAPI(t *testing.T) (*httpapi.API, *prometheus.Registry) {
	t.Helper()
	v, err := auth.NewVerifier(context.Background(), auth.Config{HMACSecret: secret})
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	api := httpapi.New(slog.New(slog.NewTextHandler(io.Discard, nil)), v, reg)
	api.Operability(reg, httpapi.Check{Name: "always", Ping: func(context.Context) error { return nil }})
	api.RegisterMe()
	api.MapError(errGone, http.StatusNotFound, "not-found")
	api.Handle(httpapi.Route{Method: http.MethodPost, Path: "/widgets", Role: auth.RoleWrite, Request: widget{}, Response: widget{}, Status: http.StatusCreated, BodyLimit: 64},
		func(w http.ResponseWriter, r *http.Request) error {
			var in widget
			if err := httpapi.Decode(r, &in); err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusCreated, in)
			return nil
		})
	api.Handle(httpapi.Route{Method: http.MethodGet, Path: "/widgets/{id}", Role: auth.RoleRead, Response: widget{}},
		func(w http.ResponseWriter, r *http.Request) error {
			switch mux.Vars(r)["id"] {
			case "panic":
				panic("secret internal detail")
			case "fail":
				return errors.New("database password is hunter2")
			case "gone":
				return errGone
			}
			return httpapi.NotFound("widget")
		})
	return api, reg
}

func token(t *testing.T, tenant string, roles ...string) string {
	t.Helper()
	tok, err := auth.Mint(secret, auth.Principal{Subject: "u1", Tenant: tenant, Roles: roles}, time.Hour, time.Now())
	require.NoError(t, err)
	return tok
}

func do(t *testing.T, h http.Handler, method, path, tok, body string) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestProblems(t *testing.T) {
	api, _ := newAPI(t)
	writer := token(t, "club-a", auth.RoleWrite)
	reader := token(t, "club-a", auth.RoleRead)
	expired, err := auth.Mint(secret, auth.Principal{Subject: "u1", Tenant: "club-a", Roles: []string{auth.RoleRead}}, time.Minute, time.Now().Add(-time.Hour))
	require.NoError(t, err)

	cases := []struct {
		name, method, path, tok, body string
		status                        int
		field, reason, detail         string
	}{
		{name: "missing token", method: "GET", path: "/api/v1/me", status: 401, detail: "missing bearer token"},
		{name: "garbage token", method: "GET", path: "/api/v1/me", tok: "not.a.jwt", status: 401},
		{name: "expired token", method: "GET", path: "/api/v1/me", tok: expired, status: 401, detail: "expired"},
		{name: "missing role", method: "POST", path: "/api/v1/widgets", tok: reader, body: `{"name":"x"}`, status: 403, detail: "crm:write"},
		{name: "unknown field", method: "POST", path: "/api/v1/widgets", tok: writer, body: `{"name":"x","colour":"red"}`, status: 400, field: "colour", reason: "unknown field"},
		{name: "wrong type", method: "POST", path: "/api/v1/widgets", tok: writer, body: `{"name":"x","count":"many"}`, status: 400, field: "count", reason: "must be an integer"},
		{name: "validation", method: "POST", path: "/api/v1/widgets", tok: writer, body: `{"count":-1}`, status: 400, field: "name", reason: "is required"},
		{name: "malformed", method: "POST", path: "/api/v1/widgets", tok: writer, body: `{"name":`, status: 400},
		{name: "too large", method: "POST", path: "/api/v1/widgets", tok: writer, body: `{"name":"` + strings.Repeat("x", 100) + `"}`, status: 413},
		{name: "not found", method: "GET", path: "/api/v1/widgets/nope", tok: reader, status: 404, detail: "widget not found"},
		{name: "mapped error", method: "GET", path: "/api/v1/widgets/gone", tok: reader, status: 404, detail: "widget gone"},
		{name: "no route", method: "GET", path: "/api/v1/nothing-here", tok: reader, status: 404},
		{name: "method not allowed", method: "DELETE", path: "/api/v1/widgets/x", tok: reader, status: 405},
		{name: "panic", method: "GET", path: "/api/v1/widgets/panic", tok: reader, status: 500},
		{name: "internal error", method: "GET", path: "/api/v1/widgets/fail", tok: reader, status: 500},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := do(t, api, c.method, c.path, c.tok, c.body)
			require.Equal(t, c.status, rec.Code, rec.Body.String())
			assert.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
			var p httpapi.Problem
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p))
			assert.Equal(t, c.status, p.Status)
			assert.NotEmpty(t, p.Type)
			assert.NotEmpty(t, p.Title)
			assert.Equal(t, rec.Header().Get("X-Request-ID"), p.RequestID)
			if c.field != "" || c.reason != "" {
				require.NotEmpty(t, p.Errors)
				assert.Equal(t, c.field, p.Errors[0].Field)
				assert.Equal(t, c.reason, p.Errors[0].Reason)
			}
			if c.detail != "" {
				assert.Contains(t, p.Detail, c.detail)
			}
			if c.status == 401 {
				assert.Contains(t, rec.Header().Get("WWW-Authenticate"), "Bearer")
			}
			assert.NotContains(t, rec.Body.String(), "secret internal detail")
			assert.NotContains(t, rec.Body.String(), "hunter2")
		})
	}
}

func TestValidationReportsEveryField(t *testing.T) {
	api, _ := newAPI(t)
	rec := do(t, api, "POST", "/api/v1/widgets", token(t, "club-a", auth.RoleAdmin), `{"count":-2}`)
	require.Equal(t, 400, rec.Code)
	var p httpapi.Problem
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p))
	assert.Equal(t, []httpapi.FieldError{{Field: "name", Reason: "is required"}, {Field: "count", Reason: "must not be negative"}}, p.Errors)
}

func TestMeAndRequestID(t *testing.T) {
	api, _ := newAPI(t)
	req := httptest.NewRequest("GET", "/api/v1/me", nil)
	req.Header.Set("Authorization", "Bearer "+token(t, "club-a", auth.RoleRead, auth.RoleWrite))
	req.Header.Set("X-Request-ID", "trace-42")
	rec := httptest.NewRecorder()
	api.ServeHTTP(rec, req)
	require.Equal(t, 200, rec.Code, rec.Body.String())
	assert.Equal(t, "trace-42", rec.Header().Get("X-Request-ID"))
	assert.JSONEq(t, `{"subject":"u1","tenantId":"club-a","roles":["crm:read","crm:write"]}`, rec.Body.String())

	// An id that could forge log lines is replaced.
	req.Header.Set("X-Request-ID", "bad id\nINFO forged")
	rec = httptest.NewRecorder()
	api.ServeHTTP(rec, req)
	assert.NotContains(t, rec.Header().Get("X-Request-ID"), "forged")
	assert.NotEmpty(t, rec.Header().Get("X-Request-ID"))
}

func TestCreatedAndRoleImplication(t *testing.T) {
	api, _ := newAPI(t)
	rec := do(t, api, "POST", "/api/v1/widgets", token(t, "club-a", auth.RoleAdmin), `{"name":"flag","count":3}`)
	require.Equal(t, 201, rec.Code, rec.Body.String())
	assert.JSONEq(t, `{"name":"flag","count":3}`, rec.Body.String())
	// crm:ingest grants nothing else.
	rec = do(t, api, "GET", "/api/v1/widgets/nope", token(t, "club-a", auth.RoleIngest), "")
	assert.Equal(t, 403, rec.Code)
}

func TestOperabilityEndpoints(t *testing.T) {
	api, _ := newAPI(t)
	rec := do(t, api, "GET", "/healthz", "", "")
	assert.Equal(t, 200, rec.Code)
	rec = do(t, api, "GET", "/readyz", "", "")
	assert.Equal(t, 200, rec.Code)
	assert.JSONEq(t, `{"status":"ready","checks":{"always":"ok"}}`, rec.Body.String())
	do(t, api, "GET", "/api/v1/me", token(t, "t", auth.RoleRead), "")
	rec = do(t, api, "GET", "/metrics", "", "")
	assert.Equal(t, 200, rec.Code)
	assert.Contains(t, rec.Body.String(), `crm_http_requests_total{method="GET",route="/api/v1/me",status="200"} 1`)
	assert.Contains(t, rec.Body.String(), `crm_http_request_duration_seconds_bucket{method="GET",route="/api/v1/me"`)
}

func TestReadyzFailing(t *testing.T) {
	v, err := auth.NewVerifier(context.Background(), auth.Config{HMACSecret: secret})
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	api := httpapi.New(slog.New(slog.NewTextHandler(io.Discard, nil)), v, reg)
	api.Operability(reg, httpapi.Check{Name: "redis", Ping: func(context.Context) error { return errors.New("connection refused") }})
	rec := do(t, api, "GET", "/readyz", "", "")
	assert.Equal(t, 503, rec.Code)
	assert.Contains(t, rec.Body.String(), "connection refused")
}

func TestPaging(t *testing.T) {
	cases := []struct {
		query string
		limit int
		bad   bool
	}{
		{"", 50, false}, {"limit=10", 10, false}, {"limit=500", 500, false},
		{"limit=0", 0, true}, {"limit=501", 0, true}, {"limit=ten", 0, true},
	}
	for _, c := range cases {
		p, err := httpapi.ParsePage(httptest.NewRequest("GET", "/x?"+c.query, nil))
		if c.bad {
			assert.Error(t, err, c.query)
			continue
		}
		require.NoError(t, err, c.query)
		assert.Equal(t, c.limit, p.Limit)
	}
	type key struct{ At, ID string }
	l := httpapi.NewList([]key{{"a", "1"}, {"b", "2"}, {"c", "3"}}, 2, func(k key) any { return k })
	require.Len(t, l.Items, 2)
	require.NotNil(t, l.NextCursor)
	var k key
	require.NoError(t, httpapi.DecodeCursor(*l.NextCursor, &k))
	assert.Equal(t, key{"b", "2"}, k)
	assert.Error(t, httpapi.DecodeCursor("%%%", &k))
	empty := httpapi.NewList[key](nil, 2, func(k key) any { return k })
	b, _ := json.Marshal(empty)
	assert.JSONEq(t, `{"items":[],"nextCursor":null}`, string(b))
}

// TestOpenAPICoversEveryRoute walks the router itself, so a route added to
// it any other way than through Handle fails here.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	api, _ := newAPI(t)
	rec := do(t, api, "GET", "/openapi.json", "", "")
	require.Equal(t, 200, rec.Code)
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &doc))
	assert.Equal(t, "3.1.0", doc.OpenAPI)
	AssertDocumented(t, api.Router(), doc.Paths)
}

// AssertDocumented fails for every method and path the router serves that
// the document lacks.
func AssertDocumented(t *testing.T, r *mux.Router, paths map[string]map[string]json.RawMessage) {
	t.Helper()
	n := 0
	err := r.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tmpl, err := route.GetPathTemplate()
		if err != nil {
			return nil
		}
		methods, err := route.GetMethods()
		if err != nil {
			return nil // a subrouter prefix, not an endpoint
		}
		for _, m := range methods {
			n++
			_, ok := paths[tmpl][strings.ToLower(m)]
			assert.True(t, ok, "%s %s is served but missing from /openapi.json", m, tmpl)
		}
		return nil
	})
	require.NoError(t, err)
	assert.Greater(t, n, 3)
}

func TestPlatformTokenReadsNothing(t *testing.T) {
	api, _ := newAPI(t)
	tok := token(t, auth.PlatformTenant, auth.RoleIngest, auth.RoleRead)
	rec := do(t, api, "GET", "/api/v1/widgets/nope", tok, "")
	assert.Equal(t, 403, rec.Code)
	assert.Contains(t, rec.Body.String(), "platform token")
	rec = do(t, api, "GET", "/api/v1/me", tok, "")
	assert.Equal(t, 200, rec.Code)
}
