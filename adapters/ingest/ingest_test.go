package ingest_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/adapters/ingest"
	"github.com/clubcrm/crm/adapters/postgres"
	"github.com/clubcrm/crm/adapters/postgres/pgtest"
	"github.com/clubcrm/crm/commands"
	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/domain/identity"
	"github.com/clubcrm/crm/eventstore"
	pgstore "github.com/clubcrm/crm/eventstore/postgres"
)

const tenant = "club-a"

// newRedis answers a client on the Redis of TEST_REDIS_URL (default: the
// local server).
func newRedis(t testing.TB) *redis.Client {
	t.Helper()
	url := os.Getenv("TEST_REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	opts, err := redis.ParseURL(url)
	require.NoError(t, err)
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	require.NoError(t, rdb.Ping(context.Background()).Err(), "Redis at %s", url)
	return rdb
}

// names are a test's streams: unique, so tests run in parallel and leave
// nothing behind.
type names struct {
	scl, teetime, messaging, dead string
}

func newNames(t testing.TB, rdb *redis.Client) names {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	p := "test." + hex.EncodeToString(b) + "."
	n := names{scl: p + "scl.events", teetime: p + "teetime.events", messaging: p + "messaging.events", dead: p + "crm.deadletter"}
	t.Cleanup(func() { rdb.Del(context.Background(), n.scl, n.teetime, n.messaging, n.dead) })
	return n
}

func (n names) streams() []string { return []string{n.scl, n.teetime, n.messaging} }

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// config answers a consumer configuration with test-sized timings.
func config(t *testing.T, rdb *redis.Client, n names, h ingest.Handler, consumer string) ingest.Config {
	return ingest.Config{
		Redis: rdb, Handler: h, Logger: testLogger(t),
		Streams: n.streams(), DeadLetterStream: n.dead, ConsumerName: consumer,
		NackResendSleep: 20 * time.Millisecond,
		RetryInterval:   5 * time.Millisecond, MaxRetryWait: 20 * time.Millisecond, MaxRetries: 2,
		CloseTimeout: 5 * time.Second,
	}
}

// start runs a consumer until the answered stop is called (or the test
// ends); stop fails the test if Run does not return cleanly.
func start(t *testing.T, cfg ingest.Config) (stop func()) {
	t.Helper()
	c, err := ingest.New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	select {
	case <-c.Running():
	case err := <-done:
		cancel()
		t.Fatalf("consumer stopped before running: %v", err)
	case <-time.After(5 * time.Second):
		cancel()
		t.Fatal("consumer not running after 5s")
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				assert.NoError(t, err)
			case <-time.After(10 * time.Second):
				t.Error("consumer did not stop within 10s")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// recorder remembers every result a handler answers, by envelope id.
type recorder struct {
	next ingest.Handler
	mu   sync.Mutex
	res  map[string][]commands.Result
	seq  []string // envelope ids in the order handled
}

func record(h ingest.Handler) *recorder {
	return &recorder{next: h, res: map[string][]commands.Result{}}
}

func (r *recorder) Handle(ctx context.Context, batch []commands.Envelope) ([]commands.Result, error) {
	res, err := r.next.Handle(ctx, batch)
	if err == nil {
		r.mu.Lock()
		for _, x := range res {
			r.res[x.ID] = append(r.res[x.ID], x)
			r.seq = append(r.seq, x.ID)
		}
		r.mu.Unlock()
	}
	return res, err
}

// wait answers the results of envelope id once there are n of them.
func (r *recorder) wait(t *testing.T, id string, n int) []commands.Result {
	t.Helper()
	var out []commands.Result
	require.Eventually(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		out = append([]commands.Result(nil), r.res[id]...)
		return len(out) >= n
	}, 10*time.Second, 10*time.Millisecond, "%d result(s) for %s", n, id)
	return out
}

type fixedSettings struct{}

func (fixedSettings) IdentitySettings(context.Context, string) (identity.Settings, error) {
	return identity.DefaultSettings(), nil
}

// realIngest answers the ingest command on a fresh database.
func realIngest(t testing.TB) (*commands.Ingest, eventstore.Store) {
	t.Helper()
	pool, _ := pgtest.New(t)
	store := pgstore.New(pool)
	t.Cleanup(func() { store.Close() })
	index := &postgres.IdentityIndex{Pool: pool}
	return &commands.Ingest{Store: store, Index: index, Inbox: index, Settings: fixedSettings{}, Log: testLogger(t)}, store
}

func memberCreated(id string, memberID int, email, first, last string) string {
	return fmt.Sprintf(`{"id":%q,"type":"member.created","source":"scl","tenantId":%q,"occurredAt":"2026-11-01T10:00:00Z",`+
		`"data":{"memberId":%d,"email":%q,"firstName":%q,"lastName":%q,"membershipTier":"full","membershipStatus":"active"}}`,
		id, tenant, memberID, email, first, last)
}

func playerCreated(id, playerID, email, first, last string) string {
	return fmt.Sprintf(`{"id":%q,"type":"player.created","tenantId":%q,"data":{"playerId":%q,"email":%q,"firstName":%q,"lastName":%q,"handicap":12.4}}`,
		id, tenant, playerID, email, first, last)
}

// xadd writes an entry as a service that does not use watermill would.
func xadd(t *testing.T, rdb *redis.Client, stream string, values ...any) string {
	t.Helper()
	id, err := rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: stream, Values: values}).Result()
	require.NoError(t, err)
	return id
}

