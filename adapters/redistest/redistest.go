// Package redistest connects tests to the real Redis named by
// TEST_REDIS_URL (default: the local server). Tests isolate themselves by
// using stream names of their own, which they delete when done.
package redistest

import (
	"context"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"
)

// DefaultURL is the Redis tests use unless TEST_REDIS_URL says otherwise.
const DefaultURL = "redis://127.0.0.1:6379/0"

// URL answers TEST_REDIS_URL or DefaultURL.
func URL() string {
	if u := os.Getenv("TEST_REDIS_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// New answers a client for t, closed when t ends; it deletes keys when
// t ends too.
func New(t testing.TB, cleanup ...string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(URL())
	if err != nil {
		t.Fatalf("TEST_REDIS_URL: %v", err)
	}
	c := redis.NewClient(opts)
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("redis %s: %v", opts.Addr, err)
	}
	t.Cleanup(func() {
		if len(cleanup) > 0 {
			c.Del(context.Background(), cleanup...)
		}
		c.Close()
	})
	return c
}
