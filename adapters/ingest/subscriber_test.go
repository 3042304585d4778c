package ingest_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/adapters/ingest"
)

// commandCounter counts the commands a client sends, by name, and the
// round trips they take (a pipeline is one).
type commandCounter struct {
	mu     sync.Mutex
	counts map[string]int
	trips  map[string]int
	// slowFirst names a command whose first round trip is held up for
	// 200 ms, so that what follows it piles up behind.
	slowFirst string
}

func (c *commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if c.add([]redis.Cmder{cmd}) {
			time.Sleep(200 * time.Millisecond)
		}
		return next(ctx, cmd)
	}
}

func (c *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if c.add(cmds) {
			time.Sleep(200 * time.Millisecond)
		}
		return next(ctx, cmds)
	}
}

// add counts cmds, one round trip, and reports whether to hold it up.
func (c *commandCounter) add(cmds []redis.Cmder) (slow bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[string]bool{}
	for _, cmd := range cmds {
		name := strings.ToLower(cmd.Name())
		c.counts[name]++
		if !seen[name] {
			seen[name] = true
			c.trips[name]++
			slow = slow || name == c.slowFirst && c.trips[name] == 1
		}
	}
	return slow
}

func (c *commandCounter) get(name string) (commands, trips int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[name], c.trips[name]
}

// counted answers a client of its own on the test Redis whose commands are
// counted.
func counted(t *testing.T) (*redis.Client, *commandCounter) {
	rdb := newRedis(t)
	c := &commandCounter{counts: map[string]int{}, trips: map[string]int{}}
	rdb.AddHook(c)
	return rdb, c
}

// subscribe starts a subscriber on stream with test-sized timings, adjusted
// by tweak, and answers its messages; it is closed when the test ends.
func subscribe(t *testing.T, rdb *redis.Client, stream, consumer string, tweak func(*ingest.SubscriberConfig)) (*ingest.Subscriber, <-chan *message.Message) {
	t.Helper()
	cfg := ingest.SubscriberConfig{
		Client: rdb, Group: ingest.DefaultGroup, Consumer: consumer,
		ReadCount: 20, MaxInFlight: 100, BlockTime: 50 * time.Millisecond,
		NackResendSleep: 50 * time.Millisecond,
		ClaimInterval:   50 * time.Millisecond, MaxIdleTime: time.Hour,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	s, err := ingest.NewSubscriber(cfg, nil)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, s.Close()) })
	ch, err := s.Subscribe(context.Background(), stream)
	require.NoError(t, err)
	return s, ch
}

// receive answers the next n messages, failing the test if they do not
// come within a few seconds.
func receive(t *testing.T, ch <-chan *message.Message, n int) []*message.Message {
	t.Helper()
	var out []*message.Message
	timeout := time.After(5 * time.Second)
	for len(out) < n {
		select {
		case m, ok := <-ch:
			require.True(t, ok, "channel closed after %d of %d messages", len(out), n)
			out = append(out, m)
		case <-timeout:
			t.Fatalf("received %d of %d messages", len(out), n)
		}
	}
	return out
}

// quiet fails the test if a message comes within d.
func quiet(t *testing.T, ch <-chan *message.Message, d time.Duration) {
	t.Helper()
	select {
	case m := <-ch:
		t.Fatalf("unexpected message %s (entry %s)", m.Payload, entryOf(m))
	case <-time.After(d):
	}
}

func entryOf(m *message.Message) string { return m.Metadata.Get("_crm_entry_id") }

func fill(t *testing.T, rdb *redis.Client, stream string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = xadd(t, rdb, stream, "payload", fmt.Sprintf(`{"n":%d}`, i))
	}
	return ids
}