func pending(t *testing.T, rdb *redis.Client, stream string) int64 {
	t.Helper()
	p, err := rdb.XPending(context.Background(), stream, ingest.DefaultGroup).Result()
	require.NoError(t, err)
	return p.Count
}

func deadLetters(t *testing.T, rdb *redis.Client, stream string, n int) []redis.XMessage {
	t.Helper()
	var out []redis.XMessage
	require.Eventually(t, func() bool {
		var err error
		out, err = rdb.XRange(context.Background(), stream, "-", "+").Result()
		return err == nil && len(out) >= n
	}, 10*time.Second, 10*time.Millisecond, "%d dead letter(s)", n)
	return out
}

func TestEndToEnd(t *testing.T) {
	t.Parallel()
	rdb := newRedis(t)
	n := newNames(t, rdb)
	h, store := realIngest(t)
	rec := record(h)

	// Published before the consumer's group exists: a new group starts at
	// the beginning of the stream.
	xadd(t, rdb, n.scl, "payload", memberCreated("scl-1", 101, "ann.lee@fairway.co.za", "Ann", "Lee"))
	start(t, config(t, rdb, n, rec, "host-a"))

	// As watermill publishes (UUID field, msgpack metadata).
	pub, err := redisstream.NewPublisher(redisstream.PublisherConfig{Client: rdb}, nil)
	require.NoError(t, err)
	msg := message.NewMessage("0b8a6f4e-5f7c-4c53-9a55-8d7f2c1e0a01", []byte(playerCreated("tt-1", "P-77", "bo.sithole@fairway.co.za", "Bo", "Sithole")))
	middleware.SetCorrelationID("corr-1", msg)
	require.NoError(t, pub.Publish(n.teetime, msg))

	ann := rec.wait(t, "scl-1", 1)[0]
	require.Equal(t, commands.Recorded, ann.Status, ann.Error)
	require.NotNil(t, ann.CustomerID)
	p, err := commands.LoadProfile(context.Background(), store, tenant, *ann.CustomerID)
	require.NoError(t, err)
	assert.True(t, p.Exists())
	assert.Equal(t, "ann.lee@fairway.co.za", p.Email)
	assert.Equal(t, "Ann", p.FirstName)
	require.NotNil(t, p.SCLMemberID)
	assert.EqualValues(t, 101, *p.SCLMemberID)

	bo := rec.wait(t, "tt-1", 1)[0]
	require.Equal(t, commands.Recorded, bo.Status, bo.Error)
	p, err = commands.LoadProfile(context.Background(), store, tenant, *bo.CustomerID)
	require.NoError(t, err)
	assert.Equal(t, "P-77", p.TeeTimePlayerID)
	evs, err := store.ReadStream(context.Background(), customer.Stream(*bo.CustomerID), 1, 100)
	require.NoError(t, err)
	require.NotEmpty(t, evs)
	assert.Equal(t, "tt-1", evs[0].Metadata.CausationID)

	require.Eventually(t, func() bool { return pending(t, rdb, n.scl) == 0 && pending(t, rdb, n.teetime) == 0 },
		5*time.Second, 10*time.Millisecond, "every message acknowledged")
	assert.Zero(t, must(rdb.XLen(context.Background(), n.dead).Result()))
}

