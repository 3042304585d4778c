package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/clubcrm/crm/eventstore"
)

// hub shares one LISTEN connection among a store's subscriptions, so a
// process running many projections holds one listening connection, not one
// each. It runs while at least one subscription is open.
type hub struct {
	store *Store

	mu     sync.Mutex
	closed bool
	subs   map[*subscription]struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

func (h *hub) add(sub *subscription) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrClosed
	}
	if h.subs == nil {
		h.subs = make(map[*subscription]struct{})
	}
	h.subs[sub] = struct{}{}
	if h.cancel == nil {
		ctx, cancel := context.WithCancel(context.Background())
		h.cancel, h.done = cancel, make(chan struct{})
		go h.listen(ctx, h.done)
	}
	return nil
}

// remove drops sub and, when it was the last, stops the listener and waits
// until its connection is closed.
func (h *hub) remove(sub *subscription) {
	h.mu.Lock()
	delete(h.subs, sub)
	var cancel context.CancelFunc
	var done chan struct{}
	if len(h.subs) == 0 && h.cancel != nil {
		cancel, done = h.cancel, h.done
		h.cancel, h.done = nil, nil
	}
	h.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// close closes every subscription and refuses new ones.
func (h *hub) close() {
	h.mu.Lock()
	h.closed = true
	subs := make([]*subscription, 0, len(h.subs))
	for sub := range h.subs {
		subs = append(subs, sub)
	}
	h.mu.Unlock()
	for _, sub := range subs {
		sub.Close() //nolint:errcheck // never fails
	}
}

// wakeAll nudges every subscription; a subscription already nudged keeps its
// single pending wake-up.
func (h *hub) wakeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs {
		select {
		case sub.wake <- struct{}{}:
		default:
		}
	}
}

// listen holds a connection of its own (outside the pool, so it takes no
// pooled slot for the store's lifetime) listening on the store's channel,
// and reconnects when it is lost. Subscriptions poll meanwhile.
func (h *hub) listen(ctx context.Context, done chan struct{}) {
	defer close(done)
	cfg := h.store.pool.Config().ConnConfig.Copy()
	for ctx.Err() == nil {
		// A lost connection is not reported: there is no logger here, and
		// the subscriptions' polling covers the gap until it is back.
		h.listenOnce(ctx, cfg) //nolint:errcheck
		select {
		case <-ctx.Done():
			return
		case <-time.After(h.store.poll):
		}
	}
}

func (h *hub) listenOnce(ctx context.Context, cfg *pgx.ConnConfig) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("listen: connect: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn.Close(cctx) //nolint:errcheck
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{h.store.channel}.Sanitize()); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// Notifications sent before LISTEN took effect are lost: look once.
	h.wakeAll()
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return fmt.Errorf("listen: wait: %w", err)
		}
		h.wakeAll()
	}
}

// notifier tells subscribers that events were appended: the store's own
// subscriptions directly, other processes' by NOTIFY. The NOTIFY is sent
// after the append commits, from a goroutine of its own, coalescing the
// appends that commit while one is in flight. Sending it inside the append's
// transaction would make PostgreSQL serialise the commits of all appends on
// its global notification lock (on 2 cores: 6,100 single-row commits/s with
// 16 clients fell to 1,500 with a NOTIFY in each). A notification lost to a
// crash between commit and NOTIFY costs the other processes' subscriptions
// one poll interval.
type notifier struct {
	store *Store

	mu      sync.Mutex
	closed  bool
	pending chan struct{} // nil until the first append
	done    chan struct{}
	stopped chan struct{}
}

// kick records that events were committed.
func (n *notifier) kick() {
	n.store.hub.wakeAll()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	if n.pending == nil {
		n.pending, n.done, n.stopped = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
		go n.run(n.pending, n.done, n.stopped)
	}
	select {
	case n.pending <- struct{}{}:
	default: // a NOTIFY not yet sent covers this append too
	}
}

