package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/clubcrm/crm/eventstore"
)

// runner applies one projector's events while its process leads it.
type runner struct {
	p         Projector
	name      string
	tables    Tables
	pool      *pgxpool.Pool
	store     eventstore.Store
	batchSize int
	retry     backoff
	log       *slog.Logger
	metrics   *metrics
	// after names the projectors a Follower waits for; wait is
	// Runtime.WaitFor.
	after []string
	wait  func(ctx context.Context, projector string, pos eventstore.Position, timeout time.Duration) error
}

// run follows the log until ctx is done, retrying every failure with
// backoff from the stored checkpoint, so no event is ever skipped: a batch
// that keeps failing holds the projector where it is.
func (r *runner) run(ctx context.Context) {
	retry := r.retry
	for ctx.Err() == nil {
		err := r.follow(ctx, &retry)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errMoved) {
			// Not a failure: a rebuild swapped tables in, or another leader
			// wrote meanwhile. Resume from where the row says.
			r.log.Info("projection checkpoint moved; resuming from it", "projector", r.name, "reason", err.Error())
			sleep(ctx, retry.min)
			continue
		}
		wait := retry.next()
		r.metrics.failures.WithLabelValues(r.name).Inc()
		r.log.Error("projection batch failed; retrying", "projector", r.name, "attempt", retry.attempt,
			"retry_in", wait.Round(time.Millisecond).String(), "err", err)
		ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if rerr := recordError(ectx, r.pool, r.name, err); rerr != nil && ctx.Err() == nil {
			r.log.Warn("could not record projection error", "projector", r.name, "err", rerr)
		}
		cancel()
		sleep(ctx, wait)
	}
}

// follow subscribes from the stored checkpoint and applies batches until
// one fails.
func (r *runner) follow(ctx context.Context, retry *backoff) error {
	// The row is the fence every batch locks: make sure it is there.
	if err := ensureCheckpoint(ctx, r.pool, r.name); err != nil {
		return err
	}
	from, err := loadCheckpoint(ctx, r.pool, r.name)
	if err != nil {
		return err
	}
	sub, err := r.store.Subscribe(ctx, from, r.p.Filter(), r.batchSize)
	if err != nil {
		return fmt.Errorf("projector %s: subscribe from %s: %w", r.name, from, err)
	}
	defer sub.Close() //nolint:errcheck // nothing to do about it
	for {
		b, err := sub.Next(ctx)
		if err != nil {
			return fmt.Errorf("projector %s: next batch after %s: %w", r.name, from, err)
		}
		if !from.Less(b.Position) {
			continue // nothing new
		}
		start := time.Now()
		if err := r.commit(ctx, from, b); err != nil {
			return err
		}
		r.metrics.batch.WithLabelValues(r.name).Observe(time.Since(start).Seconds())
		r.metrics.applied.WithLabelValues(r.name).Add(float64(len(b.Events)))
		from = b.Position
		retry.reset()
	}
}

// commit applies b, which follows from, and moves the checkpoint to its
// position, in one transaction.
func (r *runner) commit(ctx context.Context, from eventstore.Position, b eventstore.Batch) error {
	if n := len(b.Events); n > 0 {
		if err := r.awaitAfter(ctx, b.Events[n-1].Position); err != nil {
			return err
		}
	}
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("projector %s: begin: %w", r.name, err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after commit
	if err := lockCheckpoint(ctx, tx, r.name, from); err != nil {
		return err
	}
	var last time.Time
	if n := len(b.Events); n > 0 {
		if err := apply(ctx, r.p, tx, r.tables, b.Events); err != nil {
			return fmt.Errorf("projector %s: apply %d events after %s: %w", r.name, n, from, err)
		}
		last = b.Events[n-1].RecordedAt
	}
	if err := saveCheckpoint(ctx, tx, r.name, b.Position, last, len(b.Events)); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		// Whether it committed is unknown: the next attempt resumes from
		// the stored checkpoint, whichever it is.
		return fmt.Errorf("projector %s: commit batch to %s: %w", r.name, b.Position, err)
	}
	return nil
}

// followWait bounds one wait of a Follower for the projectors it follows;
// it waits again after each, logging that it is still waiting.
const followWait = 30 * time.Second

// awaitAfter waits until every projector r follows has applied the log up
// to pos. A projector that is behind (rebuilding, failing) holds r back.
func (r *runner) awaitAfter(ctx context.Context, pos eventstore.Position) error {
	for _, dep := range r.after {
		for {
			err := r.wait(ctx, dep, pos, followWait)
			if err == nil {
				break
			}
			if !errors.Is(err, ErrNotCaughtUp) {
				return fmt.Errorf("projector %s: wait for %s: %w", r.name, dep, err)
			}
			r.log.Warn("projector waits for the read model it follows", "projector", r.name, "follows", dep, "err", err)
		}
	}
	return nil
}

// apply calls p.Apply, turning a panic into an error: a projector's bug
// then holds back that projector, retried and reported like any failure,
// instead of taking every other projector and the API down with it.
func apply(ctx context.Context, p Projector, tx pgx.Tx, tables Tables, events []eventstore.Event) error {
	return guarded(func() error { return p.Apply(ctx, tx, tables, events) })
}

// guarded calls fn, turning a panic into an error with its stack.
func guarded(fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("panic: %v\n%s", v, debug.Stack())
		}
	}()
	return fn()
}