// TestDeadLetters sends entries that cannot be events among ones that can:
// each is dead-lettered with its reason, origin and payload, acknowledged,
// and the events behind it are still ingested.
func TestDeadLetters(t *testing.T) {
	t.Parallel()
	rdb := newRedis(t)
	n := newNames(t, rdb)
	h, _ := realIngest(t)
	rec := record(h)
	start(t, config(t, rdb, n, rec, "host-a"))

	notJSON := xadd(t, rdb, n.scl, "payload", "{not json")
	unknown := `{"id":"scl-x","type":"member.deleted","tenantId":"club-a","data":{"memberId":1}}`
	unknownID := xadd(t, rdb, n.scl, "payload", unknown)
	noPayload := xadd(t, rdb, n.scl, "body", memberCreated("scl-y", 7, "y@fairway.co.za", "Y", "Y"))
	// Published by watermill with metadata the dead letter keeps.
	pub, err := redisstream.NewPublisher(redisstream.PublisherConfig{Client: rdb}, nil)
	require.NoError(t, err)
	bad := message.NewMessage("5d1c3f7a-2b1e-4d0a-8c6f-1a2b3c4d5e6f", []byte(`{"id":"scl-z","type":"member.created","tenantId":"club-a","data":{"memberId":"many"}}`))
	bad.Metadata.Set("correlation_id", "corr-9")
	require.NoError(t, pub.Publish(n.scl, bad))
	last, err := rdb.XRevRangeN(context.Background(), n.scl, "+", "-", 1).Result()
	require.NoError(t, err)
	badID := last[0].ID
	xadd(t, rdb, n.scl, "payload", memberCreated("scl-ok", 102, "cara.ndlovu@fairway.co.za", "Cara", "Ndlovu"))

	ok := rec.wait(t, "scl-ok", 1)[0]
	assert.Equal(t, commands.Recorded, ok.Status, ok.Error)

	dl := deadLetters(t, rdb, n.dead, 4)
	require.Len(t, dl, 4)
	// Messages are handled concurrently: the dead letters come in any
	// order. Each names the entry it was.
	byEntry := map[any]redis.XMessage{}
	for _, d := range dl {
		byEntry[d.Values[ingest.FieldMessageID]] = d
	}
	want := []struct {
		messageID, payload, reason string
	}{
		{notJSON, "{not json", "envelope is not JSON"},
		{unknownID, unknown, `type: "member.deleted" is not an event of the contract`},
		{noPayload, "", "no payload field (fields: body)"},
		{badID, string(bad.Payload), "memberId: must be a positive integer"},
	}
	for i, w := range want {
		require.Contains(t, byEntry, w.messageID, "entry %d", i)
		dl[i] = byEntry[w.messageID]
		v := dl[i].Values
		assert.Equal(t, n.scl, v[ingest.FieldStream], "entry %d", i)
		assert.Equal(t, w.payload, v["payload"], "entry %d", i)
		assert.Contains(t, v[ingest.FieldReason], w.reason, "entry %d", i)
		assert.Equal(t, "host-a", v[ingest.FieldConsumer], "entry %d", i)
		assert.NotEmpty(t, v[redisstream.UUIDHeaderKey], "entry %d", i)
		at, err := time.Parse(time.RFC3339Nano, v[ingest.FieldFailedAt].(string))
		assert.NoError(t, err, "entry %d", i)
		assert.WithinDuration(t, time.Now(), at, time.Minute)
	}
	assert.Equal(t, bad.UUID, dl[3].Values[redisstream.UUIDHeaderKey])
	assert.JSONEq(t, `{"correlation_id":"corr-9"}`, dl[3].Values[ingest.FieldOriginalMetadata].(string))
	assert.NotContains(t, dl[0].Values, ingest.FieldOriginalMetadata)

	require.Eventually(t, func() bool { return pending(t, rdb, n.scl) == 0 }, 5*time.Second, 10*time.Millisecond, "every message acknowledged")
}

// scripted answers per envelope id: refused as invalid, failing for a
// number of attempts, panicking, or recorded. Like commands.Ingest, it
// fails a whole batch when one of its envelopes fails.
type scripted struct {
	mu       sync.Mutex
	failures map[string]int // attempts left that fail
	attempts map[string]int // calls that got past the panic
	alone    map[string]int // calls with this envelope alone
	sizes    []int          // of every call
}

