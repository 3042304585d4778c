package esdb

import (
	"context"
	"errors"
	"testing"
	"time"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/clubcrm/crm/eventstore"
)

// These tests drive Next with messages put straight into the channel the
// pump goroutine fills, so they need no server.

func newTestSubscription(from eventstore.Position, filter eventstore.Filter, batchSize int) *subscription {
	return &subscription{
		filter:    filter,
		batchSize: batchSize,
		msgs:      make(chan *esdbclient.SubscriptionEvent, 64),
		closed:    make(chan struct{}),
		pos:       from,
	}
}

func appeared(stream, typ string, commit uint64) *esdbclient.SubscriptionEvent {
	return &esdbclient.SubscriptionEvent{EventAppeared: &esdbclient.ResolvedEvent{Event: &esdbclient.RecordedEvent{
		EventID:      uuid.New(),
		EventType:    typ,
		StreamID:     stream,
		Position:     esdbclient.Position{Commit: commit, Prepare: commit},
		CreatedDate:  time.Now(),
		Data:         []byte(`{}`),
		UserMetadata: []byte(`{"tenantId":"t"}`),
	}}}
}

func checkpoint(commit uint64) *esdbclient.SubscriptionEvent {
	return &esdbclient.SubscriptionEvent{CheckPointReached: &esdbclient.Position{Commit: commit, Prepare: commit}}
}

func at(commit uint64) eventstore.Position {
	return eventstore.Position{Commit: commit, Prepare: commit}
}

func next(t *testing.T, sub *subscription) eventstore.Batch {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	b, err := sub.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return b
}

func commits(b eventstore.Batch) []uint64 {
	out := make([]uint64, len(b.Events))
	for i, e := range b.Events {
		out[i] = e.Position.Commit
	}
	return out
}

func equal(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestNextDrainsUpToBatchSize(t *testing.T) {
	sub := newTestSubscription(eventstore.Start, eventstore.Filter{}, 2)
	for _, c := range []uint64{10, 20, 30} {
		sub.msgs <- appeared("member-1", "Joined", c)
	}
	b := next(t, sub)
	if !equal(commits(b), []uint64{10, 20}) || b.Position != at(20) {
		t.Errorf("first batch = %v at %v", commits(b), b.Position)
	}
	b = next(t, sub)
	if !equal(commits(b), []uint64{30}) || b.Position != at(30) {
		t.Errorf("second batch = %v at %v", commits(b), b.Position)
	}
}

func TestNextSkipsRedeliveredEvents(t *testing.T) {
	// Resumed from 20, a server may answer the event at 20 first.
	sub := newTestSubscription(at(20), eventstore.Filter{}, 10)
	sub.msgs <- appeared("member-1", "Joined", 20)
	sub.msgs <- appeared("member-1", "Joined", 30)
	sub.msgs <- appeared("member-1", "Joined", 30)
	b := next(t, sub)
	if !equal(commits(b), []uint64{30}) || b.Position != at(30) {
		t.Errorf("batch = %v at %v, want [30] at 30", commits(b), b.Position)
	}
}

func TestNextCheckpointsMovePosition(t *testing.T) {
	sub := newTestSubscription(at(5), eventstore.Filter{Categories: []string{"member"}}, 10)
	sub.msgs <- checkpoint(5) // not past the start: ignored, Next keeps waiting
	sub.msgs <- checkpoint(40)
	b := next(t, sub)
	if len(b.Events) != 0 || b.Position != at(40) {
		t.Errorf("batch = %v at %v, want none at 40", commits(b), b.Position)
	}

	// An event, then a checkpoint past it: the batch reaches the checkpoint.
	sub.msgs <- appeared("member-1", "Joined", 50)
	sub.msgs <- checkpoint(50) // at the event: nothing new
	sub.msgs <- checkpoint(70)
	b = next(t, sub)
	if !equal(commits(b), []uint64{50}) || b.Position != at(70) {
		t.Errorf("batch = %v at %v, want [50] at 70", commits(b), b.Position)
	}
}

func TestNextFiltersClientSide(t *testing.T) {
	filter := eventstore.Filter{Categories: []string{"member"}, Types: []string{"Joined"}}
	sub := newTestSubscription(eventstore.Start, filter, 10)
	sub.msgs <- appeared("member-1", "Joined", 10)
	sub.msgs <- appeared("booking-1", "Joined", 20)    // wrong category
	sub.msgs <- appeared("member-2", "JoinedLate", 30) // admitted by a type prefix, not by the filter
	sub.msgs <- appeared("member-3", "$metadata", 40)  // system event
	b := next(t, sub)
	if !equal(commits(b), []uint64{10}) || b.Position != at(40) {
		t.Errorf("batch = %v at %v, want [10] at 40", commits(b), b.Position)
	}

	// Only filtered-out events: the batch is empty but the position moves.
	sub.msgs <- appeared("booking-2", "Joined", 50)
	b = next(t, sub)
	if len(b.Events) != 0 || b.Position != at(50) {
		t.Errorf("batch = %v at %v, want none at 50", commits(b), b.Position)
	}
}

func TestNextWaitsForItsContext(t *testing.T) {
	sub := newTestSubscription(eventstore.Start, eventstore.Filter{}, 10)
	sub.msgs <- &esdbclient.SubscriptionEvent{CaughtUp: &esdbclient.Subscription{}} // moves nothing
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := sub.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Next = %v, want DeadlineExceeded", err)
	}
}

func TestNextDropped(t *testing.T) {
	sub := newTestSubscription(eventstore.Start, eventstore.Filter{}, 10)
	boom := errors.New("boom")
	sub.msgs <- appeared("member-1", "Joined", 10)
	sub.msgs <- &esdbclient.SubscriptionEvent{SubscriptionDropped: &esdbclient.SubscriptionDropped{Error: boom}}

	// The events before the drop are handed over first.
	b := next(t, sub)
	if !equal(commits(b), []uint64{10}) {
		t.Errorf("batch = %v, want [10]", commits(b))
	}
	for range 2 {
		if _, err := sub.Next(context.Background()); !errors.Is(err, boom) {
			t.Errorf("Next = %v, want the drop's error", err)
		}
	}
}

func TestNextUndecodableEvent(t *testing.T) {
	sub := newTestSubscription(eventstore.Start, eventstore.Filter{}, 10)
	bad := appeared("member-1", "Joined", 10)
	bad.EventAppeared.Event.UserMetadata = []byte("not json")
	sub.msgs <- bad
	if _, err := sub.Next(context.Background()); err == nil {
		t.Fatal("Next answered an undecodable event")
	}
	if sub.pos != eventstore.Start {
		t.Errorf("position moved to %v past an event never handed over", sub.pos)
	}
}

func TestNextClosed(t *testing.T) {
	sub := newTestSubscription(eventstore.Start, eventstore.Filter{}, 10)
	done := make(chan error, 1)
	go func() {
		_, err := sub.Next(context.Background())
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	close(sub.closed) // what Close does first
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Next = %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next did not return when closed")
	}
}
