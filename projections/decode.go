package projections

import (
	"bytes"
	"reflect"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"

	"github.com/clubcrm/crm/eventstore"
)

// Decoder turns an event's type and data into its domain value, as
// customer.Decode does. It must be a pure function of its arguments.
type Decoder func(typ string, data []byte) (any, error)

// decodedKeep is how many decoded events the process keeps: enough for
// the projectors following the log together to find each other's work
// (they read the same batches of up to 1,000 events within moments of
// each other), few enough to stay a few megabytes.
const decodedKeep = 4096

// Decode answers decode(e.Type, e.Data), decoding each event once for all
// the projectors of the process: the projectors follow the same log, and
// without it each decoded every event again (customer.Decode was 12% of
// crm serve's CPU while ingesting, five projectors each paying it).
//
// The value is shared, so callers must treat it as read-only, as the
// domain's Apply and Fold functions do. A value is reused only for an
// event with the same id, type and data decoded by the same decoder, so
// events that share an id (none should) still decode apart. Errors are not
// kept: the next caller decodes again and gets the same error.
func Decode(e eventstore.Event, decode Decoder) (any, error) {
	return decoded.decode(e, decode)
}

var decoded = newDecodeCache(decodedKeep)

type decodeKey struct {
	id      uuid.UUID
	decoder uintptr
}

type decodedEvent struct {
	typ  string
	data []byte
	v    any
}

// decodeCache keeps the newest decoded events, forgetting the oldest first.
type decodeCache struct {
	hits, misses atomic.Uint64 // exported as crm_projection_decodes_total

	mu      sync.Mutex
	entries map[decodeKey]decodedEvent
	order   []decodeKey // a ring of the keys in entries, oldest at next
	next    int
}

func newDecodeCache(n int) *decodeCache {
	return &decodeCache{entries: make(map[decodeKey]decodedEvent, n), order: make([]decodeKey, 0, n)}
}

func (c *decodeCache) decode(e eventstore.Event, decode Decoder) (any, error) {
	if e.ID == uuid.Nil {
		return decode(e.Type, e.Data)
	}
	k := decodeKey{e.ID, reflect.ValueOf(decode).Pointer()}
	c.mu.Lock()
	d, ok := c.entries[k]
	c.mu.Unlock()
	if ok && d.typ == e.Type && bytes.Equal(d.data, e.Data) {
		c.hits.Add(1)
		return d.v, nil
	}
	c.misses.Add(1)
	v, err := decode(e.Type, e.Data)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[k]; ok {
		// Decoded meanwhile by another projector, or an event with the
		// same id and other data: the newest decode stays.
		c.entries[k] = decodedEvent{e.Type, e.Data, v}
		return v, nil
	}
	if len(c.order) < cap(c.order) {
		c.order = append(c.order, k)
	} else {
		delete(c.entries, c.order[c.next])
		c.order[c.next] = k
		c.next = (c.next + 1) % len(c.order)
	}
	c.entries[k] = decodedEvent{e.Type, e.Data, v}
	return v, nil
}