func newScripted(failures map[string]int) *scripted {
	return &scripted{failures: failures, attempts: map[string]int{}, alone: map[string]int{}}
}

var errDatabaseDown = errors.New("connect: connection refused")

func (s *scripted) Handle(_ context.Context, batch []commands.Envelope) ([]commands.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sizes = append(s.sizes, len(batch))
	if len(batch) == 1 {
		s.alone[batch[0].ID]++
	}
	for _, e := range batch {
		if e.ID == "boom" {
			panic("nil map somewhere")
		}
	}
	failed := false
	for _, e := range batch {
		s.attempts[e.ID]++
		if s.failures[e.ID] > 0 {
			s.failures[e.ID]--
			failed = true
		}
	}
	if failed {
		return nil, errDatabaseDown
	}
	res := make([]commands.Result, len(batch))
	for i, e := range batch {
		res[i] = commands.Result{ID: e.ID, Status: commands.Recorded}
		if strings.HasPrefix(e.ID, "refuse") {
			res[i] = commands.Result{ID: e.ID, Status: commands.Invalid, Error: "invalid upstream event: refused by the handler"}
		}
	}
	return res, nil
}

func (s *scripted) count(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts[id]
}

func (s *scripted) countAlone(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.alone[id]
}

// TestRetryAndPoisonPolicy: an invalid result and a panic are dead-lettered
// at once; a transient error is retried, then nacked and redelivered until
// it passes, never dead-lettered, and the stream waits for it in order.
func TestRetryAndPoisonPolicy(t *testing.T) {
	t.Parallel()
	rdb := newRedis(t)
	n := newNames(t, rdb)
	s := newScripted(map[string]int{"flaky": 8})
	rec := record(s)
	start(t, config(t, rdb, n, rec, "host-a"))

	env := func(id string) string {
		return fmt.Sprintf(`{"id":%q,"type":"member.updated","tenantId":"club-a","data":{"memberId":5}}`, id)
	}
	xadd(t, rdb, n.scl, "payload", env("refuse"))
	xadd(t, rdb, n.scl, "payload", env("boom"))
	xadd(t, rdb, n.scl, "payload", env("flaky"))
	xadd(t, rdb, n.scl, "payload", env("after"))

	assert.Equal(t, commands.Recorded, rec.wait(t, "flaky", 1)[0].Status)
	rec.wait(t, "after", 1)
	// 3 tries per delivery (MaxRetries 2), 8 failures: the third delivery
	// passes. Each try is one call, whatever else the batch held.
	assert.Equal(t, 9, s.count("flaky"))
	// The refused event may have shared a failing batch and been retried
	// with it, but once refused it is final.
	assert.Len(t, rec.wait(t, "refuse", 1), 1, "an invalid result is not retried")
	assert.Equal(t, 1, s.countAlone("boom"), "a panic is isolated once, then not retried")
	rec.mu.Lock()
	assert.Equal(t, []string{"refuse", "flaky", "after"}, rec.seq, "the stream waits for the flaky event")
	rec.mu.Unlock()

	dl := deadLetters(t, rdb, n.dead, 2)
	require.Len(t, dl, 2)
	// Dead-lettered concurrently: in either order.
	reasons := []string{dl[0].Values[ingest.FieldReason].(string), dl[1].Values[ingest.FieldReason].(string)}
	if strings.Contains(reasons[0], "nil map somewhere") {
		reasons[0], reasons[1] = reasons[1], reasons[0]
	}
	assert.Equal(t, "invalid upstream event: refused by the handler", reasons[0])
	assert.Contains(t, reasons[1], "nil map somewhere")
	require.Eventually(t, func() bool { return pending(t, rdb, n.scl) == 0 }, 5*time.Second, 10*time.Millisecond)
}

