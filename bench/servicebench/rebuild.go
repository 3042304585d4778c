package servicebench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
)

// RebuildResult is one read model rebuilt from the whole log by
// `crm projections rebuild NAME` in a process of its own.
type RebuildResult struct {
	Name    string  `json:"name"`
	Events  int64   `json:"events"` // the whole log: a rebuild reads every event
	Seconds float64 `json:"seconds"`
	PerSec  float64 `json:"perSec"`
	PeakRSS int64   `json:"peakRssBytes"`
	Skipped string  `json:"skipped,omitempty"`
	// Parallel is how many rebuilds ran at once with this one (0 or 1:
	// alone).
	Parallel int `json:"parallel,omitempty"`
}

// rebuild rebuilds every projector that owns a read model (or those
// Config.Rebuild names), one after another with crm serve stopped so that
// each has the machine to itself, or all at once (Config.ParallelRebuild).
func (b *bench) rebuild(ctx context.Context) ([]RebuildResult, error) {
	cps, err := b.checkpoints(ctx)
	if err != nil {
		return nil, err
	}
	var events int64
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&events); err != nil {
		return nil, fmt.Errorf("count events: %w", err)
	}
	var names []string
	for _, c := range cps {
		if len(b.cfg.Rebuild) == 0 || slices.Contains(b.cfg.Rebuild, c.name) {
			names = append(names, c.name)
		}
	}
	out := make([]RebuildResult, len(names))
	if !b.cfg.ParallelRebuild {
		for i, name := range names {
			if out[i], err = b.rebuildOne(ctx, name, events); err != nil {
				return out[:i], err
			}
		}
		return out, nil
	}
	g, gctx := errgroup.WithContext(ctx)
	for i, name := range names {
		g.Go(func() error {
			var err error
			out[i], err = b.rebuildOne(gctx, name, events)
			if err == nil {
				out[i].Parallel = len(names)
			}
			return err
		})
	}
	return out, g.Wait()
}

// rebuildOne runs `crm projections rebuild name` over a log of events.
func (b *bench) rebuildOne(ctx context.Context, name string, events int64) (RebuildResult, error) {
	r := RebuildResult{Name: name, Events: events}
	prog := b.progress("rebuild "+name, int(events))
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		// The rebuild's row says how far it has got.
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Second):
			}
			var n int64
			if err := b.pool.QueryRow(ctx, `SELECT events_applied FROM projection_rebuilds WHERE name = $1`, name).Scan(&n); err == nil {
				prog.set(int(n))
			}
		}
	}()
	began := time.Now()
	rss, _, err := runCRM(ctx, b.serveEnv, "rebuild-"+name, "projections", "rebuild", name)
	r.Seconds = time.Since(began).Seconds()
	close(stop)
	<-watched
	switch {
	case err != nil && strings.Contains(err.Error(), "owns no read model"):
		r.Skipped = "owns no read model"
		r.Events, r.Seconds = 0, 0
	case err != nil:
		return r, err
	default:
		prog.done()
		r.PerSec = float64(events) / r.Seconds
		r.PeakRSS = rss
	}
	return r, nil
}

// skipPast moves the checkpoints of the projectors that own no read model
// (the outbox) to the head. It is used only after the history was written
// without crm serve: publishing that history to crm.events would take the
// machine for many minutes during the query figures, and nobody reads it.
func (b *bench) skipPast(ctx context.Context, names []string) error {
	head, err := b.store.Head(ctx)
	if err != nil {
		return err
	}
	for _, n := range names {
		_, err := b.pool.Exec(ctx, `INSERT INTO projection_checkpoints (name, commit_position, prepare_position) VALUES ($1, $2, $3)
ON CONFLICT (name) DO UPDATE SET commit_position = $2, prepare_position = $3, updated_at = now()`, n, int64(head.Commit), int64(head.Prepare))
		if err != nil {
			return fmt.Errorf("move %s past the history: %w", n, err)
		}
	}
	return nil
}
