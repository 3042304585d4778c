package commands

import (
	"container/list"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/eventstore"
)

// DefaultProfileCacheSize is how many folded profiles an Ingest keeps
// between batches unless told otherwise: a few KiB each at most (notes
// make some larger), about 10 MiB in all. It covers the last seconds of
// traffic, where one person's events come together (a message sent,
// delivered and opened; a booking and its payment). It was 20,000: at
// 200,000 people that held a third of crm serve's live heap for few hits,
// and marking it was much of the collector's work (docs/performance.md,
// 2026-12-06, midday).
const DefaultProfileCacheSize = 5_000

// profileCache keeps folded profiles between batches, so that an event
// about someone seen recently costs no stream read and no fold.
//
// It is safe because every append to a customer stream expects an exact
// version: a cached profile that another writer (staff, another process)
// has moved past makes the append fail with a conflict, and the retry
// reads the stream again. What the cache holds is only ever what an
// append it made, or a read, showed the stream to be.
//
// A profile is taken out while a batch works on it and put back only once
// the batch's append succeeded: concurrent batches never share one (the
// second reads the stream), and a failed batch leaves nothing behind that
// it may have changed in memory.
type profileCache struct {
	mu    sync.Mutex
	max   int
	order *list.List // of *customer.Profile, most recently put first
	byKey map[profileKey]*list.Element
}

type profileKey struct {
	tenant string
	id     uuid.UUID
}

func newProfileCache(size int) *profileCache {
	return &profileCache{max: size, order: list.New(), byKey: make(map[profileKey]*list.Element, size)}
}

// take removes and answers the cached profile, or nil.
func (c *profileCache) take(tenant string, id uuid.UUID) *customer.Profile {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byKey[profileKey{tenant, id}]
	if !ok {
		return nil
	}
	delete(c.byKey, profileKey{tenant, id})
	return c.order.Remove(el).(*customer.Profile)
}

// put caches p, unless a profile at a later version is cached already
// (another batch appended after this one), and evicts the least recently
// put profiles beyond the size.
func (c *profileCache) put(tenant string, p *customer.Profile) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := profileKey{tenant, p.ID}
	if el, ok := c.byKey[k]; ok {
		if el.Value.(*customer.Profile).Version > p.Version {
			return
		}
		el.Value = p
		c.order.MoveToFront(el)
		return
	}
	c.byKey[k] = c.order.PushFront(p)
	for c.order.Len() > c.max {
		old := c.order.Remove(c.order.Back()).(*customer.Profile)
		delete(c.byKey, profileKey{tenant: old.TenantID, id: old.ID})
	}
}

// loadParallelism bounds the reads a batch runs at once: a few
// connections' worth, leaving the pool to other work.
const loadParallelism = 4

// loadProfiles folds the profiles of ids, at most loadParallelism reads at
// a time: over a store that reads many streams at once
// (eventstore.StreamsReader), one statement per share of the ids, else one
// per stream. One statement for them all would be the fewest, but the
// rows of a profile's history lie on pages of their own, and one backend
// reading six thousand of them took twice as long as four sharing them.
// With snapshots (and h.Snapshots set), each profile starts from the fold
// kept of it, and only the events after that are read.
func (h *Ingest) loadProfiles(ctx context.Context, ids []profileKey, snapshots bool) (map[profileKey]*customer.Profile, error) {
	out := make(map[profileKey]*customer.Profile, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	r, many := h.Store.(eventstore.StreamsReader)
	load := func(ctx context.Context, share []profileKey) (map[profileKey]*customer.Profile, error) {
		start, err := h.starts(ctx, share, snapshots)
		if err != nil {
			return nil, err
		}
		if many {
			return readProfiles(ctx, r, start)
		}
		got := make(map[profileKey]*customer.Profile, len(start))
		for _, p := range start {
			if p, err = foldFrom(ctx, h.Store, p, time.Time{}); err != nil {
				return nil, err
			}
			got[profileKey{p.TenantID, p.ID}] = p
		}
		return got, nil
	}
	size := 1
	if many {
		size = (len(ids) + loadParallelism - 1) / loadParallelism
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
		next     = make(chan []profileKey)
	)
	for range min(loadParallelism, len(ids)) {
		wg.Go(func() {
			for share := range next {
				got, err := load(ctx, share)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
					cancel()
				} else if err == nil {
					maps.Copy(out, got)
				}
				mu.Unlock()
			}
		})
	}
	for share := range slices.Chunk(ids, size) {
		if ctx.Err() != nil {
			break
		}
		next <- share
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// starts answers the profiles of ids to fold their streams' events into:
// the kept fold of each that h.Snapshots has (when snapshots is set), an
// empty profile for the others.
func (h *Ingest) starts(ctx context.Context, ids []profileKey, snapshots bool) ([]*customer.Profile, error) {
	kept := map[profileKey]*customer.Profile{}
	if snapshots && h.Snapshots != nil {
		tenants, uids := make([]string, len(ids)), make([]uuid.UUID, len(ids))
		for i, k := range ids {
			tenants[i], uids[i] = k.tenant, k.id
		}
		got, err := h.Snapshots.ProfileSnapshots(ctx, tenants, uids)
		if err != nil {
			return nil, fmt.Errorf("load %d profiles: %w", len(ids), err)
		}
		for _, p := range got {
			kept[profileKey{p.TenantID, p.ID}] = p
		}
	}
	out := make([]*customer.Profile, len(ids))
	for i, k := range ids {
		if out[i] = kept[k]; out[i] == nil {
			out[i] = &customer.Profile{ID: k.id, TenantID: k.tenant}
		}
	}
	return out, nil
}

// readProfiles folds into each of start the events of its stream after
// its version, from one read of them all.
func readProfiles(ctx context.Context, r eventstore.StreamsReader, start []*customer.Profile) (map[profileKey]*customer.Profile, error) {
	from := make(map[string]uint64, len(start))
	for _, p := range start {
		from[customer.Stream(p.ID)] = p.Version + 1
	}
	byStream, err := r.ReadStreams(ctx, from)
	if err != nil {
		return nil, fmt.Errorf("load %d profiles: %w", len(start), err)
	}
	out := make(map[profileKey]*customer.Profile, len(start))
	for _, p := range start {
		k := profileKey{p.TenantID, p.ID}
		if out[k], _, err = foldProfile(p, byStream[customer.Stream(p.ID)], time.Time{}); err != nil {
			return nil, err
		}
	}
	return out, nil
}
