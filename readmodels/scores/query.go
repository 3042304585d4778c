package scores

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/clubcrm/crm/adapters/postgres"
	"github.com/clubcrm/crm/domain/scoring"
	"github.com/clubcrm/crm/readmodels/customers"
)

// ErrNotScored answers a profile the scores projector has not reached.
var ErrNotScored = errors.New("not scored yet")

// ModelAt answers a version of a tenant's model, for explanations of
// scores computed under it.
type ModelAt interface {
	At(ctx context.Context, tenant string, version uint64) (scoring.Versioned, error)
}

// Reader answers queries over the scores.
type Reader struct {
	DB     postgres.Beginner
	Models ModelAt
}

// Explanation is a profile's scores and why: every component with its raw
// input, normalised value, weight and contribution, under the model
// version and as of the day they were computed for.
type Explanation struct {
	CustomerID      uuid.UUID     `json:"customerId"`
	RequestedID     *uuid.UUID    `json:"requestedId,omitempty" doc:"the id asked for, when it was merged into customerId"`
	EngagementScore float64       `json:"engagementScore"`
	ChurnRiskScore  float64       `json:"churnRiskScore"`
	ModelVersion    int           `json:"modelVersion" doc:"the tenant's scoring model version the scores were computed under (0: the built-in model)"`
	ScoredOn        string        `json:"scoredOn" doc:"the day (UTC) the scores were computed for"`
	ComputedAt      time.Time     `json:"computedAt"`
	ChurnRiskHigh   bool          `json:"churnRiskHigh" doc:"churn risk has crossed the model's alert threshold and not yet fallen back below its clear threshold"`
	Engagement      scoring.Score `json:"engagement"`
	ChurnRisk       scoring.Score `json:"churnRisk"`
}

// Explain answers profile id's scores with their components (a merged-away
// id answers its survivor's).
func (r Reader) Explain(ctx context.Context, tenant string, id uuid.UUID) (Explanation, error) {
	var x Explanation
	var raw []byte
	var on time.Time
	err := postgres.InTenant(ctx, r.DB, tenant, func(tx pgx.Tx) error {
		sid, err := customers.Survivor(ctx, tx, tenant, id)
		if err != nil {
			return err
		}
		x.CustomerID = sid
		if sid != id {
			req := id
			x.RequestedID = &req
		}
		return tx.QueryRow(ctx, `SELECT s.engagement_score, s.churn_risk_score, s.model_version, s.scored_on, s.computed_at, s.inputs,
			coalesce(a.churn_high, false)
			FROM customer_scores s LEFT JOIN score_alerts a ON a.tenant_id = s.tenant_id AND a.customer_id = s.customer_id
			WHERE s.tenant_id = $1 AND s.customer_id = $2`, tenant, sid).
			Scan(&x.EngagementScore, &x.ChurnRiskScore, &x.ModelVersion, &on, &x.ComputedAt, &raw, &x.ChurnRiskHigh)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return Explanation{}, fmt.Errorf("scores of %s: %w", id, ErrNotScored)
	}
	if err != nil {
		return Explanation{}, fmt.Errorf("scores of %s: %w", id, err)
	}
	in, err := scoring.Decode(raw)
	if err != nil {
		return Explanation{}, fmt.Errorf("scores of %s: %w", id, err)
	}
	m, err := r.Models.At(ctx, tenant, uint64(x.ModelVersion))
	if err != nil {
		return Explanation{}, fmt.Errorf("scores of %s: %w", id, err)
	}
	day := scoring.DayOf(on)
	res := scoring.Compute(m.Model, in, day)
	x.ScoredOn, x.ComputedAt = day.Time().Format(time.DateOnly), x.ComputedAt.UTC()
	x.Engagement, x.ChurnRisk = res.Engagement, res.Churn
	return x, nil
}

// Bucket is one bar of a histogram of scores.
type Bucket struct {
	From  float64 `json:"from"`
	To    float64 `json:"to" doc:"exclusive, except 100 in the last bucket"`
	Count int     `json:"count"`
}

// Distribution summarises one score over the tenant's profiles.
type Distribution struct {
	Average float64  `json:"average"`
	Median  float64  `json:"median"`
	Buckets []Bucket `json:"buckets"`
}

// Group is the scores of the profiles sharing a lifecycle stage or tier.
type Group struct {
	Key               string  `json:"key"`
	Profiles          int     `json:"profiles"`
	AverageEngagement float64 `json:"averageEngagement"`
	AverageChurnRisk  float64 `json:"averageChurnRisk"`
}

// TrendPoint is one day's snapshot.
type TrendPoint struct {
	Day               string  `json:"day"`
	Profiles          int     `json:"profiles"`
	AverageEngagement float64 `json:"averageEngagement"`
	AverageChurnRisk  float64 `json:"averageChurnRisk"`
	HighChurnRisk     int     `json:"highChurnRisk"`
	ModelVersion      int     `json:"modelVersion"`
}

// Analytics is GET /analytics/engagement.
type Analytics struct {
	Profiles         int          `json:"profiles" doc:"open profiles with scores"`
	HighChurnRisk    int          `json:"highChurnRisk" doc:"profiles whose churn risk is above the alert threshold (crm.churn.risk.high raised, not cleared)"`
	Engagement       Distribution `json:"engagement"`
	ChurnRisk        Distribution `json:"churnRisk"`
	ByLifecycleStage []Group      `json:"byLifecycleStage"`
	ByTier           []Group      `json:"byTier" doc:"the 50 largest membership tiers; profiles with none under \"\""`
	Trend            []TrendPoint `json:"trend" doc:"daily snapshots, oldest first"`
}

// Analytics answers the tenant's score distributions now and the daily
// trend over the last days snapshots.
func (r Reader) Analytics(ctx context.Context, tenant string, days int) (Analytics, error) {
	out := Analytics{ByLifecycleStage: []Group{}, ByTier: []Group{}, Trend: []TrendPoint{}}
	err := postgres.InTenant(ctx, r.DB, tenant, func(tx pgx.Tx) error {
		var eb, cb []int32
		if err := tx.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE a.churn_high),
    coalesce(avg(s.engagement_score), 0), coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY s.engagement_score), 0),
    coalesce(avg(s.churn_risk_score), 0), coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY s.churn_risk_score), 0),
    `+bucketsSQL("s.engagement_score")+`, `+bucketsSQL("s.churn_risk_score")+`
