package ingest_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/adapters/ingest"
	"github.com/clubcrm/crm/commands"
)

func envelopeFor(id string) string {
	return fmt.Sprintf(`{"id":%q,"type":"member.updated","tenantId":"club-a","data":{"memberId":5}}`, id)
}

// TestBatchOfMixedOutcomes: what is queued together goes to the handler in
// one call; a transient failure of that call fails all its messages, which
// come back and pass; then each message gets its own outcome: recorded,
// refused (dead-lettered once), not JSON (dead-lettered, never handed to
// the handler).
func TestBatchOfMixedOutcomes(t *testing.T) {
	t.Parallel()
	rdb := newRedis(t)
	n := newNames(t, rdb)
	s := newScripted(map[string]int{"flaky": 1})
	rec := record(s)
	// Queued before the consumer starts: the first read takes them all.
	for _, id := range []string{"ok-1", "refuse-1", "flaky", "ok-2"} {
		xadd(t, rdb, n.scl, "payload", envelopeFor(id))
	}
	notJSON := xadd(t, rdb, n.scl, "payload", "{not json")
	xadd(t, rdb, n.scl, "payload", envelopeFor("ok-3"))
	cfg := config(t, rdb, n, rec, "host-a")
	// Time enough to gather them on a busy machine; the batch goes as
	// soon as all six are there anyway.
	cfg.BatchWait = time.Second
	start(t, cfg)

	rec.wait(t, "ok-3", 1)
	s.mu.Lock()
	assert.Equal(t, 5, s.sizes[0], "one call for the five envelopes")
	s.mu.Unlock()
	assert.Equal(t, 2, s.count("flaky"), "failed once, with its batch, then passed")
	for _, id := range []string{"ok-1", "flaky", "ok-2", "ok-3"} {
		r := rec.wait(t, id, 1)
		assert.Len(t, r, 1, id)
		assert.Equal(t, commands.Recorded, r[0].Status, id)
	}
	assert.Len(t, rec.wait(t, "refuse-1", 1), 1)
	rec.mu.Lock()
	assert.Equal(t, []string{"ok-1", "refuse-1", "flaky", "ok-2", "ok-3"}, rec.seq, "in stream order")
	rec.mu.Unlock()

	dl := deadLetters(t, rdb, n.dead, 2)
	require.Len(t, dl, 2)
	reasons := map[any]any{}
	for _, d := range dl {
		reasons[d.Values[ingest.FieldMessageID]] = d.Values[ingest.FieldReason]
	}
	assert.Contains(t, reasons[notJSON], "envelope is not JSON")
	require.Eventually(t, func() bool { return pending(t, rdb, n.scl) == 0 }, 5*time.Second, 10*time.Millisecond)
	assert.EqualValues(t, 2, must(rdb.XLen(context.Background(), n.dead).Result()), "nothing else dead-lettered")
}

// TestBatchPanicIsIsolated: when the handler panics on a batch, its
// messages are handled one by one; only the one that panics alone is
// dead-lettered, the others are recorded.
func TestBatchPanicIsIsolated(t *testing.T) {
	t.Parallel()
	rdb := newRedis(t)
	n := newNames(t, rdb)
	s := newScripted(nil)
	rec := record(s)
	for _, id := range []string{"ok-1", "boom", "ok-2"} {
		xadd(t, rdb, n.scl, "payload", envelopeFor(id))
	}
	xadd(t, rdb, n.teetime, "payload", envelopeFor("ok-3"))
	start(t, config(t, rdb, n, rec, "host-a"))

	for _, id := range []string{"ok-1", "ok-2", "ok-3"} {
		assert.Equal(t, commands.Recorded, rec.wait(t, id, 1)[0].Status, id)
	}
	dl := deadLetters(t, rdb, n.dead, 1)
	require.Len(t, dl, 1)
	assert.Contains(t, dl[0].Values[ingest.FieldReason], "nil map somewhere")
	assert.Equal(t, 1, s.countAlone("boom"))
	require.Eventually(t, func() bool {
		return pending(t, rdb, n.scl) == 0 && pending(t, rdb, n.teetime) == 0
	}, 5*time.Second, 10*time.Millisecond)
}

// flaky fails a random share of its calls as a database down would, and
// records the order in which envelopes were recorded.
type flaky struct {
	mu      sync.Mutex
	rnd     *rand.Rand
	order   map[string][]string // by stream prefix
	calls   int
	batched int
}

