package commands_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/clubcrm/crm/commands"
	"github.com/clubcrm/crm/eventstore"
)

type timings struct {
	mu sync.Mutex
	d  map[string]time.Duration
	n  map[string]int
}

func (t *timings) add(k string, s time.Time) {
	t.mu.Lock()
	t.d[k] += time.Since(s)
	t.n[k]++
	t.mu.Unlock()
}

type tStore struct {
	eventstore.Store
	t *timings
}

func (s tStore) ReadStream(ctx context.Context, st string, from uint64, l int) ([]eventstore.Event, error) {
	defer s.t.add("read", time.Now())
	return s.Store.ReadStream(ctx, st, from, l)
}
func (s tStore) AppendMulti(ctx context.Context, a []eventstore.Append) ([]eventstore.AppendResult, error) {
	defer s.t.add("append", time.Now())
	return s.Store.AppendMulti(ctx, a)
}

type tIndex struct {
	commands.IdentityIndex
	commands.Inbox
	t *timings
}

func (x tIndex) Resolve(ctx context.Context, tenant string, r []commands.ResolveRequest, d commands.Decider) error {
	defer x.t.add("resolve", time.Now())
	return x.IdentityIndex.Resolve(ctx, tenant, r, d)
}
func (x tIndex) Seen(ctx context.Context, tenant string, ids []string) (map[string]string, error) {
	defer x.t.add("seen", time.Now())
	return x.Inbox.Seen(ctx, tenant, ids)
}
func (x tIndex) Record(ctx context.Context, tenant string, e []commands.InboxEntry) error {
	defer x.t.add("record", time.Now())
	return x.Inbox.Record(ctx, tenant, e)
}

func TestScratchTimings(t *testing.T) {
	e := newEnv(t)
	tm := &timings{d: map[string]time.Duration{}, n: map[string]int{}}
	e.ingest.Store = tStore{e.store, tm}
	ix := tIndex{e.index, e.index, tm}
	e.ingest.Index, e.ingest.Inbox = ix, ix
	var evs []commands.Envelope
	for i := range 2000 {
		p := i % 250
		switch i % 4 {
		case 0:
			evs = append(evs, envelope("club-a", "member.created", fmt.Sprintf(`{"memberId": %d, "email": "p%d@club.com", "firstName":"A","lastName":"B%d"}`, 1000+p, p, p)))
		case 1:
			evs = append(evs, envelope("club-a", "player.created", fmt.Sprintf(`{"playerId": "P%d", "email": "p%d@club.com"}`, p, p)))
		case 2:
			evs = append(evs, envelope("club-a", "teetime.booked", fmt.Sprintf(`{"playerId": "P%d", "bookingId": "%s"}`, p, uuid.NewString())))
		case 3:
			evs = append(evs, envelope("club-a", "message.sent", fmt.Sprintf(`{"contactId": "C%d", "email": "p%d@club.com", "messageId":"m"}`, p, p)))
		}
	}
	start := time.Now()
	for _, ev := range evs[:500] {
		e.handle(t, ev)
	}
	fmt.Println("single total", time.Since(start))
	for k, d := range tm.d {
		fmt.Printf("  %-8s %6d calls %10v avg %v\n", k, tm.n[k], d, d/time.Duration(tm.n[k]))
	}
	tm.d, tm.n = map[string]time.Duration{}, map[string]int{}
	start = time.Now()
	for i := 500; i < 2000; i += 500 {
		e.handle(t, evs[i:i+500]...)
	}
	fmt.Println("batch total (1500 in 3)", time.Since(start))
	for k, d := range tm.d {
		fmt.Printf("  %-8s %6d calls %10v avg %v\n", k, tm.n[k], d, d/time.Duration(tm.n[k]))
	}
}
