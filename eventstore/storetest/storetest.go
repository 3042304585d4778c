// Package storetest is the conformance suite every eventstore.Store backend
// passes. Backends call Run from a test of their own:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) eventstore.Store { return newStore(t) })
//	}
//
// Every test names its streams (and categories and event types) uniquely, and
// only looks at its own events in the global log, so the suite runs against a
// server shared with other tests as well as against a fresh database.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/encoding/json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/eventstore"
)

// waitTimeout bounds how long a test waits for events to show up in the
// global log: PostgreSQL delays visibility while older transactions run,
// anywhere on the server.
const waitTimeout = 20 * time.Second

// Run runs the suite. newStore answers a store for one test; it may register
// cleanups on t. Run closes each store when its test ends.
func Run(t *testing.T, newStore func(t *testing.T) eventstore.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s eventstore.Store)
	}{
		{"ExpectedVersion", testExpectedVersion},
		{"Idempotent", testIdempotent},
		{"ConcurrentAppends", testConcurrentAppends},
		{"AppendMulti", testAppendMulti},
		{"ReadStream", testReadStream},
		{"ReadStreams", testReadStreams},
		{"ReadCategory", testReadCategory},
		{"RoundTrip", testRoundTrip},
		{"GlobalOrder", testGlobalOrder},
		{"Subscribe", testSubscribe},
		{"Resume", testResume},
		{"Filter", testFilter},
		{"FilteredPositionMoves", testFilteredPositionMoves},
		{"GapSafety", testGapSafety},
		{"LargePayload", testLargePayload},
		{"Invalid", testInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
}

// tenant is the tenant every suite event belongs to.
const tenant = "storetest"

// ctxFor answers a context that ends with the test.
func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// newCategory answers a category name no other test uses ('-' free).
func newCategory(prefix string) string {
	return prefix + strings.ReplaceAll(uuid.NewString(), "-", "")[:16]
}

// newStream answers a stream name no other test uses.
func newStream(category string) string { return eventstore.StreamName(category, uuid.NewString()) }

// event answers an event to append, its data a small object holding n.
func event(typ string, n int) eventstore.EventData {
	return eventstore.EventData{
		ID:         uuid.New(),
		Type:       typ,
		Data:       json.RawMessage(fmt.Sprintf(`{"n": %d, "note": "event %d"}`, n, n)),
		Metadata:   eventstore.Metadata{TenantID: tenant, CorrelationID: uuid.NewString()},
		OccurredAt: time.Now().UTC().Truncate(time.Millisecond),
	}
}

func events(typ string, from, count int) []eventstore.EventData {
	out := make([]eventstore.EventData, count)
	for i := range out {
		out[i] = event(typ, from+i)
	}
	return out
}

// dataN answers the n an event made by event carries.
func dataN(t *testing.T, e eventstore.Event) int {
	t.Helper()
	var d struct{ N int }
	require.NoError(t, json.Unmarshal(e.Data, &d), "data of %s", e.ID)
	return d.N
}

func requireConflict(t *testing.T, err error, stream string, expected eventstore.Expected, actual int64) {
	t.Helper()
	require.Error(t, err)
	assert.ErrorIs(t, err, eventstore.ErrConflict)
	var ce *eventstore.ConflictError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, stream, ce.Stream)
	assert.Equal(t, expected, ce.Expected)
	assert.Equal(t, actual, ce.Actual)
}

func streamLen(t *testing.T, ctx context.Context, s eventstore.Store, stream string) int {
	t.Helper()
	got, err := s.ReadStream(ctx, stream, 1, 10000)
	if errors.Is(err, eventstore.ErrStreamNotFound) {
		return 0
	}
	require.NoError(t, err)
	return len(got)
}

