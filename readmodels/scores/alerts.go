package scores

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/clubcrm/crm/commands"
	"github.com/clubcrm/crm/domain/scoring"
	"github.com/clubcrm/crm/eventstore"
)

// Defaults of Alerter.
const (
	DefaultAlertInterval  = 250 * time.Millisecond
	DefaultAlertBatchSize = 2_000
)

// Alerter turns score changes into events: it looks at the profiles whose
// scores changed (score_alert_due), decides with scoring.Decide against
// what it remembers of each (score_alerts), appends the decided events to
// the profiles' streams and then saves its state, in that order. A crash
// in between decides the same events again, with the same sequence
// numbers and so the same event ids: the append is a no-op. Rows are
// taken FOR UPDATE SKIP LOCKED, so several processes may run it.
type Alerter struct {
	Pool      *pgxpool.Pool
	Store     eventstore.Store
	Models    Models
	Interval  time.Duration
	BatchSize int
	Log       *slog.Logger
}

func (a *Alerter) log() *slog.Logger {
	if a.Log == nil {
		return slog.Default()
	}
	return a.Log
}

// Run looks every Interval until ctx ends, at once again while there is
// more to do.
func (a *Alerter) Run(ctx context.Context) error {
	interval := a.Interval
	if interval <= 0 {
		interval = DefaultAlertInterval
	}
	for {
		n, err := a.RunOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			a.log().Warn("score alerts: run failed; retrying", slog.Any("error", err))
		}
		if n == 0 || err != nil {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(interval):
			}
		}
	}
}

// RunOnce decides one batch and answers how many rows it looked at.
func (a *Alerter) RunOnce(ctx context.Context) (int, error) {
	batch := a.BatchSize
	if batch <= 0 {
		batch = DefaultAlertBatchSize
	}
	models := a.Models
	if models == nil {
		models = DefaultModels{}
	}
	n := 0
	err := pgx.BeginFunc(ctx, a.Pool, func(tx pgx.Tx) error {
		// Every statement here reaches its rows by key, so its work grows
		// with the changed scores. Going by statistics taken while most
		// rows were due (after a rebuild, every row is), the planner
		// otherwise chose sequential scans of customer_scores and a hash
		// of every profile's alert state: over 200,000 profiles, 83–131 ms
		// a batch of 2,000, against 43 ms this way.
		if _, err := tx.Exec(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
			return err
		}
		// The scores row is locked with its mark: the projector and the
		// job write the scores before the mark, so a change this batch
		// does not see waits for it and marks the row again after the
		// mark is cleared below.
		rows, err := tx.Query(ctx, `SELECT s.tenant_id, s.customer_id, s.engagement_score, s.churn_risk_score, s.model_version, s.scored_on,
    coalesce(a.churn_high, false), coalesce(a.crossings, 0), a.engagement_ref, coalesce(a.ref_model, 0), coalesce(a.drops, 0)
FROM (
    SELECT s.tenant_id, s.customer_id, s.engagement_score, s.churn_risk_score, s.model_version, s.scored_on
    FROM score_alert_due d JOIN customer_scores s ON s.tenant_id = d.tenant_id AND s.customer_id = d.customer_id
    ORDER BY d.tenant_id, d.customer_id LIMIT $1 FOR UPDATE OF d, s SKIP LOCKED
) AS s
LEFT JOIN LATERAL (
    SELECT churn_high, crossings, engagement_ref, ref_model, drops FROM score_alerts
    WHERE tenant_id = s.tenant_id AND customer_id = s.customer_id OFFSET 0
) AS a ON true`, batch)
		if err != nil {
			return err
		}
		type due struct {
			k       key
			e, c    float64
			version int
			on      time.Time
			st      scoring.AlertState
		}
		var list []due
		for rows.Next() {
			var d due
			if err := rows.Scan(&d.k.tenant, &d.k.id, &d.e, &d.c, &d.version, &d.on,
				&d.st.ChurnHigh, &d.st.Crossings, &d.st.EngagementRef, &d.st.RefModel, &d.st.Drops); err != nil {
				rows.Close()
				return err
			}
			list = append(list, d)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		n = len(list)
		if n == 0 {
			return nil
		}
		var decided []commands.ScoreAlert
		var tenants []string
		var ids []uuid.UUID
		var high []bool
		var crossings, refModels, drops []int32
		var refs []*float64
		cache := map[string]scoring.Versioned{}
		for _, d := range list {
			m, ok := cache[d.k.tenant]
			if !ok {
				if m, err = models.Current(ctx, d.k.tenant); err != nil {
					return err
				}
				cache[d.k.tenant] = m
			}
			alerts, st := scoring.Decide(m.Model.Alerts, d.st, d.e, d.c, d.version)
			for _, al := range alerts {
				decided = append(decided, commands.ScoreAlert{Tenant: d.k.tenant, CustomerID: d.k.id.String(), Alert: al,
					Engagement: d.e, Churn: d.c, Model: d.version, ScoredOn: scoring.DayOf(d.on)})
			}
			tenants, ids = append(tenants, d.k.tenant), append(ids, d.k.id)
			high, crossings = append(high, st.ChurnHigh), append(crossings, int32(st.Crossings))
			refs, refModels, drops = append(refs, st.EngagementRef), append(refModels, int32(st.RefModel)), append(drops, int32(st.Drops))
		}
		if err := commands.RecordAlerts(ctx, a.Store, decided); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO score_alerts AS a (tenant_id, customer_id, churn_high, crossings, engagement_ref, ref_model, drops, updated_at)
SELECT *, now() FROM unnest($1::text[], $2::uuid[], $3::bool[], $4::int[], $5::float8[], $6::int[], $7::int[])
ON CONFLICT (tenant_id, customer_id) DO UPDATE SET churn_high = excluded.churn_high, crossings = excluded.crossings,
    engagement_ref = excluded.engagement_ref, ref_model = excluded.ref_model, drops = excluded.drops, updated_at = excluded.updated_at`,
			tenants, ids, high, crossings, refs, refModels, drops); err != nil {
			return fmt.Errorf("save alert state: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM score_alert_due
WHERE (tenant_id, customer_id) IN (SELECT * FROM unnest($1::text[], $2::uuid[]))`, tenants, ids); err != nil {
			return fmt.Errorf("clear alert marks: %w", err)
		}
		if len(decided) > 0 {
			a.log().Info("score alerts recorded", slog.Int("events", len(decided)), slog.Int("profiles", n))
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("score alerts: %w", err)
	}
	return n, nil
}
