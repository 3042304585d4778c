package postgres

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/clubcrm/crm/eventstore"
)

func positions(events []eventstore.Event) []uint64 {
	out := make([]uint64, len(events))
	for i, e := range events {
		out[i] = e.Position.Commit
	}
	return out
}

// run answers events at commits from+1 .. to.
func run(from, to uint64) []eventstore.Event {
	var out []eventstore.Event
	for c := from + 1; c <= to; c++ {
		out = append(out, eventstore.Event{Position: eventstore.Position{Commit: c}})
	}
	return out
}

func at(c uint64) eventstore.Position { return eventstore.Position{Commit: c} }

func TestTail(t *testing.T) {
	tl := &tail{max: 4}
	_, next, ok := tl.after(at(0), 10)
	assert.False(t, ok, "an empty tail reaches nowhere")
	assert.Equal(t, at(0), next)

	tl.keep(at(10), run(10, 13))
	got, next, ok := tl.after(at(11), 10)
	assert.True(t, ok)
	assert.Equal(t, []uint64{12, 13}, positions(got))
	assert.Equal(t, at(13), next, "a read for more starts after the last kept")
	got, next, _ = tl.after(at(10), 1)
	assert.Equal(t, []uint64{11}, positions(got))
	assert.Equal(t, at(11), next)
	got, next, ok = tl.after(at(13), 10)
	assert.True(t, ok)
	assert.Empty(t, got)
	assert.Equal(t, at(13), next)
	_, _, ok = tl.after(at(9), 10)
	assert.False(t, ok, "before the tail")
	_, _, ok = tl.after(at(14), 10)
	assert.False(t, ok, "past the tail")

	tl.keep(at(13), run(13, 16))
	got, _, _ = tl.after(at(10), 0)
	assert.Equal(t, []uint64{11, 12, 13, 14, 15, 16}, positions(got), "a read that follows on extends it")

	tl.keep(at(2), run(2, 5))
	got, _, _ = tl.after(at(10), 0)
	assert.Equal(t, []uint64{11, 12, 13, 14, 15, 16}, positions(got), "an older read leaves it alone")

	tl.keep(at(5), run(5, 14))
	got, _, _ = tl.after(at(10), 0)
	assert.Equal(t, []uint64{11, 12, 13, 14, 15, 16}, positions(got), "a read that began before it and ends inside it adds nothing")

	tl.keep(at(12), run(12, 17))
	got, _, _ = tl.after(at(10), 0)
	assert.Equal(t, []uint64{11, 12, 13, 14, 15, 16, 17}, positions(got), "a read that began inside it extends it past its end")

	tl.keep(at(17), run(17, 19))
	got, _, ok = tl.after(at(15), 0)
	assert.True(t, ok)
	assert.Equal(t, []uint64{16, 17, 18, 19}, positions(got), "trimmed to max once over twice that")
	_, _, ok = tl.after(at(14), 0)
	assert.False(t, ok, "what was trimmed is read from the database")

	tl.keep(at(30), run(30, 40))
	got, _, ok = tl.after(at(36), 0)
	assert.True(t, ok)
	assert.Equal(t, []uint64{37, 38, 39, 40}, positions(got), "a newer read replaces it, its newest max kept")
	_, _, ok = tl.after(at(35), 0)
	assert.False(t, ok)

	got[0].Type = "changed"
	again, _, _ := tl.after(at(36), 1)
	assert.Empty(t, again[0].Type, "answers are copies")

	off := &tail{}
	off.keep(at(0), run(0, 3))
	_, _, ok = off.after(at(0), 0)
	assert.False(t, ok, "a tail of size 0 keeps nothing")
}