func testExpectedVersion(t *testing.T, s eventstore.Store) {
	ctx := ctxFor(t)
	cat := newCategory("ev")
	tests := []struct {
		name     string
		existing int // events in the stream before the append
		expected eventstore.Expected
		conflict bool
		actual   int64 // the conflict's Actual
	}{
		{"absent any", 0, eventstore.Any, false, 0},
		{"absent no stream", 0, eventstore.NoStream, false, 0},
		{"absent exact 0", 0, eventstore.Exact(0), false, 0},
		{"absent stream exists", 0, eventstore.StreamExists, true, -1},
		{"absent exact 1", 0, eventstore.Exact(1), true, -1},
		{"two any", 2, eventstore.Any, false, 0},
		{"two stream exists", 2, eventstore.StreamExists, false, 0},
		{"two exact 2", 2, eventstore.Exact(2), false, 0},
		{"two no stream", 2, eventstore.NoStream, true, 2},
		{"two exact 0", 2, eventstore.Exact(0), true, 2},
		{"two exact 1", 2, eventstore.Exact(1), true, 2},
		{"two exact 3", 2, eventstore.Exact(3), true, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stream := newStream(cat)
			if tc.existing > 0 {
				res, err := s.Append(ctx, stream, eventstore.NoStream, events("Seeded", 0, tc.existing)...)
				require.NoError(t, err)
				require.Equal(t, uint64(tc.existing), res.Version)
			}
			res, err := s.Append(ctx, stream, tc.expected, event("Appended", 9))
			if tc.conflict {
				requireConflict(t, err, stream, tc.expected, tc.actual)
				assert.Equal(t, tc.existing, streamLen(t, ctx, s, stream), "a conflicting append writes nothing")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, uint64(tc.existing+1), res.Version)
			assert.NotEqual(t, eventstore.Start, res.Position)
			assert.Equal(t, tc.existing+1, streamLen(t, ctx, s, stream))
		})
	}
}

func testIdempotent(t *testing.T, s eventstore.Store) {
	ctx := ctxFor(t)
	stream := newStream(newCategory("idem"))
	first := events("Happened", 1, 2)

	res, err := s.Append(ctx, stream, eventstore.NoStream, first...)
	require.NoError(t, err)
	require.Equal(t, uint64(2), res.Version)

	retries := []struct {
		name     string
		expected eventstore.Expected
		events   []eventstore.EventData
	}{
		{"same expectation", eventstore.NoStream, first},
		{"stale exact", eventstore.Exact(0), first},
		{"wrong exact", eventstore.Exact(7), first},
		{"any", eventstore.Any, first},
		{"subset", eventstore.Exact(1), first[1:]},
	}
	for _, tc := range retries {
		t.Run(tc.name, func(t *testing.T) {
			res, err := s.Append(ctx, stream, tc.expected, tc.events...)
			require.NoError(t, err, "a retried append is a no-op whatever it expected")
			assert.Equal(t, uint64(2), res.Version)
			assert.Equal(t, eventstore.Start, res.Position, "a no-op writes nothing")
			assert.Equal(t, 2, streamLen(t, ctx, s, stream))
		})
	}

	// Held ids are skipped and the rest appended after the expectation holds.
	third := event("Happened", 3)
	res, err = s.Append(ctx, stream, eventstore.Exact(2), first[1], third)
	require.NoError(t, err)
	assert.Equal(t, uint64(3), res.Version)
	got, err := s.ReadStream(ctx, stream, 1, 10)
	require.NoError(t, err)
	require.Len(t, got, 3)
	for i, want := range append(first, third) {
		assert.Equal(t, want.ID, got[i].ID)
		assert.Equal(t, uint64(i+1), got[i].Version)
	}

	// An id held by another stream does not make an append a no-op.
	other := newStream(newCategory("idem"))
	res, err = s.Append(ctx, other, eventstore.NoStream, eventstore.EventData{
		ID: first[0].ID, Type: "Happened", Data: first[0].Data, Metadata: first[0].Metadata,
	})
	if err == nil {
		assert.Equal(t, uint64(1), res.Version)
	}
	// EventStoreDB deduplicates ids per stream too, but some backends may
	// refuse an id seen elsewhere; either way the first stream is untouched.
	assert.Equal(t, 3, streamLen(t, ctx, s, stream))
}

func testConcurrentAppends(t *testing.T, s eventstore.Store) {
	ctx := ctxFor(t)
	cat := newCategory("conc")

	t.Run("any never conflicts", func(t *testing.T) {
		stream := newStream(cat)
		const writers, each = 8, 10
		var wg sync.WaitGroup
		errs := make(chan error, writers*each)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					if _, err := s.Append(ctx, stream, eventstore.Any, event("Any", w*each+i)); err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("append: %v", err)
		}
		got, err := s.ReadStream(ctx, stream, 1, 1000)
		require.NoError(t, err)
		require.Len(t, got, writers*each)
		for i, e := range got {
			assert.Equal(t, uint64(i+1), e.Version)
		}
	})

	t.Run("exact lets one writer win", func(t *testing.T) {
		stream := newStream(cat)
		const writers = 8
		var wg sync.WaitGroup
		results := make(chan error, writers)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.Append(ctx, stream, eventstore.NoStream, event("First", w))
				results <- err
			}()
		}
		wg.Wait()
		close(results)
		won := 0
		for err := range results {
			if err == nil {
				won++
				continue
			}
			assert.ErrorIs(t, err, eventstore.ErrConflict)
		}
		assert.Equal(t, 1, won)
		assert.Equal(t, 1, streamLen(t, ctx, s, stream))
	})
}

