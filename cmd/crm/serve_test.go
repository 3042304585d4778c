package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/adapters/auth"
	"github.com/clubcrm/crm/adapters/outbox"
	"github.com/clubcrm/crm/adapters/postgres/pgtest"
	"github.com/clubcrm/crm/adapters/redistest"
	"github.com/clubcrm/crm/readmodels/segments"
)

const testSecret = "serve-test-secret-0123456789"

// streamPrefix answers a prefix that makes a test's Redis streams its own.
func streamPrefix() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return "test." + hex.EncodeToString(b) + "."
}

type client struct {
	t    *testing.T
	base string
	tok  string
}

func (c client) do(method, path string, body any, hdr ...string) (*http.Response, map[string]any) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(c.t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	require.NoError(c.t, err)
	req.Header.Set("Authorization", "Bearer "+c.tok)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err)
	defer res.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(res.Body)
	_ = json.Unmarshal(b, &out)
	return res, out
}

// waitGet reads with X-CRM-Wait-For. The service waits up to 2 s and then
// answers 503 with Retry-After, as it should on a loaded machine: the client
// retries, as a real one would.
func (c client) waitGet(path, pos string) (*http.Response, map[string]any) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, body := c.do("GET", path, nil, "X-CRM-Wait-For", pos)
		if res.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
			return res, body
		}
		assert.Equal(c.t, "1", res.Header.Get("Retry-After"))
		time.Sleep(200 * time.Millisecond)
	}
}

func tokenFor(t *testing.T, tenant string, roles ...string) string {
	tok, err := auth.Mint([]byte(testSecret), auth.Principal{Subject: "staff-1", Tenant: tenant, Roles: roles}, time.Hour, time.Now())
	require.NoError(t, err)
	return tok
}

// TestServeEndToEnd starts the service as `crm serve` would and drives it
// over HTTP: upstream events in, profiles out, read-your-writes, merge.
func TestServeEndToEnd(t *testing.T) {
	t.Parallel()
	prefix := streamPrefix()
	redistest.New(t, prefix+outbox.Topic, prefix+segments.MessagingTopic) // deleted when the test ends
	cfg := &Config{
		DatabaseURL: pgtest.NewDatabase(t), RedisURL: redistest.URL(), HTTPAddr: "127.0.0.1:0",
		EventStore: "postgres", JWTSecret: testSecret, Roles: []string{roleAPI, roleProjector}, topicPrefix: prefix,
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), ready) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not start")
	}
	base := "http://" + addr
	staff := client{t, base, tokenFor(t, "club-a", auth.RoleAdmin)}
	ingest := client{t, base, tokenFor(t, auth.PlatformTenant, auth.RoleIngest)}

	res, _ := http.Get(base + "/healthz")
	assert.Equal(t, 200, res.StatusCode)
	res, _ = http.Get(base + "/readyz")
	assert.Equal(t, 200, res.StatusCode)

	res, body := ingest.do("POST", "/api/v1/events", []map[string]any{
		{"id": "scl-1", "type": "member.created", "tenantId": "club-a", "occurredAt": "2026-03-14T07:30:00Z",
			"data": map[string]any{"memberId": 42, "email": "Jane@Mail.com", "firstName": "Jane", "lastName": "Doe", "membershipTier": "Gold"}},
		{"id": "tt-1", "type": "player.created", "tenantId": "club-a", "data": map[string]any{"playerId": "p-7", "email": "jane@mail.com", "handicap": 12.4}},
	})
	require.Equal(t, 200, res.StatusCode, body)
	results := body["results"].([]any)
	first := results[0].(map[string]any)
	require.Equal(t, "recorded", first["status"], first)
	id := first["customerId"].(string)
	assert.Equal(t, id, results[1].(map[string]any)["customerId"])

	// Poll: upstream events carry no position header over this path.
	require.Eventually(t, func() bool {
		res, c := staff.do("GET", "/api/v1/customers/"+id, nil)
		return res.StatusCode == 200 && c["teetimePlayerId"] == "p-7"
	}, 10*time.Second, 50*time.Millisecond)
	_, c := staff.do("GET", "/api/v1/customers/"+id, nil)
	assert.Equal(t, "jane@mail.com", c["email"])
	assert.Equal(t, 12.4, c["handicap"])
	assert.Equal(t, "MEMBER", c["lifecycleStage"])

	// A staff registration that is someone new, then read-your-writes.
	res, reg := staff.do("POST", "/api/v1/customers", map[string]any{"email": "sam@golf.com", "firstName": "Sam"}, "Idempotency-Key", "reg-1")
	require.Equal(t, 201, res.StatusCode, reg)
	pos := res.Header.Get("X-CRM-Position")
	require.NotEmpty(t, pos)
	samID := reg["id"].(string)
	res, got := staff.waitGet("/api/v1/customers/"+samID, pos)
	require.Equal(t, 200, res.StatusCode, got)
	assert.Equal(t, "Sam", got["firstName"])
	// The same Idempotency-Key answers the first response again.
	res, again := staff.do("POST", "/api/v1/customers", map[string]any{"email": "sam@golf.com", "firstName": "Sam"}, "Idempotency-Key", "reg-1")
	assert.Equal(t, 201, res.StatusCode)
	assert.Equal(t, "true", res.Header.Get("Idempotent-Replayed"))
	assert.Equal(t, samID, again["id"])
	// Resolving an existing person answers 200 with how it matched.
	res, known := staff.do("POST", "/api/v1/customers", map[string]any{"email": " JANE@mail.com"})
	assert.Equal(t, 200, res.StatusCode)
	assert.Equal(t, id, known["id"])
	assert.Equal(t, "email", known["matchedBy"])

	// Upstream-owned fields cannot be edited.
	res, prob := staff.do("PATCH", "/api/v1/customers/"+id, map[string]any{"membershipTier": "Bronze", "displayName": "JD"})
	assert.Equal(t, 422, res.StatusCode, prob)

	// Merge Sam into Jane: Sam's id now answers Jane, naming the id asked for.
	res, merged := staff.do("POST", "/api/v1/customers/"+id+"/merge", map[string]any{"sourceId": samID})
	require.Equal(t, 200, res.StatusCode, merged)
	res, got = staff.waitGet("/api/v1/customers/"+samID, res.Header.Get("X-CRM-Position"))
	require.Equal(t, 200, res.StatusCode, got)
	assert.Equal(t, id, got["id"])
	assert.Equal(t, samID, got["requestedId"])
	res, _ = staff.do("POST", "/api/v1/customers/"+id+"/merge", map[string]any{"sourceId": id})
	assert.Equal(t, 409, res.StatusCode)

	// Another tenant sees nothing.
	other := client{t, base, tokenFor(t, "club-b", auth.RoleAdmin)}
	res, _ = other.do("GET", "/api/v1/customers/"+id, nil)
	assert.Equal(t, 404, res.StatusCode)
	res, _ = other.do("GET", "/api/v1/customers/"+id+"/history", nil)
	assert.Equal(t, 404, res.StatusCode)

	// Auditors read the whole stream.
	res, hist := staff.do("GET", "/api/v1/customers/"+id+"/history", nil)
	require.Equal(t, 200, res.StatusCode, hist)
	assert.GreaterOrEqual(t, len(hist["items"].([]any)), 4)

	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err, "graceful shutdown")
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop")
	}
}
