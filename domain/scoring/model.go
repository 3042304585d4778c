// Package scoring computes a profile's engagement score and churn risk
// (specification section 7) from its scoring inputs, under a versioned,
// per-tenant model, and decides when a change of score is worth an event
// (a churn-risk crossing, an engagement drop). It is pure: no I/O, and the
// day the scores are computed for is always given. docs/scoring.md has the
// formulas.
package scoring

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Weights of the five engagement components; they sum to 1.
type EngagementWeights struct {
	Recency   float64 `json:"recency"`
	Frequency float64 `json:"frequency"`
	Monetary  float64 `json:"monetary"`
	Breadth   float64 `json:"breadth"`
	Depth     float64 `json:"depth"`
}

// ChurnWeights of the five churn-risk factors; they sum to 1.
type ChurnWeights struct {
	ActivityDecline float64 `json:"activityDecline"`
	PaymentIssues   float64 `json:"paymentIssues"`
	EngagementDrop  float64 `json:"engagementDrop"`
	TierDowngrade   float64 `json:"tierDowngrade"`
	Complaints      float64 `json:"complaints"`
}

// Engagement parameters: how each component's raw input is normalised to
// 0–100.
type Engagement struct {
	Weights EngagementWeights `json:"weights"`
	// Recency: 100 on the day of the last activity, halving every
	// RecencyHalfLifeDays.
	RecencyHalfLifeDays float64 `json:"recencyHalfLifeDays"`
	// Frequency: activities per 30 days over the last FrequencyWindowDays,
	// x, scores 100·(1 − e^(−x/FrequencyScale)).
	FrequencyWindowDays int     `json:"frequencyWindowDays"`
	FrequencyScale      float64 `json:"frequencyScale"`
	// Monetary: payments received over the last MonetaryWindowDays, s
	// (minor units), scores 100·min(1, ln(1+s/100) / ln(1+target/100)).
	MonetaryWindowDays  int   `json:"monetaryWindowDays"`
	MonetaryTargetCents int64 `json:"monetaryTargetCents"`
	// Breadth: distinct channels engaged over the last BreadthWindowDays,
	// k, scores 100·min(1, k/BreadthTarget).
	BreadthWindowDays int `json:"breadthWindowDays"`
	BreadthTarget     int `json:"breadthTarget"`
	// Depth: over the last DepthWindowDays, the open rate (opens ÷
	// messages sent) against OpenRateTarget and the click rate against
	// ClickRateTarget, weighted OpenShare and 1 − OpenShare.
	DepthWindowDays int     `json:"depthWindowDays"`
	OpenRateTarget  float64 `json:"openRateTarget"`
	ClickRateTarget float64 `json:"clickRateTarget"`
	OpenShare       float64 `json:"openShare"`
}

// Churn parameters.
type Churn struct {
	Weights ChurnWeights `json:"weights"`
	// Activity decline: activities of the last DeclineRecentDays against
	// the member's own baseline, the average per DeclineRecentDays over
	// the DeclineBaselineDays before; a drop of DeclineFull (0.5: 50%) or
	// more is full risk. A baseline below DeclineMinBaseline is too little
	// history to decline from.
	DeclineRecentDays   int     `json:"declineRecentDays"`
	DeclineBaselineDays int     `json:"declineBaselineDays"`
	DeclineFull         float64 `json:"declineFull"`
	DeclineMinBaseline  float64 `json:"declineMinBaseline"`
	// Payment issues: each failed payment of the last PaymentWindowDays
	// adds PaymentFailurePoints; a membership status in OverdueStatuses is
	// full risk.
	PaymentWindowDays    int      `json:"paymentWindowDays"`
	PaymentFailurePoints float64  `json:"paymentFailurePoints"`
	OverdueStatuses      []string `json:"overdueStatuses"`
	// Engagement drop: email opens of the last OpensRecentDays against the
	// average per OpensRecentDays over the OpensBaselineDays before; a
	// baseline below OpensMinBaseline has nothing to stop.
	OpensRecentDays   int     `json:"opensRecentDays"`
	OpensBaselineDays int     `json:"opensBaselineDays"`
	OpensMinBaseline  float64 `json:"opensMinBaseline"`
	// Tier downgrade: a move down TierOrder (lowest first, compared without
	// case) is full risk on its day, fading linearly to none after
	// DowngradeDays.
	TierOrder     []string `json:"tierOrder"`
	DowngradeDays int      `json:"downgradeDays"`
	// Complaints: each complaint (a note or manual activity marked so) of
	// the last ComplaintWindowDays adds ComplaintPoints.
	ComplaintWindowDays int     `json:"complaintWindowDays"`
	ComplaintPoints     float64 `json:"complaintPoints"`
}