func testAppendMulti(t *testing.T, s eventstore.Store) {
	ctx := ctxFor(t)
	cat := newCategory("multi")
	a, b := newStream(cat), newStream(cat)

	res, err := s.AppendMulti(ctx, []eventstore.Append{
		{Stream: a, Expected: eventstore.NoStream, Events: events("A", 1, 2)},
		{Stream: b, Expected: eventstore.Any, Events: events("B", 1, 3)},
		{Stream: a, Expected: eventstore.Exact(2), Events: events("A", 3, 1)}, // applies after the first
	})
	require.NoError(t, err)
	require.Len(t, res, 3)
	assert.Equal(t, uint64(2), res[0].Version)
	assert.Equal(t, uint64(3), res[1].Version)
	assert.Equal(t, uint64(3), res[2].Version)
	assert.True(t, res[0].Position.Less(res[2].Position))
	assert.Equal(t, 3, streamLen(t, ctx, s, a))
	assert.Equal(t, 3, streamLen(t, ctx, s, b))

	got, err := s.ReadStream(ctx, a, 3, 1)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, res[2].Position, got[0].Position, "the result's position is that of the append's last event")

	// A conflict fails the call. It comes first, so even a backend that
	// applies appends one by one writes nothing.
	c := newStream(cat)
	_, err = s.AppendMulti(ctx, []eventstore.Append{
		{Stream: a, Expected: eventstore.Exact(1), Events: events("A", 9, 1)},
		{Stream: c, Expected: eventstore.NoStream, Events: events("C", 1, 1)},
	})
	requireConflict(t, err, a, eventstore.Exact(1), 3)
	assert.Equal(t, 3, streamLen(t, ctx, s, a))
	assert.Equal(t, 0, streamLen(t, ctx, s, c))

	// Invalid input anywhere fails the call before anything is written.
	_, err = s.AppendMulti(ctx, []eventstore.Append{
		{Stream: c, Expected: eventstore.Any, Events: events("C", 1, 1)},
		{Stream: a, Expected: eventstore.Any},
	})
	assert.ErrorIs(t, err, eventstore.ErrInvalid)
	assert.Equal(t, 0, streamLen(t, ctx, s, c))
}