func (f *flaky) Handle(_ context.Context, batch []commands.Envelope) ([]commands.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if len(batch) > 1 {
		f.batched++
	}
	if f.rnd.IntN(4) == 0 {
		return nil, errDatabaseDown
	}
	res := make([]commands.Result, len(batch))
	for i, e := range batch {
		var stream string
		var k int
		fmt.Sscanf(e.ID, "%1s-%d", &stream, &k)
		f.order[stream] = append(f.order[stream], e.ID)
		res[i] = commands.Result{ID: e.ID, Status: commands.Recorded}
	}
	return res, nil
}

// TestBatchesKeepEachStreamInOrder: with the handler failing a quarter of
// its calls, each stream's events are still recorded exactly in stream
// order, each once.
func TestBatchesKeepEachStreamInOrder(t *testing.T) {
	t.Parallel()
	rdb := newRedis(t)
	n := newNames(t, rdb)
	f := &flaky{rnd: rand.New(rand.NewPCG(1, 2)), order: map[string][]string{}}
	cfg := config(t, rdb, n, f, "host-a")
	cfg.BatchSize = 40
	start(t, cfg)

	const each = 150
	want := map[string][]string{}
	streams := map[string]string{"s": n.scl, "t": n.teetime, "m": n.messaging}
	for i := range each {
		for p, stream := range streams {
			id := fmt.Sprintf("%s-%d", p, i)
			want[p] = append(want[p], id)
			xadd(t, rdb, stream, "payload", envelopeFor(id))
		}
	}
	require.Eventually(t, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.order["s"]) >= each && len(f.order["t"]) >= each && len(f.order["m"]) >= each
	}, 20*time.Second, 20*time.Millisecond)
	f.mu.Lock()
	defer f.mu.Unlock()
	for p := range streams {
		assert.Equal(t, want[p], f.order[p], "stream %s", p)
	}
	assert.Greater(t, f.batched, 0, "some calls had more than one envelope")
}

// stuck fails every call that includes the envelope "stuck", with an error
// that is not about the message (as a database error on one event's data
// would be), and records the rest.
type stuck struct {
	mu       sync.Mutex
	recorded map[string]int
	calls    int
}

func (s *stuck) Handle(_ context.Context, batch []commands.Envelope) ([]commands.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	for _, e := range batch {
		if e.ID == "stuck" {
			return nil, errDatabaseDown
		}
	}
	res := make([]commands.Result, len(batch))
	for i, e := range batch {
		s.recorded[e.ID]++
		res[i] = commands.Result{ID: e.ID, Status: commands.Recorded}
	}
	return res, nil
}

func (s *stuck) has(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recorded[id] > 0
}

// TestStuckMessageStallsOnlyItsStream: a message that always fails with a
// transient error, batched with others, holds up its own stream from where
// it is, as it would one message at a time, and no other: the messages
// before it and every other stream's go through.
func TestStuckMessageStallsOnlyItsStream(t *testing.T) {
	t.Parallel()
	rdb := newRedis(t)
	n := newNames(t, rdb)
	s := &stuck{recorded: map[string]int{}}
	for i := range 20 {
		xadd(t, rdb, n.scl, "payload", envelopeFor(fmt.Sprintf("before-%d", i)))
		xadd(t, rdb, n.teetime, "payload", envelopeFor(fmt.Sprintf("other-%d", i)))
	}
	xadd(t, rdb, n.scl, "payload", envelopeFor("stuck"))
	xadd(t, rdb, n.scl, "payload", envelopeFor("after"))
	start(t, config(t, rdb, n, s, "host-a"))

	for i := range 20 {
		xadd(t, rdb, n.teetime, "payload", envelopeFor(fmt.Sprintf("later-%d", i)))
	}
	require.Eventually(t, func() bool { return s.has("later-19") }, 10*time.Second, 10*time.Millisecond, "the other stream flows")
	// The stuck stream's batch fails whole and is retried in parts, so the
	// messages before the stuck one land on their own schedule, not the
	// other stream's.
	require.Eventually(t, func() bool { return s.has("before-19") }, 10*time.Second, 10*time.Millisecond, "the messages before the stuck one flow")
	for i := range 20 {
		assert.True(t, s.has(fmt.Sprintf("before-%d", i)), "before-%d", i)
		assert.True(t, s.has(fmt.Sprintf("other-%d", i)), "other-%d", i)
	}
	time.Sleep(200 * time.Millisecond)
	assert.False(t, s.has("after"), "nothing overtakes the stuck message")
	assert.Zero(t, must(rdb.XLen(context.Background(), n.dead).Result()), "a transient error is never dead-lettered")
	assert.EqualValues(t, 2, pending(t, rdb, n.scl), "stuck and after wait")
}
