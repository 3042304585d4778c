package scores

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/clubcrm/crm/adapters/postgres"

	"github.com/clubcrm/crm/domain/scoring"
)

// LockKey is the session advisory lock the job's leader holds ("crm-scor").
const LockKey = 0x63726d2d73636f72

// Defaults of Job.
const (
	DefaultInterval  = time.Minute
	DefaultBatchSize = 2_000
)

// Job keeps scores moving without new events: once a day it rescores every
// profile (recency decays, windows slide), after a model change it rescores
// the tenant's profiles under the new version, and after each day's
// rescoring it takes the tenants' snapshots (the daily trend). One process
// at a time runs it (LockKey).
type Job struct {
	Pool      *pgxpool.Pool
	Models    Models
	Clock     func() time.Time
	Interval  time.Duration
	BatchSize int
	Log       *slog.Logger
	// Progress, when set, is told how many profiles each pass rescored.
	Progress func(done int)

	snapshotDay scoring.Day
}

func (j *Job) log() *slog.Logger {
	if j.Log == nil {
		return slog.Default()
	}
	return j.Log
}

func (j *Job) models() Models {
	if j.Models == nil {
		return DefaultModels{}
	}
	return j.Models
}

// Run runs the job every Interval until ctx ends.
func (j *Job) Run(ctx context.Context) error {
	interval := j.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	postgres.Every(ctx, interval, func(ctx context.Context) {
		n, led, err := j.RunOnce(ctx)
		switch {
		case ctx.Err() != nil:
		case err != nil:
			j.log().Warn("scores job: run failed; retrying at the next look", slog.Any("error", err))
		case led && n > 0:
			j.log().Info("scores rescored", slog.Int("profiles", n), slog.String("asOf", today(j.Clock).Time().Format(time.DateOnly)))
		}
	})
	return nil
}

// RunOnce does what is due, if this process can take the lock.
func (j *Job) RunOnce(ctx context.Context) (rescored int, led bool, err error) {
	led, err = postgres.Leading(ctx, j.Pool, LockKey, func(conn *pgx.Conn) error {
		day := today(j.Clock)
		if rescored, err = j.Rescore(ctx, conn, day); err != nil {
			return err
		}
		if j.snapshotDay != day {
			if err := Snapshot(ctx, conn, day); err != nil {
				return err
			}
			j.snapshotDay = day
		}
		return nil
	})
	if err != nil {
		return rescored, led, fmt.Errorf("scores job: %w", err)
	}
	return rescored, led, nil
}

// Rescore recomputes, batch by batch, every score computed before day or
// under a model version other than its tenant's current one, and answers
// how many it rescored.
func (j *Job) Rescore(ctx context.Context, db *pgx.Conn, day scoring.Day) (int, error) {
	batch := j.BatchSize
	if batch <= 0 {
		batch = DefaultBatchSize
	}
	total := 0
	pass := func(sql string, args ...any) error {
		for {
			n, err := j.rescoreBatch(ctx, db, day, sql, append(args, batch)...)
			if err != nil {
				return err
			}
			total += n
			if j.Progress != nil && n > 0 {
				j.Progress(total)
			}
			if n < batch {
				return nil
			}
		}
	}
	if err := pass(`SELECT tenant_id, customer_id, inputs, revision, engagement_score, churn_risk_score, model_version FROM customer_scores
		WHERE scored_on < $1::date ORDER BY scored_on LIMIT $2`, day.Time()); err != nil {
		return total, err
	}
	// Tenants whose rows carry another model version than the current: a
	// loose index scan finds the tenants, then each tenant's stale rows.
	rows, err := db.Query(ctx, `WITH RECURSIVE t AS (
    (SELECT tenant_id FROM customer_scores ORDER BY tenant_id LIMIT 1)
    UNION ALL
    SELECT (SELECT s.tenant_id FROM customer_scores s WHERE s.tenant_id > t.tenant_id ORDER BY s.tenant_id LIMIT 1) FROM t WHERE t.tenant_id IS NOT NULL
) SELECT tenant_id FROM t WHERE tenant_id IS NOT NULL`)
	if err != nil {
		return total, fmt.Errorf("scores job: tenants: %w", err)
	}
	tenants, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return total, fmt.Errorf("scores job: tenants: %w", err)
	}
	for _, t := range tenants {
		m, err := j.models().Current(ctx, t)
		if err != nil {
			return total, fmt.Errorf("scores job: model of %s: %w", t, err)
		}
		if err := pass(`SELECT tenant_id, customer_id, inputs, revision, engagement_score, churn_risk_score, model_version FROM customer_scores
			WHERE tenant_id = $1 AND model_version <> $2 LIMIT $3`, t, int(m.Version)); err != nil {
			return total, err
		}
	}
	return total, nil
}