// TestDuplicateDelivery: the same envelope twice makes one set of domain
// events; the second is a duplicate.
func TestDuplicateDelivery(t *testing.T) {
	t.Parallel()
	rdb := newRedis(t)
	n := newNames(t, rdb)
	h, store := realIngest(t)
	rec := record(h)
	start(t, config(t, rdb, n, rec, "host-a"))

	e := memberCreated("scl-dup", 303, "dee.mokoena@fairway.co.za", "Dee", "Mokoena")
	xadd(t, rdb, n.scl, "payload", e)
	xadd(t, rdb, n.scl, "payload", e)

	res := rec.wait(t, "scl-dup", 2)
	require.Equal(t, commands.Recorded, res[0].Status, res[0].Error)
	assert.Equal(t, commands.Duplicate, res[1].Status)
	assert.Equal(t, res[0].Stream, res[1].Stream)

	evs, err := store.ReadStream(context.Background(), customer.Stream(*res[0].CustomerID), 1, 100)
	require.NoError(t, err)
	require.NotEmpty(t, evs)
	types := map[string]int{}
	for _, ev := range evs {
		assert.Equal(t, "scl-dup", ev.Metadata.CausationID)
		types[ev.Type]++
	}
	for typ, k := range types {
		assert.Equal(t, 1, k, "%s recorded %d times", typ, k)
	}
}

// blocking holds every message until its context ends: a consumer that
// dies mid-way.
type blocking struct{ got chan string }

func (b blocking) Handle(ctx context.Context, batch []commands.Envelope) ([]commands.Result, error) {
	b.got <- batch[0].ID
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(20 * time.Second):
		return nil, errors.New("the test forgot to stop the consumer")
	}
}

// TestDeadConsumersMessagesAreClaimed: a consumer stops holding a message
// it never acknowledged; another consumer of the group claims it once it
// has been idle for MaxIdleTime and processes it.
func TestDeadConsumersMessagesAreClaimed(t *testing.T) {
	t.Parallel()
	rdb := newRedis(t)
	n := newNames(t, rdb)

	b := blocking{got: make(chan string, 1)}
	stopA := start(t, config(t, rdb, n, b, "host-a"))
	id := xadd(t, rdb, n.messaging, "payload",
		fmt.Sprintf(`{"id":"msg-1","type":"contactPreference.updated","tenantId":%q,"data":{"contactId":"C-9","email":"eve.khumalo@fairway.co.za","emailOptIn":false}}`, tenant))
	select {
	case got := <-b.got:
		require.Equal(t, "msg-1", got)
	case <-time.After(5 * time.Second):
		t.Fatal("consumer A never received the message")
	}
	stopA()

	p, err := rdb.XPendingExt(context.Background(), &redis.XPendingExtArgs{Stream: n.messaging, Group: ingest.DefaultGroup, Start: "-", End: "+", Count: 10}).Result()
	require.NoError(t, err)
	require.Len(t, p, 1, "the message stays pending with the dead consumer")
	assert.Equal(t, id, p[0].ID)
	assert.Equal(t, "host-a", p[0].Consumer)

	h, store := realIngest(t)
	rec := record(h)
	cfg := config(t, rdb, n, rec, "host-b")
	cfg.MaxIdleTime, cfg.ClaimInterval = 300*time.Millisecond, 100*time.Millisecond
	start(t, cfg)

	r := rec.wait(t, "msg-1", 1)[0]
	require.Equal(t, commands.Recorded, r.Status, r.Error)
	prof, err := commands.LoadProfile(context.Background(), store, tenant, *r.CustomerID)
	require.NoError(t, err)
	assert.Equal(t, "C-9", prof.MessagingContactID)
	require.Eventually(t, func() bool { return pending(t, rdb, n.messaging) == 0 }, 5*time.Second, 10*time.Millisecond)
}

func TestConfigValidation(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	_, err := ingest.New(ingest.Config{Redis: rdb, Handler: newScripted(nil)})
	assert.ErrorContains(t, err, "ConsumerName")
	_, err = ingest.New(ingest.Config{Redis: rdb, Handler: newScripted(nil), ConsumerName: "x", Streams: []string{"a", "a", ingest.DefaultDeadLetterStream}})
	assert.ErrorContains(t, err, "listed twice")
	assert.ErrorContains(t, err, "dead-letter stream")
	_, err = ingest.New(ingest.Config{ConsumerName: "x"})
	assert.ErrorContains(t, err, "Redis: missing")
	name, err := ingest.ConsumerName("ingest")
	require.NoError(t, err)
	host, _ := os.Hostname()
	assert.Equal(t, host+"-ingest", name)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
