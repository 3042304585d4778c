package ingest

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/clubcrm/crm/commands"
)

// sequencer keeps, per stream, the entries delivered and not yet settled,
// in stream order. It is the Tracker of the Subscriber, and the batcher
// asks it which queued messages may go: a message waits while an earlier
// entry of its stream is unsettled and not queued with it (being handled
// in a batch, waiting for a retry or a redelivery). That keeps each stream
// in order although the router handles its messages concurrently: an
// update never overtakes the event before it, even when that one is being
// retried.
type sequencer struct {
	mu      sync.Mutex
	streams map[string][]entryID // ascending
	count   int
	changed func() // called, outside mu, when an entry is settled
}

var _ Tracker = (*sequencer)(nil)

func newSequencer() *sequencer { return &sequencer{streams: map[string][]entryID{}} }

// Delivered implements Tracker: the entry is outstanding.
func (q *sequencer) Delivered(stream, id string) {
	e, ok := parseEntryID(id)
	if !ok {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	ids := q.streams[stream]
	i, found := slices.BinarySearchFunc(ids, e, cmpEntry)
	if found {
		return
	}
	q.streams[stream] = slices.Insert(ids, i, e)
	q.count++
}

// Released implements Tracker.
func (q *sequencer) Released(stream, id string) { q.settle(stream, id) }

// settle marks the entry as done with: its outcome is final.
func (q *sequencer) settle(stream, id string) {
	if e, ok := parseEntryID(id); ok {
		q.settleEntry(stream, e)
	}
}

func (q *sequencer) settleEntry(stream string, e entryID) {
	q.mu.Lock()
	ids := q.streams[stream]
	i, found := slices.BinarySearchFunc(ids, e, cmpEntry)
	if found {
		q.streams[stream] = slices.Delete(ids, i, i+1)
		if len(q.streams[stream]) == 0 {
			delete(q.streams, stream)
		}
		q.count--
	}
	changed := q.changed
	q.mu.Unlock()
	if found && changed != nil {
		changed()
	}
}

// ready answers how many of queued (one stream's queued entries,
// ascending) may go now: those before the first outstanding entry that is
// not queued.
func (q *sequencer) ready(stream string, queued []*item) int {
	out := q.streams[stream]
	j := 0
	for i, it := range queued {
		if j < len(out) && out[j].less(it.id) {
			return i // out[j] is outstanding and not queued
		}
		if j < len(out) && out[j] == it.id {
			j++
		}
	}
	return len(queued)
}

func cmpEntry(a, b entryID) int {
	switch {
	case a.less(b):
		return -1
	case b.less(a):
		return 1
	}
	return 0
}

// batcher gathers the messages the router handles concurrently into
// batches, calls the Handler once per batch, and answers each message its
// own result. One batch runs at a time: batches of the same people one
// after the other never race each other for a profile.
type batcher struct {
	handler Handler
	maxSize int
	linger  time.Duration
	order   *sequencer

	mu      sync.Mutex
	queued  map[string][]*item // per stream, ascending entry id
	nqueued int
	wake    chan struct{}
}

// item is one message waiting for its result.
type item struct {
	stream  string
	id      entryID
	payload []byte
	env     commands.Envelope // decoded by the batcher
	done    chan outcome      // buffered: the batcher never waits for the message
}

// outcome is what became of a message, with its envelope as far as it
// could be decoded (for the log).
type outcome struct {
	env commands.Envelope
	res commands.Result
	err error
}

func newBatcher(h Handler, maxSize int, linger time.Duration, order *sequencer) *batcher {
	b := &batcher{handler: h, maxSize: maxSize, linger: linger, order: order, queued: map[string][]*item{}, wake: make(chan struct{}, 1)}
	order.changed = b.signal
	return b
}

func (b *batcher) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// submit queues the envelope in payload, read from the stream's entry id,
// and waits for its outcome or for ctx (the message's) to end.
//
// The batcher decodes the payload, not the message's goroutine: decoding
// JSON there would grow each of the thousand goroutines' stacks, copied
// on growth and scanned at every collection.
func (b *batcher) submit(ctx context.Context, stream, id string, payload []byte) outcome {
	e, _ := parseEntryID(id)
	it := &item{stream: stream, id: e, payload: payload, done: make(chan outcome, 1)}
	b.mu.Lock()
	q := b.queued[stream]
	i := sort.Search(len(q), func(i int) bool { return it.id.less(q[i].id) })
	b.queued[stream] = slices.Insert(q, i, it)
	b.nqueued++
	b.mu.Unlock()
	b.signal()
	select {
	case o := <-it.done:
		return o
	case <-ctx.Done():
		b.mu.Lock()
		q := b.queued[stream]
		if i := slices.Index(q, it); i >= 0 {
			b.queued[stream] = slices.Delete(q, i, i+1)
			b.nqueued--
		}
		b.mu.Unlock()
		return outcome{err: ctx.Err()}
	}
}

// run handles batches until ctx ends; batches run under ctx, so a batch in
// flight is abandoned then (its messages are not acknowledged).
func (b *batcher) run(ctx context.Context) {
	for {
		batch := b.next(ctx)
		if batch == nil {
			return
		}
		b.process(ctx, batch)
	}
}

// next waits for a batch: maxSize messages that may go, or fewer once
// every outstanding message is queued (nothing more is on its way) or
// linger has passed since messages were first ready.
func (b *batcher) next(ctx context.Context) []*item {
	var deadline time.Time
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		b.mu.Lock()
		b.order.mu.Lock()
		ready := 0
		for s, q := range b.queued {
			ready += b.order.ready(s, q)
		}
		everything := b.order.count <= b.nqueued
		b.order.mu.Unlock()
		now := time.Now()
		if ready > 0 && (ready >= b.maxSize || everything || b.linger <= 0 || !now.Before(deadline) && !deadline.IsZero()) {
			batch := b.take()
			b.mu.Unlock()
			return batch
		}
		b.mu.Unlock()
		if ready > 0 && deadline.IsZero() {
			deadline = now.Add(b.linger)
			timer.Reset(b.linger)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-b.wake:
		case <-timer.C:
		}
	}
}