// rescoreBatch rescores the rows sql selects (its last argument is the
// batch size) and answers how many it read. A row the projector rewrote
// meanwhile (another revision) is left as the projector wrote it.
func (j *Job) rescoreBatch(ctx context.Context, db *pgx.Conn, day scoring.Day, sql string, args ...any) (int, error) {
	rows, err := db.Query(ctx, sql, args...)
	if err != nil {
		return 0, fmt.Errorf("scores job: read: %w", err)
	}
	type due struct {
		k       key
		raw     []byte
		rev     int64
		e, c    float64
		version int
	}
	var list []due
	for rows.Next() {
		var d due
		if err := rows.Scan(&d.k.tenant, &d.k.id, &d.raw, &d.rev, &d.e, &d.c, &d.version); err != nil {
			rows.Close()
			return 0, fmt.Errorf("scores job: read: %w", err)
		}
		list = append(list, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("scores job: read: %w", err)
	}
	if len(list) == 0 {
		return 0, nil
	}
	models := map[string]scoring.Versioned{}
	var up upsert
	revs := make([]int64, 0, len(list))
	for _, d := range list {
		m, ok := models[d.k.tenant]
		if !ok {
			if m, err = j.models().Current(ctx, d.k.tenant); err != nil {
				return 0, fmt.Errorf("scores job: model of %s: %w", d.k.tenant, err)
			}
			models[d.k.tenant] = m
		}
		in, err := scoring.Decode(d.raw)
		if err != nil {
			return 0, fmt.Errorf("scores job: %s: %w", d.k.id, err)
		}
		in.Prune(day)
		e, c := scoring.Values(m.Model, in, day)
		changed := e != d.e || c != d.c || int(m.Version) != d.version
		up.add(d.k, in.Encode(), e, c, int(m.Version), changed)
		revs = append(revs, d.rev)
	}
	_, err = db.Exec(ctx, `WITH u AS (
    UPDATE customer_scores s SET engagement_score = x.e, churn_risk_score = x.r, model_version = x.v, inputs = x.i,
        scored_on = $8::date, computed_at = now()
    FROM unnest($1::text[], $2::uuid[], $3::float8[], $4::float8[], $5::int[], $6::bytea[], $7::bigint[], $9::bool[]) AS x(t, c, e, r, v, i, rev, d)
    WHERE s.tenant_id = x.t AND s.customer_id = x.c AND s.revision = x.rev
    RETURNING s.tenant_id, s.customer_id, x.d
)
INSERT INTO score_alert_due (tenant_id, customer_id) SELECT tenant_id, customer_id FROM u WHERE d ON CONFLICT DO NOTHING`,
		up.tenants, up.ids, up.engagement, up.churn, up.versions, pgtype.FlatArray[[]byte](up.inputs), revs, day.Time(), up.due)
	if err != nil {
		return 0, fmt.Errorf("scores job: write: %w", err)
	}
	return len(list), nil
}

// Snapshot records, for every tenant without one for day, the distribution
// of its scores: the daily trend of the engagement analytics.
func Snapshot(ctx context.Context, db *pgx.Conn, day scoring.Day) error {
	_, err := db.Exec(ctx, `INSERT INTO score_snapshots (tenant_id, day, profiles, avg_engagement, avg_churn_risk, high_churn_risk,
    engagement_buckets, churn_buckets, model_version)
SELECT s.tenant_id, $1::date, count(*), coalesce(avg(s.engagement_score), 0), coalesce(avg(s.churn_risk_score), 0),
    count(*) FILTER (WHERE a.churn_high),
    `+bucketsSQL("s.engagement_score")+`, `+bucketsSQL("s.churn_risk_score")+`, max(s.model_version)
FROM customer_scores s LEFT JOIN score_alerts a ON a.tenant_id = s.tenant_id AND a.customer_id = s.customer_id
WHERE NOT EXISTS (SELECT 1 FROM score_snapshots x WHERE x.tenant_id = s.tenant_id AND x.day = $1::date)
GROUP BY s.tenant_id
ON CONFLICT (tenant_id, day) DO NOTHING`, day.Time())
	if err != nil {
		return fmt.Errorf("scores snapshot: %w", err)
	}
	return nil
}

// Buckets is how many histogram buckets the analytics use: 0–10, 10–20,
// … 90–100 (100 falls in the last).
const Buckets = 10

// bucketsSQL answers an aggregate of a score column's histogram as int[].
func bucketsSQL(col string) string {
	return fmt.Sprintf(`(SELECT array_agg(coalesce(n, 0) ORDER BY b) FROM generate_series(1, %[2]d) b
        LEFT JOIN (SELECT width_bucket(least(v, 99.999), 0, 100, %[2]d) AS w, count(*)::int AS n FROM unnest(array_agg(%[1]s)) v GROUP BY 1) h ON h.w = b)`, col, Buckets)
}
