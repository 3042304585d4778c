package commands

import (
	"sync"
	"time"
)

// tenantCache keeps one value per tenant for a while: configuration other
// processes may change (settings, scoring models), read on every command.
type tenantCache[V any] struct {
	mu      sync.Mutex
	entries map[string]cached[V]
}

type cached[V any] struct {
	v  V
	at time.Time
}

// get answers the tenant's value if it was put less than ttl before now.
func (c *tenantCache[V]) get(tenant string, now time.Time, ttl time.Duration) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[tenant]
	if !ok || now.Sub(e.at) >= ttl {
		var zero V
		return zero, false
	}
	return e.v, true
}

func (c *tenantCache[V]) put(tenant string, v V, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]cached[V]{}
	}
	c.entries[tenant] = cached[V]{v: v, at: now}
}

func (c *tenantCache[V]) forget(tenant string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, tenant)
}
