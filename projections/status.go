package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/clubcrm/crm/eventstore"
)

// Projector states in Status.
const (
	StateRunning = "running" // a process holds the projector's lock
	StateFailing = "failing" // running, but its latest batch failed (being retried)
	StateStopped = "stopped" // no process runs it
)

// Status describes one projector as the database sees it, whichever
// process runs it.
type Status struct {
	Name       string
	Checkpoint eventstore.Position
	// UpdatedAt is when the checkpoint last moved; zero if it never has.
	UpdatedAt time.Time
	Lag       Lag
	// Leader names the session holding the projector's lock (its
	// application name: process id and host), or is empty when none does.
	Leader string
	// Here reports that this process is the leader.
	Here  bool
	State string
	// LastError is the error of the latest failed batch while failing.
	LastError string
	// Rebuild describes a rebuild in progress, if any.
	Rebuild *RebuildStatus
}

// RebuildStatus describes a rebuild in progress.
type RebuildStatus struct {
	State     string // "building" or "swapping"
	Position  eventstore.Position
	Events    int64
	StartedAt time.Time
	// Orphaned reports that no process holds the rebuild's lock: the
	// rebuild died, and its shadow tables wait for the next Rebuild.
	Orphaned bool
}

type checkpointRow struct {
	pos       eventstore.Position
	updatedAt time.Time
	lastError string // empty unless the latest attempt failed
}

// checkpoints answers the stored checkpoints of the runtime's projectors
// (absent ones are at the start) and the database's clock.
func (r *Runtime) checkpoints(ctx context.Context) (map[string]checkpointRow, time.Time, error) {
	rows, err := r.pool.Query(ctx, `SELECT name, commit_position, prepare_position, updated_at, coalesce(last_error, ''), clock_timestamp()
FROM projection_checkpoints WHERE name = ANY($1)`, r.names)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("read checkpoints: %w", err)
	}
	out := map[string]checkpointRow{}
	var now time.Time
	var (
		name string
		c, p int64
		row  checkpointRow
	)
	_, err = pgx.ForEachRow(rows, []any{&name, &c, &p, &row.updatedAt, &row.lastError, &now}, func() error {
		row.pos = pos(c, p)
		out[name] = row
		return nil
	})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("read checkpoints: %w", err)
	}
	if now.IsZero() {
		if err := r.pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&now); err != nil {
			return nil, time.Time{}, fmt.Errorf("read database clock: %w", err)
		}
	}
	return out, now, nil
}

// holders answers, per lock key of the namespace, the application name (or
// process id) of the session holding it in this database.
func (r *Runtime) holders(ctx context.Context, space int32) (map[int32]string, error) {
	rows, err := r.pool.Query(ctx, `SELECT l.objid::bigint, coalesce(nullif(a.application_name, ''), 'pid ' || l.pid)
FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
  AND l.classid = $1::bigint::oid
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`, int64(space))
	if err != nil {
		return nil, fmt.Errorf("read lock holders: %w", err)
	}
	out := map[int32]string{}
	var key int64
	var who string
	_, err = pgx.ForEachRow(rows, []any{&key, &who}, func() error {
		out[int32(key)] = who
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read lock holders: %w", err)
	}
	return out, nil
}

// Status reports every projector of the runtime: checkpoint, lag, leader
// and state. It reads the event store to measure lag (see Lag).
func (r *Runtime) Status(ctx context.Context) ([]Status, error) {
	cps, now, err := r.checkpoints(ctx)
	if err != nil {
		return nil, err
	}
	leaders, err := r.holders(ctx, leaderLockSpace)
	if err != nil {
		return nil, err
	}
	rebuilders, err := r.holders(ctx, rebuildLockSpace)
	if err != nil {
		return nil, err
	}
	rebuilds, err := r.rebuilds(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Status, 0, len(r.names))
	for _, name := range r.names {
		cp := cps[name]
		lag, err := measureLag(ctx, r.store, cp.pos, now)
		if err != nil {
			return nil, fmt.Errorf("status of %s: %w", name, err)
		}
		key := lockKey(name)
		s := Status{
			Name:       name,
			Checkpoint: cp.pos,
			Lag:        lag,
			Leader:     leaders[key],
			Here:       r.elector.leads(name),
			State:      StateStopped,
		}
		if cp.pos != eventstore.Start {
			s.UpdatedAt = cp.updatedAt
		}
		if s.Leader != "" || s.Here {
			s.State = StateRunning
			if cp.lastError != "" {
				s.State, s.LastError = StateFailing, cp.lastError
			}
		}
		if rb, ok := rebuilds[name]; ok {
			_, held := rebuilders[key]
			rb.Orphaned = !held
			s.Rebuild = &rb
		}
		out = append(out, s)
	}
	return out, nil
}

func (r *Runtime) rebuilds(ctx context.Context) (map[string]RebuildStatus, error) {
	rows, err := r.pool.Query(ctx, `SELECT name, state, commit_position, prepare_position, events_applied, started_at
FROM projection_rebuilds WHERE name = ANY($1)`, r.names)
	if err != nil {
		return nil, fmt.Errorf("read rebuilds: %w", err)
	}
	out := map[string]RebuildStatus{}
	var (
		name string
		c, p int64
		rb   RebuildStatus
	)
	_, err = pgx.ForEachRow(rows, []any{&name, &rb.State, &c, &p, &rb.Events, &rb.StartedAt}, func() error {
		rb.Position = pos(c, p)
		out[name] = rb
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read rebuilds: %w", err)
	}
	return out, nil
}