FROM customer_scores s LEFT JOIN score_alerts a ON a.tenant_id = s.tenant_id AND a.customer_id = s.customer_id
WHERE s.tenant_id = $1`, tenant).Scan(&out.Profiles, &out.HighChurnRisk, &out.Engagement.Average, &out.Engagement.Median,
			&out.ChurnRisk.Average, &out.ChurnRisk.Median, &eb, &cb); err != nil {
			return fmt.Errorf("distributions: %w", err)
		}
		out.Engagement.Buckets, out.ChurnRisk.Buckets = buckets(eb), buckets(cb)
		group := func(col string, limit int) ([]Group, error) {
			rows, err := tx.Query(ctx, fmt.Sprintf(`SELECT coalesce(%s, ''), count(*), avg(s.engagement_score), avg(s.churn_risk_score)
FROM customer_scores s JOIN customers c ON c.tenant_id = s.tenant_id AND c.id = s.customer_id
WHERE s.tenant_id = $1 AND c.status <> 'MERGED' GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT %d`, col, limit), tenant)
			if err != nil {
				return nil, err
			}
			return pgx.CollectRows(rows, pgx.RowToStructByPos[Group])
		}
		var err error
		if out.ByLifecycleStage, err = group("c.lifecycle_stage", 20); err != nil {
			return fmt.Errorf("by lifecycle stage: %w", err)
		}
		if out.ByTier, err = group("c.membership_tier", 50); err != nil {
			return fmt.Errorf("by tier: %w", err)
		}
		rows, err := tx.Query(ctx, `SELECT to_char(day, 'YYYY-MM-DD'), profiles, avg_engagement, avg_churn_risk, high_churn_risk, model_version
FROM score_snapshots WHERE tenant_id = $1 AND day > current_date - $2::int ORDER BY day`, tenant, days)
		if err != nil {
			return fmt.Errorf("trend: %w", err)
		}
		out.Trend, err = pgx.CollectRows(rows, pgx.RowToStructByPos[TrendPoint])
		if err != nil {
			return fmt.Errorf("trend: %w", err)
		}
		return nil
	})
	if err != nil {
		return Analytics{}, fmt.Errorf("engagement analytics: %w", err)
	}
	for _, g := range [][]Group{out.ByLifecycleStage, out.ByTier} {
		for i := range g {
			g[i].AverageEngagement, g[i].AverageChurnRisk = round1(g[i].AverageEngagement), round1(g[i].AverageChurnRisk)
		}
	}
	for _, d := range []*Distribution{&out.Engagement, &out.ChurnRisk} {
		d.Average, d.Median = round1(d.Average), round1(d.Median)
	}
	for i := range out.Trend {
		out.Trend[i].AverageEngagement, out.Trend[i].AverageChurnRisk = round1(out.Trend[i].AverageEngagement), round1(out.Trend[i].AverageChurnRisk)
	}
	return out, nil
}

func buckets(counts []int32) []Bucket {
	out := make([]Bucket, Buckets)
	w := 100.0 / Buckets
	for i := range out {
		out[i] = Bucket{From: float64(i) * w, To: float64(i+1) * w}
		if i < len(counts) {
			out[i].Count = int(counts[i])
		}
	}
	return out
}

func round1(v float64) float64 { return float64(int64(v*10+0.5)) / 10 }
