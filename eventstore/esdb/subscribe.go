package esdb

import (
	"context"
	"fmt"
	"slices"
	"sync"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/clubcrm/crm/eventstore"
)

// defaultBatchSize is used by Subscribe when asked for a batch size of zero
// or less.
const defaultBatchSize = 256

// Subscribe follows the global log from after position from, through an
// EventStoreDB catch-up subscription to $all. ctx bounds only the setting
// up: the subscription lasts until it or the store is closed. Batches hold up
// to batchSize events (a default when batchSize is zero or less).
func (s *Store) Subscribe(ctx context.Context, from eventstore.Position, filter eventstore.Filter, batchSize int) (eventstore.Subscription, error) {
	if batchSize <= 0 {
		batchSize = defaultBatchSize
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("subscribe: %w", ErrClosed)
	}

	subCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, cancel)
	es, err := s.client.SubscribeToAll(subCtx, esdbclient.SubscribeToAllOptions{
		// Always explicit: left nil, the client starts at the end of $all
		// and the subscription would miss everything already written.
		From:   fromPosition(from),
		Filter: subscriptionFilter(filter),
		// A checkpoint after every search window, so the reached position
		// moves while the filter skips a long stretch of the log.
		CheckpointInterval: 1,
	})
	if !stop() {
		// ctx ended while subscribing and took subCtx with it.
		if es != nil {
			es.Close() //nolint:errcheck // never fails
		}
		return nil, fmt.Errorf("subscribe after %s: %w", from, ctx.Err())
	}
	if err != nil {
		cancel()
		return nil, wrap("subscribe after "+from.String(), err)
	}

	sub := &subscription{
		store:  s,
		es:     es,
		cancel: cancel,
		// A copy: the caller may reuse its slices while the subscription runs.
		filter:    eventstore.Filter{Categories: slices.Clone(filter.Categories), Types: slices.Clone(filter.Types)},
		batchSize: batchSize,
		msgs:      make(chan *esdbclient.SubscriptionEvent, batchSize),
		closed:    make(chan struct{}),
		pos:       from,
	}
	s.mu.Lock()
	closed = s.closed
	if !closed {
		if s.subs == nil {
			s.subs = make(map[*subscription]struct{})
		}
		s.subs[sub] = struct{}{}
	}
	s.mu.Unlock()
	if closed {
		sub.Close() //nolint:errcheck // never fails
		return nil, fmt.Errorf("subscribe: %w", ErrClosed)
	}
	go sub.pump()
	return sub, nil
}

func (s *Store) forget(sub *subscription) {
	s.mu.Lock()
	delete(s.subs, sub)
	s.mu.Unlock()
}

// subscription adapts an EventStoreDB catch-up subscription to batches. A
// goroutine pumps the client's blocking Recv into msgs, so that Next can
// wait for the first message under its own context and then take whatever
// else has already arrived without waiting.
type subscription struct {
	store     *Store
	es        *esdbclient.Subscription
	cancel    context.CancelFunc
	filter    eventstore.Filter
	batchSize int
	msgs      chan *esdbclient.SubscriptionEvent

	closeOnce sync.Once
	closed    chan struct{}

	// Touched by Next only; Next is not for concurrent use.
	pos eventstore.Position // the position handed over last
	err error               // the error that ended the subscription
}

// pump forwards the subscription's messages until it is dropped or closed.
func (sub *subscription) pump() {
	for {
		msg := sub.es.Recv()
		select {
		case sub.msgs <- msg:
		case <-sub.closed:
			return
		}
		if msg.SubscriptionDropped != nil {
			return
		}
	}
}

// Next answers the next batch; see eventstore.Subscription. It blocks for the
// first message that passes an event or moves the position, then takes the
// messages already received, up to the batch size.
func (sub *subscription) Next(ctx context.Context) (eventstore.Batch, error) {
	if sub.err != nil {
		return eventstore.Batch{}, sub.err
	}
	select {
	case <-sub.closed:
		return eventstore.Batch{}, ErrClosed
	default:
	}
	batch := eventstore.Batch{Position: sub.pos}
	moved := false
	for len(batch.Events) < sub.batchSize {
		var msg *esdbclient.SubscriptionEvent
		if moved {
			select {
			case msg = <-sub.msgs:
			default:
				return batch, nil
			}
		} else {
			select {
			case msg = <-sub.msgs:
			case <-ctx.Done():
				return eventstore.Batch{}, ctx.Err()
			case <-sub.closed:
				return eventstore.Batch{}, ErrClosed
			}
		}
		m, err := sub.take(msg, &batch)
		if err != nil {
			sub.err = err
			if moved {
				return batch, nil // the error waits for the next call
			}
			return eventstore.Batch{}, err
		}
		moved = moved || m
	}
	return batch, nil
}

// take applies one message to batch and reports whether it moved the
// position.
func (sub *subscription) take(msg *esdbclient.SubscriptionEvent, batch *eventstore.Batch) (bool, error) {
	switch {
	case msg.EventAppeared != nil:
		p := eventPosition(msg.EventAppeared)
		if !sub.beyond(p) {
			// A subscription started from a position may answer the event at
			// that position first; it was handed over before.
			return false, nil
		}
		e, ok, err := sub.accept(msg.EventAppeared)
		if err != nil {
			return false, err // the position stays before the event
		}
		if ok {
			batch.Events = append(batch.Events, e)
		}
		sub.pos = p
		batch.Position = p
		return true, nil

	case msg.CheckPointReached != nil:
		p := toPosition(*msg.CheckPointReached)
		if !sub.beyond(p) {
			// Servers may repeat a checkpoint, or send one at the position
			// of the event just handed over.
			return false, nil
		}
		sub.pos = p
		batch.Position = p
		return true, nil

	case msg.SubscriptionDropped != nil:
		select {
		case <-sub.closed:
			return false, ErrClosed
		default:
		}
		return false, fmt.Errorf("subscription after %s dropped: %w", sub.pos, msg.SubscriptionDropped.Error)
	}
	// CaughtUp and FellBehind tell nothing a batch carries.
	return false, nil
}

// beyond reports whether p lies strictly after the position handed over
// last. Every event's position lies after the zero position, the start.
func (sub *subscription) beyond(p eventstore.Position) bool {
	return sub.pos.Less(p)
}

// accept decodes a delivered event if it passes the filter. The server-side
// filter can only be wider than asked (see subscriptionFilter), so every
// event is checked again here, on stream and type before decoding, so that
// events of other writers that are filtered out are never decoded.
func (sub *subscription) accept(ev *esdbclient.ResolvedEvent) (eventstore.Event, bool, error) {
	rec := ev.OriginalEvent()
	if isSystem(rec.EventType) || !sub.filter.Match(eventstore.Event{Stream: rec.StreamID, Type: rec.EventType}) {
		return eventstore.Event{}, false, nil
	}
	e, err := fromResolved(ev)
	if err != nil {
		return eventstore.Event{}, false, fmt.Errorf("subscription after %s: %w", sub.pos, err)
	}
	return e, true, nil
}

// Close ends the subscription; a Next in progress answers ErrClosed.
func (sub *subscription) Close() error {
	sub.closeOnce.Do(func() {
		close(sub.closed)
		sub.es.Close() //nolint:errcheck // never fails
		sub.cancel()
		sub.store.forget(sub)
	})
	return nil
}