// take removes up to maxSize ready messages from the queue, each stream's
// in order. Every stream gets its share of the batch first, so that a
// stream with a backlog does not keep the others out. b.mu is held.
func (b *batcher) take() []*item {
	b.order.mu.Lock()
	defer b.order.mu.Unlock()
	streams := make([]string, 0, len(b.queued))
	ready := make(map[string]int, len(b.queued))
	for s, q := range b.queued {
		if n := b.order.ready(s, q); n > 0 {
			streams, ready[s] = append(streams, s), n
		}
	}
	slices.Sort(streams)
	count := make(map[string]int, len(streams))
	room := b.maxSize
	share := max(1, b.maxSize/max(1, len(streams)))
	for _, s := range streams {
		count[s] = min(ready[s], share, room)
		room -= count[s]
	}
	for _, s := range streams {
		more := min(ready[s]-count[s], room)
		count[s] += more
		room -= more
	}
	var batch []*item
	for _, s := range streams {
		q, n := b.queued[s], count[s]
		batch = append(batch, q[:n]...)
		b.queued[s] = slices.Delete(q, 0, n)
		if len(b.queued[s]) == 0 {
			delete(b.queued, s)
		}
		b.nqueued -= n
	}
	return batch
}

// process handles a batch and answers every message. A final outcome
// (recorded, duplicate, invalid, a panic) settles the message, letting the
// messages behind it in its stream go; an error leaves it outstanding, to
// come back through the retry middleware or a redelivery.
func (b *batcher) process(ctx context.Context, batch []*item) {
	// What is not JSON of the envelope's shape goes no further.
	valid := batch[:0]
	for _, it := range batch {
		env, err := commands.DecodeEnvelope(it.payload)
		it.env = env
		if err != nil {
			b.answer(it, outcome{err: err}, true)
			continue
		}
		valid = append(valid, it)
	}
	if batch = valid; len(batch) == 0 {
		return
	}
	res, panicked, err := b.call(ctx, batch)
	switch {
	case err == nil && panicked == nil:
		for i, it := range batch {
			b.answer(it, outcome{res: res[i]}, true)
		}
	case ctx.Err() != nil:
		// Shutting down: nothing to find out.
		for _, it := range batch {
			b.answer(it, outcome{err: ctx.Err()}, false)
		}
	default:
		// Find out whom the failure is about, so that it stalls no
		// more than it would have one message at a time: its own
		// stream, from the message that fails on.
		parts := byStream(batch)
		for _, part := range parts {
			var known error // the whole batch is this part: it failed
			if len(parts) == 1 {
				known = failure(err, panicked)
			}
			b.bisect(ctx, part, known)
		}
	}
}

