// Package activitiestest projects a test's event log with the customers,
// timeline, notes and metrics projectors, one transaction per batch as the
// projections runtime does, without running the runtime.
package activitiestest

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/clubcrm/crm/projections"
	"github.com/clubcrm/crm/readmodels/activities"
	"github.com/clubcrm/crm/readmodels/customers/customerstest"
	"github.com/clubcrm/crm/readmodels/metrics"
)

// Runner applies the projectors to what a customerstest.Env appended.
type Runner struct {
	Env        *customerstest.Env
	Projectors []projections.Projector
	done       int
}

// New answers a Runner of the timeline, notes and metrics projectors (the
// metrics on clock; time.Now when nil). The customers projector runs too,
// through the Env.
func New(env *customerstest.Env, clock func() time.Time) *Runner {
	return &Runner{Env: env, Projectors: []projections.Projector{activities.Projector{}, activities.NotesProjector{}, metrics.Projector{Clock: clock}}}
}

// Project applies every event appended since the last call, size events a
// batch (all at once when size < 1).
func (r *Runner) Project(size int) {
	t := r.Env.T
	t.Helper()
	r.Env.Project(size)
	all := r.Env.Events()
	pending := all[r.done:]
	r.done = len(all)
	if size < 1 {
		size = max(len(pending), 1)
	}
	for _, p := range r.Projectors {
		tables := projections.Tables{}
		for _, name := range p.Tables() {
			tables[name] = name
		}
		filter := p.Filter()
		for rest := pending; len(rest) > 0; {
			n := min(size, len(rest))
			var matching = rest[:0:0]
			for _, e := range rest[:n] {
				if filter.Match(e) {
					matching = append(matching, e)
				}
			}
			err := pgx.BeginFunc(context.Background(), r.Env.Pool, func(tx pgx.Tx) error {
				return p.Apply(context.Background(), tx, tables, matching)
			})
			if err != nil {
				t.Fatalf("activitiestest: %s: %v", p.Name(), err)
			}
			rest = rest[n:]
		}
	}
}