// TestSubscriberBatchesReadsAndAcks: entries are read many per XREADGROUP
// and handed out in stream order without waiting for acknowledgements;
// acknowledgements go back in bulk.
func TestSubscriberBatchesReadsAndAcks(t *testing.T) {
	t.Parallel()
	rdb, count := counted(t)
	count.slowFirst = "xack" // the other 49 acknowledgements come meanwhile
	n := newNames(t, rdb)
	ids := fill(t, rdb, n.scl, 50)
	_, ch := subscribe(t, rdb, n.scl, "host-a", nil)

	msgs := receive(t, ch, 50) // none acknowledged yet
	for i, m := range msgs {
		assert.Equal(t, ids[i], entryOf(m), "message %d out of stream order", i)
		assert.Equal(t, n.scl, m.Metadata.Get("_crm_stream"))
		assert.Equal(t, fmt.Sprintf(`{"n":%d}`, i), string(m.Payload))
	}
	reads, _ := count.get("xreadgroup")
	assert.LessOrEqual(t, reads, 6, "50 entries at 20 a read: 3 reads, and the look at own pending entries")

	for _, m := range msgs {
		m.Ack()
	}
	require.Eventually(t, func() bool { return pending(t, rdb, n.scl) == 0 }, 5*time.Second, 10*time.Millisecond)
	acks, trips := count.get("xack")
	assert.LessOrEqual(t, acks, 3, "acknowledged in bulk: what came while an XACK was on its way goes in the next")
	assert.Equal(t, acks, trips)
}

// TestSubscriberBoundsMessagesInFlight: no more than MaxInFlight messages
// are out unacknowledged; acknowledging makes room for more.
func TestSubscriberBoundsMessagesInFlight(t *testing.T) {
	t.Parallel()
	rdb := newRedis(t)
	n := newNames(t, rdb)
	fill(t, rdb, n.scl, 30)
	_, ch := subscribe(t, rdb, n.scl, "host-a", func(c *ingest.SubscriberConfig) { c.MaxInFlight = 10 })

	first := receive(t, ch, 10)
	quiet(t, ch, 300*time.Millisecond)
	for _, m := range first[:5] {
		m.Ack()
	}
	receive(t, ch, 5)
	quiet(t, ch, 200*time.Millisecond)
}

// TestSubscriberRedeliversNacked: a nacked message comes again after
// NackResendSleep, the same entry; the others are not held up by it.
func TestSubscriberRedeliversNacked(t *testing.T) {
	t.Parallel()
	rdb := newRedis(t)
	n := newNames(t, rdb)
	ids := fill(t, rdb, n.scl, 3)
	_, ch := subscribe(t, rdb, n.scl, "host-a", func(c *ingest.SubscriberConfig) { c.NackResendSleep = 200 * time.Millisecond })

	msgs := receive(t, ch, 3)
	nacked := time.Now()
	msgs[0].Ack()
	msgs[1].Nack()
	msgs[2].Ack()
	again := receive(t, ch, 1)[0]
	assert.GreaterOrEqual(t, time.Since(nacked), 200*time.Millisecond, "redelivered before NackResendSleep")
	assert.Equal(t, ids[1], entryOf(again))
	assert.Equal(t, msgs[1].UUID, again.UUID)
	assert.Equal(t, msgs[1].Payload, again.Payload)
	assert.EqualValues(t, 1, pending(t, rdb, n.scl), "the nacked entry is still pending")
	again.Ack()
	require.Eventually(t, func() bool { return pending(t, rdb, n.scl) == 0 }, 5*time.Second, 10*time.Millisecond)
}

// readAs reads count new entries of stream as consumer, without
// acknowledging them: a consumer that then dies.
func readAs(t *testing.T, rdb *redis.Client, stream, consumer string, count int64) {
	t.Helper()
	err := rdb.XGroupCreateMkStream(context.Background(), stream, ingest.DefaultGroup, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		require.NoError(t, err)
	}
	xs, err := rdb.XReadGroup(context.Background(), &redis.XReadGroupArgs{
		Group: ingest.DefaultGroup, Consumer: consumer, Streams: []string{stream, ">"}, Count: count, Block: -1,
	}).Result()
	require.NoError(t, err)
	require.Len(t, xs[0].Messages, int(count))
}

// TestSubscriberClaimsDeadConsumersEntries: entries a dead consumer left
// pending are claimed once idle for MaxIdleTime, and handed out in order.
func TestSubscriberClaimsDeadConsumersEntries(t *testing.T) {
	t.Parallel()
	rdb := newRedis(t)
	n := newNames(t, rdb)
	ids := fill(t, rdb, n.scl, 5)
	readAs(t, rdb, n.scl, "dead", 5)

	start := time.Now()
	_, ch := subscribe(t, rdb, n.scl, "alive", func(c *ingest.SubscriberConfig) { c.MaxIdleTime = 300 * time.Millisecond })
	msgs := receive(t, ch, 5)
	assert.GreaterOrEqual(t, time.Since(start), 250*time.Millisecond, "claimed before it was idle for MaxIdleTime")
	for i, m := range msgs {
		assert.Equal(t, ids[i], entryOf(m))
		m.Ack()
	}
	require.Eventually(t, func() bool { return pending(t, rdb, n.scl) == 0 }, 5*time.Second, 10*time.Millisecond)
}

