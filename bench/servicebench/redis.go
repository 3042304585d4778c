package servicebench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// lockKey marks a logical Redis database as taken by a benchmark run.
const lockKey = "crmbench:lock"

// redisDB is a logical Redis database the run has to itself: the service
// consumes fixed stream names in a fixed consumer group, so two runs (or a
// run and anything else) sharing a database would steal each other's
// events. The run takes the database named in its URL, or when another run
// holds it the next lower one, and empties it before and after.
type redisDB struct {
	client *redis.Client
	url    string
	owner  string
	stop   chan struct{}
	done   chan struct{}
}

// claimRedis takes the first free database of base's and the three below it.
func claimRedis(ctx context.Context, base string, log *slog.Logger) (*redisDB, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	first := 15
	if p := strings.Trim(u.Path, "/"); p != "" {
		if first, err = strconv.Atoi(p); err != nil {
			return nil, fmt.Errorf("redis url %s: database %q is not a number", base, p)
		}
	}
	if first == 0 {
		return nil, fmt.Errorf("redis url %s: database 0 is everybody's; name a spare one, such as /15", base)
	}
	tag := make([]byte, 6)
	_, _ = rand.Read(tag)
	owner := hex.EncodeToString(tag)
	for db := first; db > max(0, first-4); db-- {
		v := *u
		v.Path = "/" + strconv.Itoa(db)
		opts, err := redis.ParseURL(v.String())
		if err != nil {
			return nil, fmt.Errorf("redis url: %w", err)
		}
		c := redis.NewClient(opts)
		ok, err := c.SetNX(ctx, lockKey, owner, 2*time.Minute).Result()
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("redis %s: %w", opts.Addr, err)
		}
		if !ok {
			log.Info("redis database taken by another benchmark run", slog.Int("db", db))
			c.Close()
			continue
		}
		if err := c.FlushDB(ctx).Err(); err != nil {
			c.Close()
			return nil, fmt.Errorf("redis flushdb: %w", err)
		}
		if err := c.Set(ctx, lockKey, owner, 2*time.Minute).Err(); err != nil {
			c.Close()
			return nil, fmt.Errorf("redis lock: %w", err)
		}
		r := &redisDB{client: c, url: v.String(), owner: owner, stop: make(chan struct{}), done: make(chan struct{})}
		go r.keep()
		return r, nil
	}
	return nil, fmt.Errorf("redis: databases %d to %d are all taken by other benchmark runs", max(1, first-3), first)
}

// keep renews the lock until release.
func (r *redisDB) keep() {
	defer close(r.done)
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			r.client.Set(ctx, lockKey, r.owner, 2*time.Minute) //nolint:errcheck // retried in 30 s
			cancel()
		}
	}
}

// release empties the database and lets it go.
func (r *redisDB) release() {
	close(r.stop)
	<-r.done
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r.client.FlushDB(ctx) //nolint:errcheck // the next run empties it anyway
	r.client.Close()
}

// streamsDone reports whether the consumer group has read and acknowledged
// every entry of every stream, and how many entries it has read in all.
func (r *redisDB) streamsDone(ctx context.Context, streams []string, group string) (bool, int64, error) {
	done := true
	var read int64
	for _, s := range streams {
		groups, err := r.client.XInfoGroups(ctx, s).Result()
		if err != nil {
			if strings.Contains(err.Error(), "no such key") {
				continue // nothing was published on it
			}
			return false, 0, fmt.Errorf("xinfo groups %s: %w", s, err)
		}
		found := false
		for _, g := range groups {
			if g.Name != group {
				continue
			}
			found = true
			read += g.EntriesRead - g.Pending
			if g.Lag != 0 || g.Pending != 0 {
				done = false
			}
		}
		if !found {
			n, err := r.client.XLen(ctx, s).Result()
			if err != nil {
				return false, 0, fmt.Errorf("xlen %s: %w", s, err)
			}
			if n > 0 {
				done = false
			}
		}
	}
	return done, read, nil
}