// byStream splits a batch into each stream's messages, in order.
func byStream(batch []*item) [][]*item {
	var parts [][]*item
	index := map[string]int{}
	for _, it := range batch {
		i, ok := index[it.stream]
		if !ok {
			i = len(parts)
			index[it.stream] = i
			parts = append(parts, nil)
		}
		parts[i] = append(parts[i], it)
	}
	return parts
}

// bisect handles part, one stream's messages in order, halving it until
// whatever fails is alone: the messages before it are recorded, a message
// that makes the handler panic is dead-lettered (and the stream goes on
// after it), and one that fails otherwise keeps its error, as do the
// messages after it, unhandled, so that none overtakes it. known, when not
// nil, is the failure of part as a whole, already seen. bisect answers the
// error that stops the stream, nil if none does.
//
// A batch that fails as a whole, the database being down, costs about
// log2(len(part)) quick failures more per stream.
func (b *batcher) bisect(ctx context.Context, part []*item, known error) error {
	if known == nil {
		res, panicked, err := b.call(ctx, part)
		if err == nil && panicked == nil {
			for i, it := range part {
				b.answer(it, outcome{res: res[i]}, true)
			}
			return nil
		}
		known = failure(err, panicked)
	}
	if len(part) == 1 {
		var panicked middleware.RecoveredPanicError
		if errors.As(known, &panicked) {
			b.answer(part[0], outcome{err: known}, true)
			return nil
		}
		b.answer(part[0], outcome{err: known}, false)
		return known
	}
	if ctx.Err() != nil {
		for _, it := range part {
			b.answer(it, outcome{err: known}, false)
		}
		return known
	}
	half := len(part) / 2
	if err := b.bisect(ctx, part[:half], nil); err != nil {
		for _, it := range part[half:] {
			b.answer(it, outcome{err: err}, false)
		}
		return err
	}
	return b.bisect(ctx, part[half:], nil)
}

// failure is the error of a failed call.
func failure(err error, panicked *middleware.RecoveredPanicError) error {
	if panicked != nil {
		return *panicked
	}
	return err
}

// call runs the handler on batch, turning a panic into an error the
// poison queue treats as permanent (see permanent).
func (b *batcher) call(ctx context.Context, batch []*item) (res []commands.Result, panicked *middleware.RecoveredPanicError, err error) {
	envs := make([]commands.Envelope, len(batch))
	for i, it := range batch {
		envs[i] = it.env
	}
	defer func() {
		if r := recover(); r != nil {
			res, err = nil, nil
			panicked = &middleware.RecoveredPanicError{V: r, Stacktrace: string(debug.Stack())}
		}
	}()
	res, err = b.handler.Handle(ctx, envs)
	if err == nil && len(res) != len(batch) {
		err = fmt.Errorf("the handler answered %d results for %d events", len(res), len(batch))
	}
	return res, nil, err
}

// answer hands a message its outcome; final ones settle it first, so the
// next batch may take what queued behind it.
func (b *batcher) answer(it *item, o outcome, final bool) {
	if final {
		b.order.settleEntry(it.stream, it.id)
	}
	if o.err != nil && errors.Is(o.err, context.Canceled) {
		o.err = fmt.Errorf("shutting down: %w", o.err)
	}
	o.env = it.env
	it.done <- o
}
