package ingest

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func queuedItems(ids ...string) []*item {
	out := make([]*item, len(ids))
	for i, id := range ids {
		e, _ := parseEntryID(id)
		out[i] = &item{id: e}
	}
	return out
}

// TestSequencerReady: queued messages may go up to the first outstanding
// entry of their stream that is not queued with them.
func TestSequencerReady(t *testing.T) {
	q := newSequencer()
	for _, id := range []string{"5-0", "1-0", "2-0", "2-1", "10-0"} {
		q.Delivered("s", id)
	}
	q.Delivered("s", "2-0") // again: a redelivery
	assert.Equal(t, 5, q.count)
	assert.Equal(t, []entryID{{1, 0}, {2, 0}, {2, 1}, {5, 0}, {10, 0}}, q.streams["s"], "kept in stream order")

	assert.Equal(t, 3, q.ready("s", queuedItems("1-0", "2-0", "2-1", "10-0")), "5-0 is elsewhere: 10-0 waits")
	assert.Equal(t, 0, q.ready("s", queuedItems("2-0", "2-1")), "1-0 is elsewhere: all wait")
	assert.Equal(t, 2, q.ready("other", queuedItems("1-0", "9-0")), "nothing outstanding there")

	q.settle("s", "1-0")
	q.settle("s", "1-0") // settling twice is harmless
	q.Released("s", "5-0")
	assert.Equal(t, 3, q.count)
	assert.Equal(t, 3, q.ready("s", queuedItems("2-0", "2-1", "10-0")))
	assert.Equal(t, 1, q.ready("s", queuedItems("2-0", "10-0")), "2-1 is elsewhere")
	// A message the subscriber never announced goes as soon as nothing
	// before it is outstanding.
	assert.Equal(t, 1, q.ready("s", queuedItems("0-5", "3-0")))
}

func TestParseEntryID(t *testing.T) {
	e, ok := parseEntryID("1732269091234-7")
	assert.True(t, ok)
	assert.Equal(t, entryID{1732269091234, 7}, e)
	for _, bad := range []string{"", "12", "a-1", "1-b"} {
		_, ok := parseEntryID(bad)
		assert.False(t, ok, bad)
	}
	assert.True(t, entryID{1, 9}.less(entryID{2, 0}))
	assert.True(t, entryID{2, 0}.less(entryID{2, 1}))
	assert.False(t, entryID{2, 1}.less(entryID{2, 1}))
}

// TestBatcherTakesFairly: a stream with a backlog leaves room in the batch
// for the others.
func TestBatcherTakesFairly(t *testing.T) {
	b := newBatcher(nil, 10, 0, newSequencer())
	add := func(stream string, n int) {
		for i := range n {
			b.queued[stream] = append(b.queued[stream], &item{stream: stream, id: entryID{uint64(i + 1), 0}})
			b.nqueued++
		}
	}
	add("busy", 100)
	add("quiet", 2)
	add("other", 4)
	batch := b.take()
	count := map[string]int{}
	for _, it := range batch {
		count[it.stream]++
	}
	assert.Len(t, batch, 10)
	assert.Equal(t, map[string]int{"busy": 5, "quiet": 2, "other": 3}, count, "a third each at least, the rest to who has more")
	assert.Equal(t, entryID{1, 0}, batch[0].id, "each stream from its oldest")
	assert.Equal(t, 96, b.nqueued)
}