// Alerts say when a score change is worth an event.
type Alerts struct {
	// crm.churn.risk.high when churn risk rises above ChurnHigh; once per
	// crossing: again only after it has fallen below ChurnClear.
	ChurnHigh  float64 `json:"churnHigh"`
	ChurnClear float64 `json:"churnClear"`
	// customer.engagement.dropped when engagement falls EngagementDrop
	// points or more below its highest since the last drop.
	EngagementDrop float64 `json:"engagementDrop"`
}

// Model is a tenant's scoring model. Its version is the version of the
// tenant's model stream (0: the built-in default).
type Model struct {
	Engagement Engagement `json:"engagement"`
	Churn      Churn      `json:"churn"`
	Alerts     Alerts     `json:"alerts"`
}

// Versioned is a tenant's scoring model and its version (0: the built-in
// default, never changed).
type Versioned struct {
	Version   uint64     `json:"version"`
	Model     Model      `json:"model"`
	ChangedAt *time.Time `json:"changedAt"`
	ChangedBy string     `json:"changedBy,omitempty"`
}

// Horizon is how many days of inputs are kept: the longest window a model
// may use.
const Horizon = 400

// Default answers the built-in model.
func Default() Model {
	return Model{
		Engagement: Engagement{
			Weights:             EngagementWeights{Recency: 0.30, Frequency: 0.25, Monetary: 0.20, Breadth: 0.15, Depth: 0.10},
			RecencyHalfLifeDays: 30,
			FrequencyWindowDays: 90, FrequencyScale: 4,
			MonetaryWindowDays: 365, MonetaryTargetCents: 500_000,
			BreadthWindowDays: 90, BreadthTarget: 3,
			DepthWindowDays: 90, OpenRateTarget: 0.5, ClickRateTarget: 0.1, OpenShare: 0.7,
		},
		Churn: Churn{
			Weights:           ChurnWeights{ActivityDecline: 0.35, PaymentIssues: 0.25, EngagementDrop: 0.20, TierDowngrade: 0.10, Complaints: 0.10},
			DeclineRecentDays: 30, DeclineBaselineDays: 180, DeclineFull: 0.5, DeclineMinBaseline: 1,
			PaymentWindowDays: 90, PaymentFailurePoints: 50,
			OverdueStatuses: []string{"ARREARS", "OVERDUE", "IN_ARREARS", "PAYMENT_OVERDUE"},
			OpensRecentDays: 60, OpensBaselineDays: 120, OpensMinBaseline: 1,
			TierOrder:           []string{"Junior", "Social", "Country", "Bronze", "Silver", "Gold", "Platinum"},
			DowngradeDays:       180,
			ComplaintWindowDays: 180, ComplaintPoints: 50,
		},
		Alerts: Alerts{ChurnHigh: 80, ChurnClear: 60, EngagementDrop: 20},
	}
}

// Problems maps a field's path to what is wrong with it.
type Problems map[string]string