func testReadStream(t *testing.T, s eventstore.Store) {
	ctx := ctxFor(t)
	cat := newCategory("read")
	stream := newStream(cat)
	for i := 1; i <= 10; i += 5 { // two appends, so the stream spans commits
		_, err := s.Append(ctx, stream, eventstore.Any, events("Counted", i, 5)...)
		require.NoError(t, err)
	}

	tests := []struct {
		name     string
		backward bool
		from     uint64
		limit    int
		want     []int // versions
	}{
		{"forward all", false, 1, 100, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{"forward page", false, 4, 3, []int{4, 5, 6}},
		{"forward tail", false, 9, 5, []int{9, 10}},
		{"forward past end", false, 11, 5, []int{}},
		{"backward all", true, 0, 100, []int{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}},
		{"backward newest", true, 0, 3, []int{10, 9, 8}},
		{"backward page", true, 5, 2, []int{5, 4}},
		{"backward first", true, 1, 5, []int{1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			read := s.ReadStream
			if tc.backward {
				read = s.ReadStreamBackward
			}
			got, err := read(ctx, stream, tc.from, tc.limit)
			require.NoError(t, err)
			versions := make([]int, len(got))
			for i, e := range got {
				versions[i] = int(e.Version)
				assert.Equal(t, stream, e.Stream)
				assert.Equal(t, int(e.Version), dataN(t, e), "event %d holds what was appended there", e.Version)
				if i > 0 {
					assert.Equal(t, tc.backward, e.Position.Less(got[i-1].Position), "positions follow versions")
				}
			}
			assert.Equal(t, tc.want, versions)
		})
	}

	t.Run("absent stream", func(t *testing.T) {
		absent := newStream(cat)
		_, err := s.ReadStream(ctx, absent, 1, 10)
		assert.ErrorIs(t, err, eventstore.ErrStreamNotFound)
		_, err = s.ReadStreamBackward(ctx, absent, 0, 10)
		assert.ErrorIs(t, err, eventstore.ErrStreamNotFound)
	})
}

// testReadStreams holds a backend that reads many streams at once to what
// reading them one by one answers, from the start or from a version on.
func testReadStreams(t *testing.T, s eventstore.Store) {
	r, ok := s.(eventstore.StreamsReader)
	if !ok {
		t.Skip("the backend reads streams one at a time")
	}
	ctx := ctxFor(t)
	cat := newCategory("multi")
	long, short, other, absent := newStream(cat), newStream(cat), newStream(cat), newStream(cat)
	for i := 1; i <= 10; i += 5 { // two appends, so the stream spans commits
		_, err := s.Append(ctx, long, eventstore.Any, events("Counted", i, 5)...)
		require.NoError(t, err)
	}
	_, err := s.Append(ctx, short, eventstore.NoStream, event("Counted", 1))
	require.NoError(t, err)
	_, err = s.Append(ctx, other, eventstore.NoStream, event("Counted", 1))
	require.NoError(t, err)

	got, err := r.ReadStreams(ctx, map[string]uint64{short: 0, absent: 1, long: 1})
	require.NoError(t, err)
	assert.NotContains(t, got, absent, "a stream that does not exist has no entry")
	assert.NotContains(t, got, other, "only the streams asked for")
	for _, stream := range []string{long, short} {
		want, err := s.ReadStream(ctx, stream, 1, 100)
		require.NoError(t, err)
		assert.Equal(t, want, got[stream], stream)
	}
	assert.Len(t, got[long], 10)

	// From a version on: what follows a snapshot, and nothing once the
	// snapshot is the newest.
	tail, err := r.ReadStreams(ctx, map[string]uint64{long: 7, short: 2, absent: 3})
	require.NoError(t, err)
	want, err := s.ReadStream(ctx, long, 7, 100)
	require.NoError(t, err)
	assert.Equal(t, map[string][]eventstore.Event{long: want}, tail, "only events at the versions asked for and later")
	assert.Len(t, want, 4)

	none, err := r.ReadStreams(ctx, nil)
	require.NoError(t, err)
	assert.Empty(t, none)
}

// testReadCategory holds a backend that reads a category stream by stream
// to its streams read one by one, cut at a position of the log.
func testReadCategory(t *testing.T, s eventstore.Store) {
	r, ok := s.(eventstore.CategoryReader)
	if !ok {
		t.Skip("the backend reads categories in log order only")
	}
	ctx := ctxFor(t)
	cat := newCategory("bystream")
	// Names that sort beside the category's own without being of it.
	near := []string{cat + "x-" + uuid.NewString(), cat + "!" + uuid.NewString(), cat[:len(cat)-1]}
	streams := []string{newStream(cat), newStream(cat), newStream(cat), cat}
	for round := range 3 { // the streams' events interleave in the log
		for i, stream := range streams {
			n := i + 1 // stream i gets i+1 events a round
			_, err := s.Append(ctx, stream, eventstore.Any, events("Counted", round*n+1, n)...)
			require.NoError(t, err)
		}
		for _, stream := range near {
			_, err := s.Append(ctx, stream, eventstore.Any, event("Counted", round+1))
			require.NoError(t, err)
		}
	}
	mid, err := s.Append(ctx, streams[0], eventstore.Any, event("Counted", 4))
	require.NoError(t, err)
	var late eventstore.Position
	for _, stream := range streams {
		res, err := s.Append(ctx, stream, eventstore.Any, event("Late", 99))
		require.NoError(t, err)
		if late.Less(res.Position) {
			late = res.Position
		}
	}
	var head eventstore.Position
	require.Eventually(t, func() bool { // until every late event shows
		h, err := s.Head(ctx)
		require.NoError(t, err)
		head = h
		return !head.Less(late)
	}, waitTimeout, 20*time.Millisecond)

	// Everything up to mid: each stream whole as it stood then, streams in
	// byte order of their names, versions in order.
	sorted := slices.Clone(streams)
	slices.Sort(sorted)
	var want []eventstore.Event
	for _, stream := range sorted {
		all, err := s.ReadStream(ctx, stream, 1, 100)
		require.NoError(t, err)
		for _, e := range all {
			if !mid.Position.Less(e.Position) {
				want = append(want, e)
			}
		}
	}
	require.Len(t, want, 3*(1+2+3+4)+1)
	read := func(upTo eventstore.Position) []eventstore.Event {
		var got []eventstore.Event
		require.NoError(t, r.ReadCategory(ctx, cat, upTo, func(e eventstore.Event) error {
			got = append(got, e)
			return nil
		}))
		return got
	}
	assert.Equal(t, ids(want), ids(read(mid.Position)))
	assert.Len(t, read(head), len(want)+len(streams), "up to the head, the late events too")
	assert.Empty(t, read(eventstore.Start), "nothing lies before the start")

	stop := errors.New("enough")
	n := 0
	err = r.ReadCategory(ctx, cat, head, func(eventstore.Event) error {
		if n++; n == 3 {
			return stop
		}
		return nil
	})
	assert.ErrorIs(t, err, stop, "the callback's error ends the read")
	assert.Equal(t, 3, n)
}

func testRoundTrip(t *testing.T, s eventstore.Store) {
	ctx := ctxFor(t)
	stream := newStream(newCategory("trip"))
	occurred := time.Date(2025, 6, 1, 7, 30, 15, 123_000_000, time.FixedZone("CEST", 2*3600))
	full := eventstore.EventData{
		ID:   uuid.New(),
		Type: "MemberJoined",
		Data: json.RawMessage(`{"name": "Ada", "handicap": 12.4, "tags": ["junior", "Ünïcode ⛳"], "nested": {"a": null}}`),
		Metadata: eventstore.Metadata{
			TenantID:      "club-7",
			CorrelationID: "corr-1",
			CausationID:   "cause-1",
			Actor:         "user:42",
			SchemaVersion: 3,
		},
		OccurredAt: occurred,
	}
	empty := eventstore.EventData{ID: uuid.New(), Type: "Pinged", Metadata: eventstore.Metadata{TenantID: "club-7"}}
	before := time.Now()
	res, err := s.Append(ctx, stream, eventstore.NoStream, full, empty)
	require.NoError(t, err)

	got, err := s.ReadStream(ctx, stream, 1, 10)
	require.NoError(t, err)
	require.Len(t, got, 2)
	e := got[0]
	assert.Equal(t, full.ID, e.ID)
	assert.Equal(t, stream, e.Stream)
	assert.Equal(t, uint64(1), e.Version)
	assert.Equal(t, full.Type, e.Type)
	assert.JSONEq(t, string(full.Data), string(e.Data))
	assert.Equal(t, full.Metadata, e.Metadata)
	assert.True(t, occurred.Equal(e.OccurredAt), "occurred at %v, read %v", occurred, e.OccurredAt)
	assert.Equal(t, time.UTC, e.OccurredAt.Location())
	assert.Equal(t, time.UTC, e.RecordedAt.Location())
	assert.WithinDuration(t, before, e.RecordedAt, time.Minute)
	assert.Equal(t, "trip", e.Category()[:4])

	assert.Empty(t, got[1].Data)
	assert.False(t, got[1].OccurredAt.IsZero(), "an event without a time gets the time it was recorded")
	assert.Equal(t, res.Position, got[1].Position)
	assert.True(t, got[0].Position.Less(got[1].Position))
}

// readOwn pages through the global log from `from` with page size page until
// it has seen want events of streams accepted by own, failing on timeout. It
// checks that positions only grow and answers own events in log order.
func readOwn(t *testing.T, ctx context.Context, s eventstore.Store, from eventstore.Position, page, want int, own func(eventstore.Event) bool) []eventstore.Event {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	var out []eventstore.Event
	for len(out) < want {
		got, err := s.ReadAll(ctx, from, page)
		require.NoError(t, err)
		require.LessOrEqual(t, len(got), page)
		for _, e := range got {
			require.True(t, from.Less(e.Position), "event at %s read after %s", e.Position, from)
			from = e.Position
			if own(e) {
				out = append(out, e)
			}
		}
		if len(got) == 0 {
			require.True(t, time.Now().Before(deadline), "saw %d of %d events in the global log", len(out), want)
			time.Sleep(20 * time.Millisecond)
		}
	}
	return out
}

func testGlobalOrder(t *testing.T, s eventstore.Store) {
	ctx := ctxFor(t)
	cat := newCategory("glob")
	start, err := s.Head(ctx)
	require.NoError(t, err)

	streams := []string{newStream(cat), newStream(cat), newStream(cat)}
	var want []uuid.UUID
	var last eventstore.Position
	for i := range 30 {
		if i == 15 { // a multi-stream append in the middle
			batch := []eventstore.Append{
				{Stream: streams[2], Expected: eventstore.Any, Events: events("G", 100, 2)},
				{Stream: streams[0], Expected: eventstore.Any, Events: events("G", 102, 1)},
			}
			res, err := s.AppendMulti(ctx, batch)
			require.NoError(t, err)
			for _, a := range batch {
				for _, e := range a.Events {
					want = append(want, e.ID)
				}
			}
			last = res[1].Position
			continue
		}
		e := event("G", i)
		res, err := s.Append(ctx, streams[i%3], eventstore.Any, e)
		require.NoError(t, err)
		require.True(t, last.Less(res.Position), "positions grow with each append")
		last = res.Position
		want = append(want, e.ID)
	}

	own := func(e eventstore.Event) bool { return e.Category() == cat }
	for _, page := range []int{1, 7, 1000} {
		t.Run(fmt.Sprintf("page %d", page), func(t *testing.T) {
			got := readOwn(t, ctx, s, start, page, len(want), own)
			ids := make([]uuid.UUID, len(got))
			for i, e := range got {
				ids[i] = e.ID
			}
			assert.Equal(t, want, ids)
			assert.Equal(t, last, got[len(got)-1].Position)
		})
	}

	head, err := s.Head(ctx)
	require.NoError(t, err)
	assert.False(t, head.Less(last), "head %s is at or after the last append %s", head, last)
	after, err := s.ReadAll(ctx, last, 1000)
	require.NoError(t, err)
	for _, e := range after {
		assert.False(t, own(e), "event %s read again after its position", e.ID)
	}
}

// collect calls Next until it has want events passing keep, checking that
// batch positions only grow and that every event lies at or before its
// batch's position.
func collect(t *testing.T, sub eventstore.Subscription, want int, keep func(eventstore.Event) bool) ([]eventstore.Event, eventstore.Position) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	var out []eventstore.Event
	var pos eventstore.Position
	for len(out) < want {
		b, err := sub.Next(ctx)
		require.NoError(t, err, "waiting for %d events, have %d", want, len(out))
		require.False(t, b.Position.Less(pos), "batch position went back from %s to %s", pos, b.Position)
		pos = b.Position
		for _, e := range b.Events {
			require.False(t, b.Position.Less(e.Position), "event past its batch position")
			if keep(e) {
				out = append(out, e)
			}
		}
	}
	return out, pos
}

