package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/adapters/auth"
	"github.com/clubcrm/crm/adapters/outbox"
	"github.com/clubcrm/crm/adapters/postgres/pgtest"
	"github.com/clubcrm/crm/adapters/redistest"
	"github.com/clubcrm/crm/readmodels/segments"
)

// TestTimelineThroughRedis runs `crm serve` with every role, publishes the
// upstream services' events on Redis streams as they do, and reads the
// timeline, the metrics, notes and tags back over HTTP.
func TestTimelineThroughRedis(t *testing.T) {
	t.Parallel()
	prefix := streamPrefix()
	scl, teetime, messaging, dead := prefix+"scl.events", prefix+"teetime.events", prefix+"messaging.events", prefix+"crm.deadletter"
	rdb := redistest.New(t, scl, teetime, messaging, dead, prefix+outbox.Topic, prefix+segments.MessagingTopic)
	cfg := &Config{
		DatabaseURL: pgtest.NewDatabase(t), RedisURL: redistest.URL(), HTTPAddr: "127.0.0.1:0",
		EventStore: "postgres", JWTSecret: testSecret, Roles: allRoles, ConsumerName: "timeline-e2e",
		streams: []string{scl, teetime, messaging}, deadLetterStream: dead, topicPrefix: prefix,
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

	now := time.Now().UTC().Truncate(time.Second)
	at := func(d time.Duration) string { return now.Add(-d).Format(time.RFC3339) }
	publish := func(stream, id, typ, occurred, data string) {
		payload := fmt.Sprintf(`{"id": %q, "type": %q, "tenantId": "club-a", "occurredAt": %q, "data": %s}`, id, typ, occurred, data)
		require.NoError(t, rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: stream, Values: []any{"payload", payload}}).Err())
	}
	day := 24 * time.Hour
	publish(scl, "scl-1", "member.created", at(40*day), `{"memberId": 42, "email": "Jane@Mail.com", "firstName": "Jane", "lastName": "Doe", "membershipTier": "Gold", "membershipStatus": "ACTIVE"}`)
	publish(teetime, "tt-1", "player.created", at(39*day), `{"playerId": "p-7", "email": "jane@mail.com", "handicap": 12.4, "homeClubId": "club-1"}`)
	publish(teetime, "tt-2", "teetime.booked", at(3*day), `{"playerId": "p-7", "bookingId": "b-1", "clubId": "club-1", "teeTimeAt": "2026-03-21T07:30:00Z"}`)
	publish(teetime, "tt-3", "handicap.updated", at(2*day), `{"playerId": "p-7", "handicap": 11.8}`)
	publish(scl, "scl-2", "payment.received", at(day), `{"memberId": 42, "paymentId": "pay-1", "amountCents": 125000, "currency": "ZAR"}`)
	publish(scl, "scl-3", "payment.failed", at(12*time.Hour), `{"memberId": 42, "paymentId": "pay-2", "amountCents": 125000, "currency": "ZAR", "reason": "card expired"}`)
	publish(messaging, "msg-1", "email.opened", at(6*time.Hour), `{"contactId": "c-3", "email": "jane@mail.com", "campaignId": "camp-1"}`)
	publish(messaging, "msg-2", "contactPreference.updated", at(5*time.Hour), `{"contactId": "c-3", "email": "jane@mail.com", "emailOptIn": true, "smsOptIn": false}`)

	// Find Jane once SCL's events are in, then wait for every event.
	var id string
	require.Eventually(t, func() bool {
		res, c := staff.do("GET", "/api/v1/customers/resolve?sclMemberId=42", nil)
		if res.StatusCode != 200 {
			return false
		}
		id = c["customer"].(map[string]any)["id"].(string)
		return true
	}, 20*time.Second, 50*time.Millisecond)
	var items []any
	require.Eventually(t, func() bool {
		res, l := staff.do("GET", "/api/v1/customers/"+id+"/activities", nil)
		if res.StatusCode != 200 {
			return false
		}
		items = l["items"].([]any)
		return len(items) == 8
	}, 20*time.Second, 50*time.Millisecond, "eight activities")
	var titles []string
	for _, it := range items {
		titles = append(titles, it.(map[string]any)["title"].(string))
	}
	assert.Equal(t, []string{
		"Opted in to email",
		"Opened an email",
		"Payment of R 1 250.00 failed: card expired",
		"Payment of R 1 250.00 received",
		"Handicap 12.4 → 11.8",
		"Booked a tee time for 21 Mar, 07:30",
		"Registered with TeeTime, handicap 12.4",
		"Joined as a Gold member",
	}, titles)

	// The metrics and the upstream-owned fields of the profile.
	var c map[string]any
	// The customers and metrics projectors run apart from the timeline's:
	// wait for both to have seen every event. The streams are read apart,
	// so the latest event may be appended before an older one: the count
	// says when all are in.
	require.Eventually(t, func() bool {
		_, c = staff.do("GET", "/api/v1/customers/"+id, nil)
		return c["lifetimeValue"] != nil && c["lastActivityAt"] == at(5*time.Hour) && c["emailOptIn"] == true &&
			c["activityCount30d"] == float64(6) && c["handicap"] == 11.8
	}, 20*time.Second, 50*time.Millisecond)
	assert.EqualValues(t, 125000, c["lifetimeValue"])
	assert.Equal(t, "ZAR", c["lifetimeValueCurrency"])
	assert.EqualValues(t, 6, c["activityCount30d"], "all but the two older than 30 days")
	assert.EqualValues(t, 1, c["bookingCount30d"])
	assert.Equal(t, at(5*time.Hour), c["lastActivityAt"])
	assert.Equal(t, 11.8, c["handicap"])
	assert.Equal(t, "club-1", c["homeClubId"])
	assert.Equal(t, "Gold", c["membershipTier"])
	assert.Equal(t, "ACTIVE", c["membershipStatus"])
	assert.Equal(t, true, c["emailOptIn"])
	assert.Equal(t, false, c["smsOptIn"])

	// Staff: a note, tags, a phone call, read back at once.
	res, note := staff.do("POST", "/api/v1/customers/"+id+"/notes", map[string]any{"body": "Wants a lesson with the pro", "pinned": true})
	require.Equal(t, 201, res.StatusCode, note)
	res, tags := staff.do("POST", "/api/v1/customers/"+id+"/tags", map[string]any{"add": []string{"VIP"}})
	require.Equal(t, 200, res.StatusCode, tags)
	res, call := staff.do("POST", "/api/v1/customers/"+id+"/activities", map[string]any{"type": "CALL", "title": "Called about the failed payment"}, "Idempotency-Key", "call-1")
	require.Equal(t, 201, res.StatusCode, call)
	// Read your writes; a busy server may answer 503 with Retry-After,
	// and a client retries.
	pos := res.Header.Get("X-CRM-Position")
	var page map[string]any
	require.Eventually(t, func() bool {
		res, page = staff.do("GET", "/api/v1/customers/"+id+"/activities?category=SUPPORT&category=SYSTEM&category=COMMUNICATION&limit=3", nil, "X-CRM-Wait-For", pos)
		require.Contains(t, []int{200, 503}, res.StatusCode, page)
		return res.StatusCode == 200
	}, 20*time.Second, 100*time.Millisecond)
	titles = nil
	for _, it := range page["items"].([]any) {
		titles = append(titles, it.(map[string]any)["title"].(string))
	}
	assert.ElementsMatch(t, []string{"Called about the failed payment", "Tagged vip", "Note by staff-1"}, titles)
	res, notes := staff.do("GET", "/api/v1/customers/"+id+"/notes", nil)
	require.Equal(t, 200, res.StatusCode)
	assert.Len(t, notes["items"], 1)
	res, tagList := staff.do("GET", "/api/v1/tags", nil)
	require.Equal(t, 200, res.StatusCode)
	assert.Equal(t, []any{map[string]any{"tag": "vip", "count": float64(1)}}, tagList["items"])
	res, hits := staff.do("GET", "/api/v1/customers/"+id+"/activities?q="+url.QueryEscape("card expired"), nil)
	require.Equal(t, 200, res.StatusCode)
	assert.Len(t, hits["items"], 1)
	mb, _ := json.Marshal(hits["items"].([]any)[0].(map[string]any)["metadata"])
	assert.JSONEq(t, `{"memberId": 42, "paymentId": "pay-2", "amountCents": 125000, "currency": "ZAR", "reason": "card expired", "upstreamEventId": "scl-3"}`, string(mb))

	// The produced events left through the outbox, on the test's own stream.
	require.Eventually(t, func() bool {
		n, err := rdb.XLen(context.Background(), prefix+outbox.Topic).Result()
		return err == nil && n > 0
	}, 15*time.Second, 50*time.Millisecond, "crm.events under the test's prefix")

	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err, "graceful shutdown")
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop")
	}
}
