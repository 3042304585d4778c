package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/clubcrm/crm/adapters/postgres"
)

// LockKey is the session advisory lock the job's leader holds while it
// runs ("crm-mwin"): several `crm serve --roles scheduler` processes may
// run the job, and only one moves the windows at a time.
const LockKey = 0x63726d2d6d77696e

// Defaults of Job.
const (
	DefaultInterval  = time.Minute
	DefaultBatchSize = 5_000
)

// Job moves the rolling 30-day windows as days pass with no new events:
// it recomputes activityCount30d and bookingCount30d from the per-day
// counts for every profile whose window is not empty and was last computed
// before today. After the first run of a day it finds nothing to do, so it
// looks often (Interval) and works once a day, just after midnight UTC.
type Job struct {
	Pool      *pgxpool.Pool
	Clock     func() time.Time // now; time.Now when nil
	Interval  time.Duration    // how often it looks; DefaultInterval when zero
	BatchSize int              // profiles per statement; DefaultBatchSize when zero
	Log       *slog.Logger     // slog.Default() when nil
}

func (j *Job) now() time.Time {
	if j.Clock == nil {
		return time.Now()
	}
	return j.Clock()
}

func (j *Job) log() *slog.Logger {
	if j.Log == nil {
		return slog.Default()
	}
	return j.Log
}

// Run runs the job every Interval until ctx ends. Failures are logged and
// retried at the next look; it answers nil when ctx ends.
func (j *Job) Run(ctx context.Context) error {
	interval := j.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	postgres.Every(ctx, interval, func(ctx context.Context) {
		moved, led, err := j.RunOnce(ctx)
		switch {
		case ctx.Err() != nil:
		case err != nil:
			j.log().Warn("metrics windows: run failed; retrying at the next look", slog.Any("error", err))
		case led && moved > 0:
			j.log().Info("metrics windows moved", slog.Int("profiles", moved), slog.String("asOf", Today(j.now()).Format(time.DateOnly)))
		}
	})
	return nil
}

// RunOnce moves every window that is due, if this process can take the
// leader's lock; led reports whether it could (another process running the
// job answers led false, moved 0).
func (j *Job) RunOnce(ctx context.Context) (moved int, led bool, err error) {
	led, err = postgres.Leading(ctx, j.Pool, LockKey, func(conn *pgx.Conn) error {
		moved, err = Roll(ctx, conn, Today(j.now()), j.BatchSize)
		return err
	})
	if err != nil {
		return moved, led, fmt.Errorf("metrics windows: %w", err)
	}
	return moved, led, nil
}

// Execer runs a statement: a connection, a pool or a transaction.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

var _ Execer = (pgx.Tx)(nil)

// Roll recomputes, as of today, the windows of every profile whose counts
// are not zero and were computed before today, batch profiles per
// statement (each its own transaction), and answers how many it moved.
//
// A projector batch may write the same row meanwhile: it computes the sums
// as of its own today within its transaction and sets windows_as_of, and a
// row it has moved to today no longer matches here. rolling is stored as
// "either count is not zero", the predicate of the index the look-up uses
// (migration 00020).
func Roll(ctx context.Context, db Execer, today time.Time, batch int) (int, error) {
	if batch <= 0 {
		batch = DefaultBatchSize
	}
	sql := fmt.Sprintf(`WITH due AS (
    SELECT tenant_id, customer_id FROM %[1]s
    WHERE windows_as_of < $1::date AND rolling
    LIMIT $2
)
UPDATE %[1]s m SET activity_count_30d = coalesce(w.activities, 0), booking_count_30d = coalesce(w.bookings, 0),
    windows_as_of = $1::date, updated_at = now()
FROM due LEFT JOIN LATERAL (
    SELECT sum(d.activities)::int AS activities, sum(d.bookings)::int AS bookings FROM %[2]s d
    WHERE d.tenant_id = due.tenant_id AND d.customer_id = due.customer_id AND d.day > $1::date - %[3]d
) w ON true
WHERE m.tenant_id = due.tenant_id AND m.customer_id = due.customer_id AND m.windows_as_of < $1::date`, MetricsTable, DaysTable, Window)
	total := 0
	for {
		tag, err := db.Exec(ctx, sql, Today(today), batch)
		if err != nil {
			return total, fmt.Errorf("metrics windows: %w", err)
		}
		n := int(tag.RowsAffected())
		total += n
		if n == 0 {
			return total, nil
		}
	}
}