// Validate reports every problem of m at once, by path
// ("engagement.weights": "must sum to 1, not 0.9").
func (m Model) Validate() Problems {
	p := Problems{}
	sum := func(path string, ws ...float64) {
		t := 0.0
		for _, w := range ws {
			t += w
		}
		if math.Abs(t-1) > 1e-6 {
			p[path] = fmt.Sprintf("must sum to 1, not %g", t)
		}
	}
	nonNeg := func(path string, v float64) {
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			p[path] = "must be a number of at least 0"
		}
	}
	pos := func(path string, v float64) {
		if !(v > 0) || math.IsInf(v, 0) {
			p[path] = "must be greater than 0"
		}
	}
	days := func(path string, v int) {
		if v < 1 || v > Horizon {
			p[path] = fmt.Sprintf("must be between 1 and %d days", Horizon)
		}
	}
	e, c, a := m.Engagement, m.Churn, m.Alerts
	ew := e.Weights
	for path, v := range map[string]float64{"recency": ew.Recency, "frequency": ew.Frequency, "monetary": ew.Monetary, "breadth": ew.Breadth, "depth": ew.Depth} {
		nonNeg("engagement.weights."+path, v)
	}
	sum("engagement.weights", ew.Recency, ew.Frequency, ew.Monetary, ew.Breadth, ew.Depth)
	cw := c.Weights
	for path, v := range map[string]float64{"activityDecline": cw.ActivityDecline, "paymentIssues": cw.PaymentIssues, "engagementDrop": cw.EngagementDrop, "tierDowngrade": cw.TierDowngrade, "complaints": cw.Complaints} {
		nonNeg("churn.weights."+path, v)
	}
	sum("churn.weights", cw.ActivityDecline, cw.PaymentIssues, cw.EngagementDrop, cw.TierDowngrade, cw.Complaints)
	pos("engagement.recencyHalfLifeDays", e.RecencyHalfLifeDays)
	days("engagement.frequencyWindowDays", e.FrequencyWindowDays)
	pos("engagement.frequencyScale", e.FrequencyScale)
	days("engagement.monetaryWindowDays", e.MonetaryWindowDays)
	pos("engagement.monetaryTargetCents", float64(e.MonetaryTargetCents))
	days("engagement.breadthWindowDays", e.BreadthWindowDays)
	pos("engagement.breadthTarget", float64(e.BreadthTarget))
	days("engagement.depthWindowDays", e.DepthWindowDays)
	pos("engagement.openRateTarget", e.OpenRateTarget)
	pos("engagement.clickRateTarget", e.ClickRateTarget)
	if e.OpenShare < 0 || e.OpenShare > 1 || math.IsNaN(e.OpenShare) {
		p["engagement.openShare"] = "must be between 0 and 1"
	}
	days("churn.declineRecentDays", c.DeclineRecentDays)
	days("churn.declineBaselineDays", c.DeclineBaselineDays)
	if c.DeclineRecentDays+c.DeclineBaselineDays > Horizon {
		p["churn.declineBaselineDays"] = fmt.Sprintf("with declineRecentDays must cover at most %d days", Horizon)
	}
	if !(c.DeclineFull > 0) || c.DeclineFull > 1 {
		p["churn.declineFull"] = "must be greater than 0 and at most 1"
	}
	nonNeg("churn.declineMinBaseline", c.DeclineMinBaseline)
	days("churn.paymentWindowDays", c.PaymentWindowDays)
	nonNeg("churn.paymentFailurePoints", c.PaymentFailurePoints)
	days("churn.opensRecentDays", c.OpensRecentDays)
	days("churn.opensBaselineDays", c.OpensBaselineDays)
	if c.OpensRecentDays+c.OpensBaselineDays > Horizon {
		p["churn.opensBaselineDays"] = fmt.Sprintf("with opensRecentDays must cover at most %d days", Horizon)
	}
	nonNeg("churn.opensMinBaseline", c.OpensMinBaseline)
	days("churn.downgradeDays", c.DowngradeDays)
	days("churn.complaintWindowDays", c.ComplaintWindowDays)
	nonNeg("churn.complaintPoints", c.ComplaintPoints)
	seen := map[string]bool{}
	for i, t := range c.TierOrder {
		k := strings.ToLower(strings.TrimSpace(t))
		if k == "" {
			p[fmt.Sprintf("churn.tierOrder[%d]", i)] = "must not be empty"
		} else if seen[k] {
			p[fmt.Sprintf("churn.tierOrder[%d]", i)] = fmt.Sprintf("%q is listed twice", t)
		}
		seen[k] = true
	}
	for path, v := range map[string]float64{"alerts.churnHigh": a.ChurnHigh, "alerts.churnClear": a.ChurnClear, "alerts.engagementDrop": a.EngagementDrop} {
		if v < 0 || v > 100 || math.IsNaN(v) {
			p[path] = "must be between 0 and 100"
		}
	}
	if a.ChurnClear > a.ChurnHigh {
		p["alerts.churnClear"] = "must not be above alerts.churnHigh"
	}
	if !(a.EngagementDrop > 0) {
		p["alerts.engagementDrop"] = "must be greater than 0"
	}
	if len(p) == 0 {
		return nil
	}
	return p
}

// tierRank answers a tier's place in the order, lowest 0, or -1.
func (c Churn) tierRank(tier string) int {
	k := strings.ToLower(strings.TrimSpace(tier))
	for i, t := range c.TierOrder {
		if strings.ToLower(strings.TrimSpace(t)) == k {
			return i
		}
	}
	return -1
}

func (c Churn) overdue(status string) bool {
	s := strings.ToUpper(strings.TrimSpace(status))
	for _, o := range c.OverdueStatuses {
		if strings.ToUpper(strings.TrimSpace(o)) == s {
			return s != ""
		}
	}
	return false
}
