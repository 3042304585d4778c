package projections

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/clubcrm/crm/eventstore"
)

// foldStreams fills the shadow tables of a StreamFolder stream by stream,
// up to upTo, when the store reads categories that way; it leaves the
// rebuild at upTo, from where fill goes on in log order. It does nothing
// for other projectors and stores, or a filter that names no category.
// A store that cannot find room for the read (eventstore.ErrReadTooLarge)
// leaves the rebuild where it began, its shadow tables emptied, for fill
// to read the whole log in its order.
//
// One goroutine reads each category in (stream, version) order and cuts
// it into parts of whole streams; the workers apply the parts, each in a
// transaction of its own, in whatever order they take them. Finish then
// writes, in one transaction, what depends on the order across streams.
func (rb *rebuild) foldStreams(ctx context.Context, prog progress, upTo eventstore.Position) error {
	sf, ok := rb.rn.p.(StreamFolder)
	if !ok {
		return nil
	}
	reader, ok := rb.rt.store.(eventstore.CategoryReader)
	filter := rb.rn.p.Filter()
	if !ok || len(filter.Categories) == 0 || upTo == eventstore.Start {
		return nil
	}
	conns, err := rb.acquireWorkers(ctx, rebuildWorkers(rb.rt.pool))
	if err != nil {
		return err
	}
	defer func() {
		for _, c := range conns {
			releaseRelaxed(c)
		}
	}()
	start := time.Now()
	rb.rt.log.Info("projection rebuild reads stream by stream", "projector", rb.rn.name, "up_to", upTo.String(),
		"categories", filter.Categories, "workers", len(conns))

	fold := sf.FoldStreams()
	var (
		applied atomic.Int64
		read    int64
		newest  eventstore.Event // the latest in the log of the events read
		parts   = make(chan []eventstore.Event, len(conns))
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(parts)
		return readStreams(gctx, reader, slices.Sorted(slices.Values(filter.Categories)), upTo,
			rebuildBatchFactor*rb.rn.batchSize, func(events []eventstore.Event) error {
				matching := rb.filter(events)
				if len(matching) == 0 {
					return nil
				}
				select {
				case parts <- matching:
				case <-gctx.Done():
					return gctx.Err()
				}
				read += int64(len(matching))
				for _, e := range matching {
					if newest.Position.Less(e.Position) {
						newest = e
					}
				}
				prog.update(read, -1)
				return nil
			})
	})
	stopReport := rb.reportFold(ctx, &applied)
	for _, conn := range conns {
		g.Go(func() error {
			for events := range parts {
				err := rb.inShadow(gctx, conn, func(tx pgx.Tx) error {
					if err := guarded(func() error { return fold.Apply(gctx, tx, rb.shadow, events) }); err != nil {
						return fmt.Errorf("fold %d events of %s to %s: %w", len(events), events[0].Stream,
							events[len(events)-1].Stream, err)
					}
					return nil
				})
				if err != nil {
					return err
				}
				applied.Add(int64(len(events)))
			}
			return nil
		})
	}
	err = g.Wait()
	stopReport()
	if errors.Is(err, eventstore.ErrReadTooLarge) {
		return rb.unfold(ctx, err)
	}
	if err != nil {
		return err
	}
	err = rb.inShadow(ctx, conns[0], func(tx pgx.Tx) error {
		if err := guarded(func() error { return fold.Finish(ctx, tx, rb.shadow) }); err != nil {
			return fmt.Errorf("finish fold: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	rb.recorded = newest.RecordedAt
	rb.pos = upTo
	rb.events = read
	rb.applied = read
	rb.rt.log.Info("projection rebuild read stream by stream; going on in log order", "projector", rb.rn.name,
		"events", rb.applied, "took", time.Since(start).Round(time.Millisecond).String())
	return rb.record(ctx)
}

// reportFold records, every second until the answered stop is called,
// how many events the fold has applied, for status to show; the position
// stays where the rebuild began, since no prefix of the log is done until
// the fold is.
func (rb *rebuild) reportFold(ctx context.Context, applied *atomic.Int64) (stop func()) {
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			rb.applied = applied.Load()
			if err := rb.record(ctx); err != nil && ctx.Err() == nil {
				// The fold's own next transaction stops on a rebuild taken
				// over; any other failure costs only a stale count.
				rb.rt.log.Warn("record fold progress", "projector", rb.rn.name, "err", err)
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}

// unfold empties the shadow tables a fold that could not read its
// categories (cause) had begun to fill, and puts the rebuild back where it
// began, so that fill reads the whole log in its order instead. It takes a
// connection of its own: the workers' were cancelled mid-statement.
func (rb *rebuild) unfold(ctx context.Context, cause error) error {
	rb.rt.log.Warn("projection rebuild cannot read stream by stream; reading the log in its order instead",
		"projector", rb.rn.name, "err", cause)
	conn, err := rb.rt.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire: %w", err)
	}
	defer conn.Release()
	err = rb.inShadow(ctx, conn, func(tx pgx.Tx) error {
		for _, t := range sortedTables(rb.shadow) {
			if _, err := tx.Exec(ctx, `TRUNCATE `+ident(rb.shadow[t])); err != nil {
				return fmt.Errorf("empty %s: %w", rb.shadow[t], err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	rb.applied, rb.events, rb.pos, rb.recorded = 0, 0, eventstore.Start, time.Time{}
	return rb.record(ctx)
}

// readStreams reads categories stream by stream up to upTo and hands emit
// parts of whole streams, in order: a part closes once it holds n events
// and the next event begins another stream.
func readStreams(ctx context.Context, r eventstore.CategoryReader, categories []string, upTo eventstore.Position, n int,
	emit func([]eventstore.Event) error) error {
	for _, cat := range categories {
		var part []eventstore.Event
		err := r.ReadCategory(ctx, cat, upTo, func(e eventstore.Event) error {
			if len(part) >= n && e.Stream != part[len(part)-1].Stream {
				if err := emit(part); err != nil {
					return err
				}
				part = nil
			}
			part = append(part, e)
			return nil
		})
		if err != nil {
			return err
		}
		if len(part) > 0 {
			if err := emit(part); err != nil {
				return err
			}
		}
	}
	return nil
}
