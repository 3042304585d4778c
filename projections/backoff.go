package projections

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff spaces out retries exponentially between min and max, with jitter
// so that replicas failing together do not retry in lockstep.
type backoff struct {
	min, max time.Duration
	attempt  int
}

// next answers how long to wait before the next attempt.
func (b *backoff) next() time.Duration {
	d := b.min << min(b.attempt, 30)
	if d <= 0 || d > b.max {
		d = b.max
	}
	b.attempt++
	// Up to a quarter less, never more than max.
	return d - time.Duration(rand.Int64N(int64(d)/4+1))
}

func (b *backoff) reset() { b.attempt = 0 }

// sleep waits for d or until ctx is done, reporting whether it waited out d.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