func (n *notifier) run(pending, done, stopped chan struct{}) {
	defer close(stopped)
	for {
		select {
		case <-done:
			return
		case <-pending:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		// A failure only leaves other processes' subscriptions to their poll.
		n.store.pool.Exec(ctx, `SELECT pg_notify($1, '')`, n.store.channel) //nolint:errcheck
		cancel()
	}
}

// close stops the goroutine sending notifications.
func (n *notifier) close() {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.closed = true
	done, stopped := n.done, n.stopped
	n.mu.Unlock()
	if done != nil {
		close(done)
		<-stopped
	}
}

// Subscribe follows the global log from after position from. Batches hold
// up to batchSize events (a default when batchSize is zero or less).
func (s *Store) Subscribe(ctx context.Context, from eventstore.Position, filter eventstore.Filter, batchSize int) (eventstore.Subscription, error) {
	if batchSize <= 0 {
		batchSize = defaultBatchSize
	}
	sub := &subscription{
		store:     s,
		pos:       from,
		filter:    filter,
		batchSize: batchSize,
		wake:      make(chan struct{}, 1),
		closed:    make(chan struct{}),
	}
	if err := s.hub.add(sub); err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	return sub, nil
}

// maxChunksPerNext bounds how many raw chunks Next reads looking for an
// event that passes the filter before it hands back an empty batch with the
// reached position, so a narrow subscription's checkpoint still moves.
const maxChunksPerNext = 16

// minPendingBackoff starts the quick retries made while committed events
// wait for an older transaction to end before they become visible.
const minPendingBackoff = 2 * time.Millisecond

type subscription struct {
	store     *Store
	filter    eventstore.Filter
	batchSize int
	wake      chan struct{}

	pos eventstore.Position // touched by Next only; Next is not for concurrent use

	closeOnce sync.Once
	closed    chan struct{}
}

// Next answers the next batch; see eventstore.Subscription.
func (sub *subscription) Next(ctx context.Context) (eventstore.Batch, error) {
	var backoff time.Duration
	for {
		select {
		case <-sub.closed:
			return eventstore.Batch{}, ErrClosed
		default:
		}
		batch, moved, pending, err := sub.fetch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return eventstore.Batch{}, ctx.Err()
			}
			return eventstore.Batch{}, fmt.Errorf("subscription next after %s: %w", sub.pos, err)
		}
		if moved {
			sub.pos = batch.Position
			return batch, nil
		}
		wait := sub.store.poll
		if pending {
			// Events have committed but an older transaction still runs:
			// they turn visible when it ends, which sends no notification.
			backoff = min(max(2*backoff, minPendingBackoff), sub.store.poll)
			wait = backoff
		} else {
			backoff = 0
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return eventstore.Batch{}, ctx.Err()
		case <-sub.closed:
			timer.Stop()
			return eventstore.Batch{}, ErrClosed
		case <-sub.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// fetch reads raw chunks after the subscription's position until one holds
// an event that passes the filter, the visible log ends, or it has read
// maxChunksPerNext chunks. moved reports whether the position advanced;
// pending, when it did not, whether committed events wait to become visible.
func (sub *subscription) fetch(ctx context.Context) (batch eventstore.Batch, moved, pending bool, err error) {
	batch.Position = sub.pos
	for range maxChunksPerNext {
		events, err := sub.store.ReadAll(ctx, batch.Position, sub.batchSize)
		if err != nil {
			return eventstore.Batch{}, false, false, err
		}
		if len(events) == 0 {
			break
		}
		moved = true
		batch.Position = events[len(events)-1].Position
		if batch.Events == nil {
			// The first chunk is filtered in place: ReadAll answers a
			// slice of the caller's own, and copying every event into a
			// new one for each subscription was a tenth of the bytes
			// crm serve allocated while ingesting.
			batch.Events = events[:0]
		}
		for _, e := range events {
			if sub.filter.Match(e) {
				batch.Events = append(batch.Events, e)
			}
		}
		if len(batch.Events) > 0 || len(events) < sub.batchSize {
			return batch, true, false, nil
		}
	}
	if moved {
		return batch, true, false, nil
	}
	var seq int64
	err = sub.store.pool.QueryRow(ctx, sqlPending, sub.pos.Commit, int64(sub.pos.Prepare)).Scan(&seq)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		pending = false
	case err != nil:
		return eventstore.Batch{}, false, false, fmt.Errorf("look for pending events: %w", err)
	default:
		pending = true
	}
	return batch, false, pending, nil
}

// sqlPending finds whether any event, visible yet or not, lies after a
// position. It is an ordered LIMIT 1 rather than EXISTS on purpose: the
// planner drops ORDER BY and LIMIT inside EXISTS, and the generic plan of
// a prepared EXISTS then expects a third of the table to match and picks a
// sequential scan — which reads the whole log, since every match is at its
// end (27 ms at 150,000 events, seconds at ten million, per poll per
// projector).
const sqlPending = `SELECT seq FROM events WHERE (tx_id, seq) > ($1::xid8, $2::bigint) ORDER BY tx_id, seq LIMIT 1`

// Close ends the subscription; a Next in progress answers ErrClosed.
func (sub *subscription) Close() error {
	sub.closeOnce.Do(func() {
		close(sub.closed)
		sub.store.hub.remove(sub)
	})
	return nil
}