// TestSubscriberResumesItsOwnPendingEntries: a consumer restarted under its
// name gets back what it held at once, without waiting for MaxIdleTime.
func TestSubscriberResumesItsOwnPendingEntries(t *testing.T) {
	t.Parallel()
	rdb := newRedis(t)
	n := newNames(t, rdb)
	ids := fill(t, rdb, n.scl, 3)
	readAs(t, rdb, n.scl, "host-a", 3)
	newer := xadd(t, rdb, n.scl, "payload", `{"n":3}`)

	_, ch := subscribe(t, rdb, n.scl, "host-a", nil) // MaxIdleTime: an hour
	msgs := receive(t, ch, 4)
	assert.Equal(t, append(ids, newer), []string{entryOf(msgs[0]), entryOf(msgs[1]), entryOf(msgs[2]), entryOf(msgs[3])},
		"its own pending entries first, then new ones")
}

// TestSubscriberKeepsWhatItHolds: a live consumer holding a message longer
// than MaxIdleTime (waiting its turn, being retried) keeps it from other
// consumers; once it dies, another claims it.
func TestSubscriberKeepsWhatItHolds(t *testing.T) {
	t.Parallel()
	rdb := newRedis(t)
	n := newNames(t, rdb)
	id := fill(t, rdb, n.scl, 1)[0]
	short := func(c *ingest.SubscriberConfig) { c.MaxIdleTime = 300 * time.Millisecond }

	a, chA := subscribe(t, rdb, n.scl, "host-a", short)
	held := receive(t, chA, 1)[0]
	_, chB := subscribe(t, rdb, n.scl, "host-b", short)
	quiet(t, chB, time.Second) // 3 × MaxIdleTime
	assert.False(t, isDone(held), "still held by host-a")

	require.NoError(t, a.Close()) // dies without acknowledging
	got := receive(t, chB, 1)[0]
	assert.Equal(t, id, entryOf(got))
	got.Ack()
	require.Eventually(t, func() bool { return pending(t, rdb, n.scl) == 0 }, 5*time.Second, 10*time.Millisecond)
}

func isDone(m *message.Message) bool {
	select {
	case <-m.Acked():
		return true
	case <-m.Nacked():
		return true
	default:
		return false
	}
}

// TestSubscriberClearsDeletedEntries: an entry deleted from the stream while
// pending with a dead consumer is acknowledged, not handed out.
func TestSubscriberClearsDeletedEntries(t *testing.T) {
	t.Parallel()
	rdb := newRedis(t)
	n := newNames(t, rdb)
	ids := fill(t, rdb, n.scl, 2)
	readAs(t, rdb, n.scl, "dead", 2)
	require.NoError(t, rdb.XDel(context.Background(), n.scl, ids[0]).Err())

	_, ch := subscribe(t, rdb, n.scl, "alive", func(c *ingest.SubscriberConfig) { c.MaxIdleTime = 100 * time.Millisecond })
	got := receive(t, ch, 1)[0]
	assert.Equal(t, ids[1], entryOf(got))
	got.Ack()
	require.Eventually(t, func() bool { return pending(t, rdb, n.scl) == 0 }, 5*time.Second, 10*time.Millisecond)
}

// TestSubscriberCloseLeavesMessagesPending: what is in flight when the
// subscriber closes stays pending; what was acknowledged before is not.
func TestSubscriberCloseLeavesMessagesPending(t *testing.T) {
	t.Parallel()
	rdb := newRedis(t)
	n := newNames(t, rdb)
	fill(t, rdb, n.scl, 4)
	s, ch := subscribe(t, rdb, n.scl, "host-a", nil)
	msgs := receive(t, ch, 4)
	msgs[0].Ack()
	msgs[1].Ack()
	require.NoError(t, s.Close())
	_, open := <-ch
	assert.False(t, open, "the channel is closed")
	assert.EqualValues(t, 2, pending(t, rdb, n.scl))
}
