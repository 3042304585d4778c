package servicebench

import (
	"context"
	"fmt"
	"strings"
	"time"
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
}

// rebuild rebuilds every projector that owns a read model, one after
// another, with crm serve stopped so that each has the machine to itself.
func (b *bench) rebuild(ctx context.Context) ([]RebuildResult, error) {
	cps, err := b.checkpoints(ctx)
	if err != nil {
		return nil, err
	}
	var events int64
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&events); err != nil {
		return nil, fmt.Errorf("count events: %w", err)
	}
	var out []RebuildResult
	for _, c := range cps {
		r := RebuildResult{Name: c.name, Events: events}
		prog := b.progress("rebuild "+c.name, int(events))
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
				if err := b.pool.QueryRow(ctx, `SELECT events_applied FROM projection_rebuilds WHERE name = $1`, c.name).Scan(&n); err == nil {
					prog.set(int(n))
				}
			}
		}()
		began := time.Now()
		rss, _, err := runCRM(ctx, b.serveEnv, "rebuild-"+c.name, "projections", "rebuild", c.name)
		r.Seconds = time.Since(began).Seconds()
		close(stop)
		<-watched
		switch {
		case err != nil && strings.Contains(err.Error(), "owns no read model"):
			r.Skipped = "owns no read model"
			r.Events, r.Seconds = 0, 0
		case err != nil:
			return out, err
		default:
			prog.done()
			r.PerSec = float64(events) / r.Seconds
			r.PeakRSS = rss
		}
		out = append(out, r)
	}
	return out, nil
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
		_, err := b.pool.Exec(ctx, `UPDATE projection_checkpoints SET commit_position = $2, prepare_position = $3, updated_at = now()
WHERE name = $1`, n, int64(head.Commit), int64(head.Prepare))
		if err != nil {
			return fmt.Errorf("move %s past the history: %w", n, err)
		}
	}
	return nil
}
