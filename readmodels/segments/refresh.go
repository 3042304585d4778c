package segments

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/clubcrm/crm/adapters/postgres"
	"github.com/clubcrm/crm/domain/segment"
)

// Result is what a full refresh did: POST /segments/{id}/refresh answers it.
type Result struct {
	SegmentID  uuid.UUID `json:"segmentId"`
	Added      int       `json:"added"`
	Removed    int       `json:"removed"`
	Total      int64     `json:"total" doc:"members after the refresh"`
	DurationMs int64     `json:"durationMs" doc:"time the refresh took in the database, in milliseconds"`
}

// Refresher recomputes whole segments: on request, and on a schedule for
// what changes with time alone (withinLast windows, scores the daily
// rescoring moved).
type Refresher struct {
	Pool *pgxpool.Pool
	// Clock answers now (tests move it); time.Now when nil.
	Clock func() time.Time
	Log   *slog.Logger
}

func (r *Refresher) now() time.Time {
	if r.Clock != nil {
		return r.Clock().UTC()
	}
	return time.Now().UTC()
}

// Refresh recomputes segment id of tenant now, in one transaction bound to
// the tenant: its membership, state and outbox move together. A segment
// that does not exist, or was deleted, answers segment.ErrNotFound.
func (r *Refresher) Refresh(ctx context.Context, tenant string, id uuid.UUID) (Result, error) {
	var res Result
	err := postgres.InTenant(ctx, r.Pool, tenant, func(tx pgx.Tx) error {
		var err error
		res, err = refreshOne(ctx, tx, tenant, id, r.now())
		return err
	})
	return res, err
}

// refreshOne locks, recomputes and records one segment in q's transaction.
func refreshOne(ctx context.Context, q Querier, tenant string, id uuid.UUID, now time.Time) (Result, error) {
	if err := lock(ctx, q, tenant, id); err != nil {
		return Result{}, err
	}
	l, err := one(ctx, q, tenant, id)
	if err != nil {
		return Result{}, err
	}
	start := time.Now()
	c, err := refresh(ctx, q, l, now, nil)
	if err != nil {
		return Result{}, err
	}
	took := time.Since(start)
	if err := record(ctx, q, tenant, id, l.Version, c, ReasonRefresh, now, &took); err != nil {
		return Result{}, err
	}
	return Result{SegmentID: id, Added: len(c.Added), Removed: len(c.Removed), Total: c.Total, DurationMs: took.Milliseconds()}, nil
}

// RefreshLockKey is the session advisory lock the scheduled refresh's
// leader holds ("crm-sgrf").
const RefreshLockKey = 0x63726d2d73677266

// DefaultRefreshInterval is how often every rule-based segment is
// recomputed whole.
const DefaultRefreshInterval = 15 * time.Minute

// Job recomputes every live DYNAMIC and SMART segment every Interval, one
// segment per transaction, in one process at a time (RefreshLockKey).
// Events move membership within a second (MembershipProjector); the job
// catches what moves with time alone.
type Job struct {
	Refresher *Refresher
	Interval  time.Duration
}

// Run runs the job until ctx ends.
func (j *Job) Run(ctx context.Context) error {
	interval := j.Interval
	if interval <= 0 {
		interval = DefaultRefreshInterval
	}
	postgres.Every(ctx, interval, func(ctx context.Context) {
		n, changed, err := j.RunOnce(ctx)
		log := j.Refresher.Log
		if log == nil {
			log = slog.Default()
		}
		switch {
		case ctx.Err() != nil:
		case err != nil:
			log.Warn("segment refresh: run failed; retrying at the next interval", slog.Any("error", err))
		case n > 0:
			log.Info("segments refreshed", slog.Int("segments", n), slog.Int("changed", changed))
		}
	})
	return nil
}

// RunOnce refreshes every rule-based segment if this process leads,
// answering how many it refreshed and how many of them changed.
func (j *Job) RunOnce(ctx context.Context) (refreshed, changed int, err error) {
	r := j.Refresher
	_, err = postgres.Leading(ctx, r.Pool, RefreshLockKey, func(*pgx.Conn) error {
		rows, err := r.Pool.Query(ctx, `SELECT tenant_id, id FROM `+SegmentsTable+`
WHERE deleted_at IS NULL AND type <> 'STATIC' ORDER BY tenant_id, id`)
		if err != nil {
			return fmt.Errorf("list segments: %w", err)
		}
		type key struct {
			tenant string
			id     uuid.UUID
		}
		keys, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (key, error) {
			var k key
			return k, row.Scan(&k.tenant, &k.id)
		})
		if err != nil {
			return fmt.Errorf("list segments: %w", err)
		}
		for _, k := range keys {
			res, err := r.Refresh(ctx, k.tenant, k.id)
			var bad segment.ErrInvalid
			if IsNotFound(err) {
				continue // deleted meanwhile
			}
			if errors.As(err, &bad) {
				// Left as it is (see loadLive); the others go on.
				continue
			}
			if err != nil {
				return fmt.Errorf("tenant %s: %w", k.tenant, err)
			}
			refreshed++
			if res.Added+res.Removed > 0 {
				changed++
			}
		}
		return nil
	})
	return refreshed, changed, err
}