func ids(es []eventstore.Event) []uuid.UUID {
	out := make([]uuid.UUID, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

func dataIDs(es []eventstore.EventData) []uuid.UUID {
	out := make([]uuid.UUID, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

func testSubscribe(t *testing.T, s eventstore.Store) {
	ctx := ctxFor(t)
	cat := newCategory("sub")
	stream := newStream(cat)
	start, err := s.Head(ctx)
	require.NoError(t, err)

	old := events("Old", 1, 5)
	_, err = s.Append(ctx, stream, eventstore.NoStream, old...)
	require.NoError(t, err)

	sub, err := s.Subscribe(ctx, start, eventstore.Filter{Categories: []string{cat}}, 2)
	require.NoError(t, err)
	defer sub.Close()

	own := func(e eventstore.Event) bool { return e.Stream == stream }
	got, _ := collect(t, sub, len(old), own)
	assert.Equal(t, dataIDs(old), ids(got), "catch-up")

	// Live: Next blocks until the appends arrive.
	live := events("Live", 6, 3)
	go func() {
		time.Sleep(100 * time.Millisecond)
		for _, e := range live {
			if _, err := s.Append(ctx, stream, eventstore.Any, e); err != nil {
				t.Errorf("append: %v", err)
			}
		}
	}()
	got, _ = collect(t, sub, len(live), own)
	assert.Equal(t, dataIDs(live), ids(got), "live")

	t.Run("next ends with its context", func(t *testing.T) {
		cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		began := time.Now()
		_, err := sub.Next(cctx)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Less(t, time.Since(began), 5*time.Second)
	})

	t.Run("closed", func(t *testing.T) {
		other, err := s.Subscribe(ctx, start, eventstore.Filter{Categories: []string{cat}}, 10)
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() {
			// Nothing matches after the end: Next waits until Close.
			_, err := other.Next(ctx)
			for err == nil {
				_, err = other.Next(ctx)
			}
			done <- err
		}()
		time.Sleep(100 * time.Millisecond)
		require.NoError(t, other.Close())
		select {
		case err := <-done:
			assert.Error(t, err)
			assert.NotErrorIs(t, err, context.DeadlineExceeded)
		case <-time.After(10 * time.Second):
			t.Fatal("Next did not return after Close")
		}
	})
}

func testResume(t *testing.T, s eventstore.Store) {
	ctx := ctxFor(t)
	cat := newCategory("resume")
	start, err := s.Head(ctx)
	require.NoError(t, err)
	var all []eventstore.EventData
	for i := range 4 {
		batch := events("R", i*5, 5)
		_, err := s.Append(ctx, newStream(cat), eventstore.NoStream, batch...)
		require.NoError(t, err)
		all = append(all, batch...)
	}
	filter := eventstore.Filter{Categories: []string{cat}}
	own := func(e eventstore.Event) bool { return e.Category() == cat }

	sub, err := s.Subscribe(ctx, start, filter, 3)
	require.NoError(t, err)
	first, checkpoint := collect(t, sub, 7, own)
	require.NoError(t, sub.Close())

	sub, err = s.Subscribe(ctx, checkpoint, filter, 3)
	require.NoError(t, err)
	defer sub.Close()
	rest, _ := collect(t, sub, len(all)-len(first), own)
	assert.Equal(t, dataIDs(all), append(ids(first), ids(rest)...), "resumed exactly after the checkpoint")
}

func testFilter(t *testing.T, s eventstore.Store) {
	ctx := ctxFor(t)
	catA, catB := newCategory("fa"), newCategory("fb")
	typX, typY := newCategory("TypeX"), newCategory("TypeY")
	start, err := s.Head(ctx)
	require.NoError(t, err)
	a, b := newStream(catA), newStream(catB)
	appended := map[uuid.UUID]eventstore.EventData{}
	var order []uuid.UUID
	for i := range 12 {
		stream, typ := a, typX
		if i%2 == 1 {
			stream = b
		}
		if i%3 == 0 {
			typ = typY
		}
		e := event(typ, i)
		_, err := s.Append(ctx, stream, eventstore.Any, e)
		require.NoError(t, err)
		appended[e.ID] = e
		order = append(order, e.ID)
	}
	streamOf := func(id uuid.UUID) string {
		for i, o := range order {
			if o == id {
				if i%2 == 1 {
					return b
				}
				return a
			}
		}
		return ""
	}

	tests := []struct {
		name   string
		filter eventstore.Filter
	}{
		{"category", eventstore.Filter{Categories: []string{catA}}},
		{"categories", eventstore.Filter{Categories: []string{catA, catB}}},
		{"type", eventstore.Filter{Types: []string{typY}}},
		{"category and type", eventstore.Filter{Categories: []string{catB}, Types: []string{typX, typY}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var want []uuid.UUID
			for _, id := range order {
				e := eventstore.Event{Stream: streamOf(id), Type: appended[id].Type}
				if tc.filter.Match(e) {
					want = append(want, id)
				}
			}
			require.NotEmpty(t, want)
			sub, err := s.Subscribe(ctx, start, tc.filter, 4)
			require.NoError(t, err)
			defer sub.Close()
			// Every event handed over must pass the filter; ours must all come.
			got, _ := collect(t, sub, len(want), func(e eventstore.Event) bool {
				assert.True(t, tc.filter.Match(e), "event %s of %s (%s) passed filter %+v", e.ID, e.Stream, e.Type, tc.filter)
				_, ok := appended[e.ID]
				return ok
			})
			assert.Equal(t, want, ids(got))
		})
	}
}

func testFilteredPositionMoves(t *testing.T, s eventstore.Store) {
	ctx := ctxFor(t)
	start, err := s.Head(ctx)
	require.NoError(t, err)
	var last eventstore.Position
	for range 5 {
		res, err := s.Append(ctx, newStream(newCategory("skipped")), eventstore.NoStream, events("Skipped", 0, 3)...)
		require.NoError(t, err)
		last = res.Position
	}
	sub, err := s.Subscribe(ctx, start, eventstore.Filter{Categories: []string{newCategory("nothing")}}, 4)
	require.NoError(t, err)
	defer sub.Close()
	nctx, cancel := context.WithTimeout(ctx, waitTimeout)
	defer cancel()
	pos := start
	for pos.Less(last) {
		b, err := sub.Next(nctx)
		require.NoError(t, err, "the position reached %s, not %s", pos, last)
		assert.Empty(t, b.Events)
		require.True(t, pos.Less(b.Position), "Next answered without moving from %s", pos)
		pos = b.Position
	}
}

// testGapSafety has concurrent writers append with random pauses while a
// subscriber follows: it must see every event exactly once, in an order
// that keeps each stream's versions ascending.
func testGapSafety(t *testing.T, s eventstore.Store) {
	ctx := ctxFor(t)
	cat := newCategory("gap")
	start, err := s.Head(ctx)
	require.NoError(t, err)
	const writers, appends = 16, 25

	sub, err := s.Subscribe(ctx, start, eventstore.Filter{Categories: []string{cat}}, 50)
	require.NoError(t, err)
	defer sub.Close()

	var (
		mu      sync.Mutex
		written = map[uuid.UUID]bool{}
		wg      sync.WaitGroup
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			streams := []string{newStream(cat), newStream(cat), newStream(cat)}
			for i := range appends {
				time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
				batch := events("Gap", w*1000+i*10, 1+rand.IntN(3))
				if _, err := s.Append(ctx, streams[rand.IntN(len(streams))], eventstore.Any, batch...); err != nil {
					t.Errorf("append: %v", err)
					return
				}
				mu.Lock()
				for _, e := range batch {
					written[e.ID] = true
				}
				mu.Unlock()
			}
		}()
	}

	seen := map[uuid.UUID]int{}
	versions := map[string]uint64{}
	var pos eventstore.Position
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	deadline := time.Now().Add(waitTimeout + 30*time.Second)
	for {
		mu.Lock()
		nwritten := len(written)
		mu.Unlock()
		if isDone(done) && len(seen) == nwritten {
			break
		}
		require.True(t, time.Now().Before(deadline), "saw %d of %d events", len(seen), nwritten)
		nctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		b, err := sub.Next(nctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			continue
		}
		require.NoError(t, err)
		require.True(t, pos.Less(b.Position))
		pos = b.Position
		for _, e := range b.Events {
			seen[e.ID]++
			require.Equal(t, 1, seen[e.ID], "event %s seen twice", e.ID)
			require.Greater(t, e.Version, versions[e.Stream], "stream %s out of order", e.Stream)
			versions[e.Stream] = e.Version
		}
	}
	for id := range seen {
		assert.True(t, written[id], "event %s seen but never written", id)
	}
}

func isDone(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func testLargePayload(t *testing.T, s eventstore.Store) {
	ctx := ctxFor(t)
	cat := newCategory("large")
	stream := newStream(cat)
	start, err := s.Head(ctx)
	require.NoError(t, err)
	blob := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	data, err := json.Marshal(map[string]string{"blob": blob})
	require.NoError(t, err)
	e := event("Large", 0)
	e.Data = data
	_, err = s.Append(ctx, stream, eventstore.NoStream, e, event("Small", 1))
	require.NoError(t, err)

	check := func(t *testing.T, got eventstore.Event) {
		var d struct{ Blob string }
		require.NoError(t, json.Unmarshal(got.Data, &d))
		assert.Equal(t, len(blob), len(d.Blob))
		assert.True(t, d.Blob == blob, "blob differs")
	}
	got, err := s.ReadStream(ctx, stream, 1, 10)
	require.NoError(t, err)
	require.Len(t, got, 2)
	check(t, got[0])
	all := readOwn(t, ctx, s, start, 10, 2, func(e eventstore.Event) bool { return e.Stream == stream })
	check(t, all[0])
}

func testInvalid(t *testing.T, s eventstore.Store) {
	ctx := ctxFor(t)
	cat := newCategory("bad")
	valid := func() eventstore.EventData { return event("Fine", 1) }
	tests := []struct {
		name   string
		stream string
		events []eventstore.EventData
	}{
		{"no id", "", []eventstore.EventData{func() eventstore.EventData { e := valid(); e.ID = uuid.Nil; return e }()}},
		{"no type", "", []eventstore.EventData{func() eventstore.EventData { e := valid(); e.Type = ""; return e }()}},
		{"invalid json", "", []eventstore.EventData{func() eventstore.EventData { e := valid(); e.Data = json.RawMessage(`{"n":`); return e }()}},
		{"no tenant", "", []eventstore.EventData{func() eventstore.EventData { e := valid(); e.Metadata.TenantID = ""; return e }()}},
		{"second event bad", "", []eventstore.EventData{valid(), func() eventstore.EventData { e := valid(); e.Type = ""; return e }()}},
		{"no events", "", nil},
		{"empty stream name", "-", []eventstore.EventData{valid()}},
		{"padded stream name", " ", []eventstore.EventData{valid()}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stream := newStream(cat)
			switch tc.stream {
			case "-":
				stream = ""
			case " ":
				stream = " " + stream
			}
			_, err := s.Append(ctx, stream, eventstore.Any, tc.events...)
			assert.ErrorIs(t, err, eventstore.ErrInvalid)
			_, err = s.AppendMulti(ctx, []eventstore.Append{{Stream: stream, Expected: eventstore.Any, Events: tc.events}})
			assert.ErrorIs(t, err, eventstore.ErrInvalid)
			if strings.TrimSpace(stream) == stream && stream != "" {
				assert.Equal(t, 0, streamLen(t, ctx, s, stream))
			}
		})
	}
	_, err := s.Append(ctx, newStream(cat), eventstore.Expected(-4), valid())
	assert.ErrorIs(t, err, eventstore.ErrInvalid, "unknown expectation")
}
