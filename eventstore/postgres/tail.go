package postgres

import (
	"sort"
	"sync"

	"github.com/clubcrm/crm/eventstore"
)

// defaultTailSize is how many of the newest events read from the global
// log a store keeps for its other readers: a few MiB, several batches of
// every projector.
const defaultTailSize = 4096

// tail keeps the newest run of the global log a ReadAll answered, so that
// the other subscriptions of the process (every projector follows the same
// log) take those events from memory instead of reading each of them
// again. Every projector reading every event cost PostgreSQL a fifth of its
// statement time while ingesting (docs/performance.md).
//
// What it holds never changes: ReadAll answers only events no running
// transaction can precede, so the events it answered after a position are
// all the events there are up to the last of them, now and later.
type tail struct {
	mu     sync.Mutex
	max    int
	from   eventstore.Position // events holds every event after from, up to its last
	events []eventstore.Event
}

// after answers the kept events that follow from, at most limit (none when
// limit is zero or less), copied, and the position a read for more must
// start at; ok is false when the tail does not reach back to from.
func (t *tail) after(from eventstore.Position, limit int) (events []eventstore.Event, next eventstore.Position, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.events) == 0 || from.Less(t.from) || t.events[len(t.events)-1].Position.Less(from) {
		return nil, from, false
	}
	i := sort.Search(len(t.events), func(i int) bool { return from.Less(t.events[i].Position) })
	j := len(t.events)
	if limit > 0 {
		j = min(j, i+limit)
	}
	// No room reserved for the limit: a caught-up subscription asks for a
	// batch's worth after every append and mostly gets a handful, and a
	// zeroed array of a thousand events on each of those asks was a tenth
	// of crm serve's processor time at 1,000 events/s (docs/performance.md,
	// 2026-12-08). ReadAll's append grows the slice when it reads more.
	next = from
	if j > i {
		events = append([]eventstore.Event(nil), t.events[i:j]...)
		next = events[len(events)-1].Position
	}
	return events, next, true
}

// keep records events, which ReadAll answered as the events after from.
// Those past the tail's last event extend it when the read began at or
// before that event (a read is one unbroken run of the log); a read that
// began past it replaces the tail; one that ended before it is left out (a
// reader catching up must not push out what the others are reading).
func (t *tail) keep(from eventstore.Position, events []eventstore.Event) {
	if len(events) == 0 || t.max <= 0 {
		return
	}
	if n := len(events) - t.max; n > 0 {
		from, events = events[n-1].Position, events[n:]
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.events) == 0 || t.events[len(t.events)-1].Position.Less(from) {
		t.from, t.events = from, append([]eventstore.Event(nil), events...)
	} else {
		last := t.events[len(t.events)-1].Position
		i := sort.Search(len(events), func(i int) bool { return last.Less(events[i].Position) })
		if i == len(events) {
			return
		}
		t.events = append(t.events, events[i:]...)
	}
	// Trimmed to max once it holds twice that, into a new array, so the
	// dropped events are not kept alive by the old one.
	if len(t.events) > 2*t.max {
		n := len(t.events) - t.max
		t.from = t.events[n-1].Position
		t.events = append([]eventstore.Event(nil), t.events[n:]...)
	}
}
