package projections

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/clubcrm/crm/eventstore"
)

// foldStreams fills the shadow tables of a StreamFolder stream by stream,
// up to upTo, when the store reads categories that way; it leaves the
// rebuild at upTo, from where fill goes on in log order. It does nothing
// for other projectors and stores, or a filter that names no category.
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
		read   int64
		newest eventstore.Event // the latest in the log of the events read
		parts  = make(chan []eventstore.Event, len(conns))
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
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
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
