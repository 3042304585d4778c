package scoring

import (
	"fmt"
	"math"
)

// Component is one part of a score, explained: its raw input, the input
// normalised to 0–100, its weight and what it adds to the score
// (normalised × weight).
type Component struct {
	Name         string         `json:"name"`
	Input        map[string]any `json:"input"`
	Normalized   float64        `json:"normalized"`
	Weight       float64        `json:"weight"`
	Contribution float64        `json:"contribution"`
	Explanation  string         `json:"explanation"`
}

// Score is a score with its components; Value is the sum of the
// contributions, rounded to one decimal.
type Score struct {
	Value      float64     `json:"score"`
	Components []Component `json:"components"`
}

// Result is both scores of a profile as of a day.
type Result struct {
	Engagement Score
	Churn      Score
}

// Compute answers in's scores under m as of today, each component
// explained.
func Compute(m Model, in Inputs, today Day) Result {
	x := explainer{on: true}
	return Result{Engagement: engagement(x, m.Engagement, in, today), Churn: churn(x, m.Churn, in, today)}
}

// Values answers the two scores alone, as Compute would: what projectors
// store, without the cost of the explanations.
func Values(m Model, in Inputs, today Day) (engagementScore, churnRisk float64) {
	x := explainer{}
	return engagement(x, m.Engagement, in, today).Value, churn(x, m.Churn, in, today).Value
}

// explainer builds components, with their inputs and explanations only
// when on.
type explainer struct{ on bool }

func (x explainer) component(name string, weight, normalized float64, detail func() (map[string]any, string)) Component {
	normalized = round1(clamp(normalized, 0, 100))
	c := Component{Name: name, Normalized: normalized, Weight: weight, Contribution: round2(normalized * weight)}
	if x.on {
		c.Input, c.Explanation = detail()
	}
	return c
}

// window sums over the days d with today-n < d ≤ today (n days ending
// today); offset shifts the window back by offset days.
func window(in Inputs, today Day, offset, n int, f func(Counts) float64) float64 {
	hi := today - Day(offset)
	lo := hi - Day(n)
	t := 0.0
	for _, c := range in.Days {
		if c.Day > lo && c.Day <= hi {
			t += f(c)
		}
	}
	return t
}

// Future-dated days (a booking made for next week) count as today's.
func clampFuture(in Inputs, today Day) Inputs {
	if len(in.Days) == 0 || in.Days[len(in.Days)-1].Day <= today {
		return in
	}
	out := in
	out.Days = make([]Counts, 0, len(in.Days))
	t := Counts{Day: today}
	for _, c := range in.Days {
		if c.Day < today {
			out.Days = append(out.Days, c)
			continue
		}
		t.add(c)
	}
	out.Days = append(out.Days, t)
	return out
}

func total(cs []Component) Score {
	t := 0.0
	for _, c := range cs {
		t += c.Normalized * c.Weight
	}
	return Score{Value: round1(clamp(t, 0, 100)), Components: cs}
}

func engagement(x explainer, p Engagement, in Inputs, today Day) Score {
	in = clampFuture(in, today)
	w := p.Weights
	var cs []Component

	// Recency.
	if in.HasActivity {
		days := max(0, int(today-in.LastActivity))
		v := 100 * math.Pow(0.5, float64(days)/p.RecencyHalfLifeDays)
		cs = append(cs, x.component("recency", w.Recency, v, func() (map[string]any, string) {
			return map[string]any{"lastActivityOn": in.LastActivity.Time().Format("2006-01-02"), "daysSinceLastActivity": days}, fmt.Sprintf("%d days since the last activity; the score halves every %g days", days, p.RecencyHalfLifeDays)
		}))
	} else {
		cs = append(cs, x.component("recency", w.Recency, 0, func() (map[string]any, string) {
			return map[string]any{"lastActivityOn": nil}, "no activity yet"
		}))
	}

	// Frequency.
	n := window(in, today, 0, p.FrequencyWindowDays, func(c Counts) float64 { return float64(c.Activities) })
	perMonth := n * 30 / float64(p.FrequencyWindowDays)
	cs = append(cs, x.component("frequency", w.Frequency, 100*(1-math.Exp(-perMonth/p.FrequencyScale)), func() (map[string]any, string) {
		return map[string]any{"activities": int(n), "windowDays": p.FrequencyWindowDays, "perMonth": round2(perMonth)}, fmt.Sprintf("%s in the last %d days, %.2f a month; %g a month scores 63", count(int(n), "activity", "activities"), p.FrequencyWindowDays, perMonth, p.FrequencyScale)
	}))

	// Monetary.
	spend := window(in, today, 0, p.MonetaryWindowDays, func(c Counts) float64 { return float64(c.SpendCents) })
	mv := 0.0
	if spend > 0 {
		mv = 100 * math.Log1p(spend/100) / math.Log1p(float64(p.MonetaryTargetCents)/100)
	}
	cs = append(cs, x.component("monetary", w.Monetary, mv, func() (map[string]any, string) {
		return map[string]any{"spendCents": int64(spend), "windowDays": p.MonetaryWindowDays, "targetCents": p.MonetaryTargetCents}, fmt.Sprintf("%d (minor units) paid in the last %d days, on a log scale to %d", int64(spend), p.MonetaryWindowDays, p.MonetaryTargetCents)
	}))

	// Breadth.
	var mask uint16
	window(in, today, 0, p.BreadthWindowDays, func(c Counts) float64 { mask |= c.Channels; return 0 })
	names := ChannelNames(mask)
	cs = append(cs, x.component("breadth", w.Breadth, 100*float64(len(names))/float64(p.BreadthTarget), func() (map[string]any, string) {
		return map[string]any{"channels": names, "windowDays": p.BreadthWindowDays, "target": p.BreadthTarget}, fmt.Sprintf("%s engaged in the last %d days; %d or more scores 100", count(len(names), "channel", "channels"), p.BreadthWindowDays, p.BreadthTarget)
	}))

	// Depth.
	sent := window(in, today, 0, p.DepthWindowDays, func(c Counts) float64 { return float64(c.Sent) })
	opens := window(in, today, 0, p.DepthWindowDays, func(c Counts) float64 { return float64(c.Opens) })
	clicks := window(in, today, 0, p.DepthWindowDays, func(c Counts) float64 { return float64(c.Clicks) })
	input := map[string]any{"messagesSent": int(sent), "opens": int(opens), "clicks": int(clicks), "windowDays": p.DepthWindowDays}
	if sent == 0 {
		cs = append(cs, x.component("depth", w.Depth, 0, func() (map[string]any, string) {
			return input, fmt.Sprintf("no messages sent in the last %d days", p.DepthWindowDays)
		}))
	} else {
		openRate, clickRate := math.Min(1, opens/sent), math.Min(1, clicks/sent)
		input["openRate"], input["clickRate"] = round2(openRate), round2(clickRate)
		v := 100 * (p.OpenShare*math.Min(1, openRate/p.OpenRateTarget) + (1-p.OpenShare)*math.Min(1, clickRate/p.ClickRateTarget))
		cs = append(cs, x.component("depth", w.Depth, v, func() (map[string]any, string) {
			return input, fmt.Sprintf("open rate %.0f%% (target %.0f%%), click rate %.0f%% (target %.0f%%)", openRate*100, p.OpenRateTarget*100, clickRate*100, p.ClickRateTarget*100)
		}))
	}
	return total(cs)
}

func churn(x explainer, p Churn, in Inputs, today Day) Score {
	in = clampFuture(in, today)
	w := p.Weights
	var cs []Component

	// Activity decline against the member's own baseline.
	recent := window(in, today, 0, p.DeclineRecentDays, func(c Counts) float64 { return float64(c.Activities) })
	before := window(in, today, p.DeclineRecentDays, p.DeclineBaselineDays, func(c Counts) float64 { return float64(c.Activities) })
	baseline := before * float64(p.DeclineRecentDays) / float64(p.DeclineBaselineDays)
	input := map[string]any{"recent": int(recent), "recentDays": p.DeclineRecentDays, "baseline": round2(baseline), "baselineDays": p.DeclineBaselineDays}
	if baseline < p.DeclineMinBaseline || baseline == 0 {
		cs = append(cs, x.component("activityDecline", w.ActivityDecline, 0, func() (map[string]any, string) {
			return input, fmt.Sprintf("baseline of %.2f activities per %d days is too little history to decline from", baseline, p.DeclineRecentDays)
		}))
	} else {
		drop := math.Max(0, 1-recent/baseline)
		input["drop"] = round2(drop)
		cs = append(cs, x.component("activityDecline", w.ActivityDecline, 100*drop/p.DeclineFull, func() (map[string]any, string) {
			return input, fmt.Sprintf("%s in the last %d days against a usual %.2f: %.0f%% down; %.0f%% or more is full risk", count(int(recent), "activity", "activities"), p.DeclineRecentDays, baseline, drop*100, p.DeclineFull*100)
		}))
	}

	// Payment issues.
	failed := window(in, today, 0, p.PaymentWindowDays, func(c Counts) float64 { return float64(c.Failed) })
	over := p.overdue(in.MembershipStatus)
	pv := failed * p.PaymentFailurePoints
	why := fmt.Sprintf("%s in the last %d days, %g points each", count(int(failed), "failed payment", "failed payments"), p.PaymentWindowDays, p.PaymentFailurePoints)
	if over {
		pv = 100
		why = fmt.Sprintf("membership status %s is overdue; ", in.MembershipStatus) + why
	}
	cs = append(cs, x.component("paymentIssues", w.PaymentIssues, pv, func() (map[string]any, string) {
		return map[string]any{"failedPayments": int(failed), "windowDays": p.PaymentWindowDays, "membershipStatus": in.MembershipStatus, "overdue": over}, why
	}))

	// Engagement drop: stopped opening emails.
	ro := window(in, today, 0, p.OpensRecentDays, func(c Counts) float64 { return float64(c.Opens) })
	bo := window(in, today, p.OpensRecentDays, p.OpensBaselineDays, func(c Counts) float64 { return float64(c.Opens) })
	usual := bo * float64(p.OpensRecentDays) / float64(p.OpensBaselineDays)
	input = map[string]any{"recentOpens": int(ro), "recentDays": p.OpensRecentDays, "usualOpens": round2(usual), "baselineDays": p.OpensBaselineDays}
	if usual < p.OpensMinBaseline || usual == 0 {
		cs = append(cs, x.component("engagementDrop", w.EngagementDrop, 0, func() (map[string]any, string) {
			return input, fmt.Sprintf("usually %.2f emails opened per %d days: too few to stop", usual, p.OpensRecentDays)
		}))
	} else {
		drop := math.Max(0, 1-ro/usual)
		cs = append(cs, x.component("engagementDrop", w.EngagementDrop, 100*drop, func() (map[string]any, string) {
			return input, fmt.Sprintf("%s opened in the last %d days against a usual %.2f: %.0f%% down", count(int(ro), "email", "emails"), p.OpensRecentDays, usual, drop*100)
		}))
	}

	// Tier downgrade: the latest move down the tier order.
	var down *TierChange
	for i := len(in.Tiers) - 1; i >= 0; i-- {
		t := in.Tiers[i]
		if age := int(today - t.Day); age < 0 || age >= p.DowngradeDays {
			continue
		}
		f, to := p.tierRank(t.From), p.tierRank(t.To)
		if f >= 0 && to >= 0 && to < f {
			down = &t
			break
		}
	}
	if down == nil {
		cs = append(cs, x.component("tierDowngrade", w.TierDowngrade, 0, func() (map[string]any, string) {
			return map[string]any{"downgrade": nil, "windowDays": p.DowngradeDays}, fmt.Sprintf("no move down the tier order in the last %d days", p.DowngradeDays)
		}))
	} else {
		age := int(today - down.Day)
		cs = append(cs, x.component("tierDowngrade", w.TierDowngrade, 100*(1-float64(age)/float64(p.DowngradeDays)), func() (map[string]any, string) {
			return map[string]any{"downgrade": map[string]any{"from": down.From, "to": down.To, "on": down.Day.Time().Format("2006-01-02")}, "daysAgo": age, "windowDays": p.DowngradeDays}, fmt.Sprintf("moved from %s to %s %d days ago; fades to nothing over %d days", down.From, down.To, age, p.DowngradeDays)
		}))
	}

	// Complaints: manual activities and notes marked so.
	n := window(in, today, 0, p.ComplaintWindowDays, func(c Counts) float64 { return float64(c.Complaints) })
	for _, d := range in.ComplaintNotes {
		if d > today-Day(p.ComplaintWindowDays) { // notes dated ahead count as today's
			n++
		}
	}
	cs = append(cs, x.component("complaints", w.Complaints, n*p.ComplaintPoints, func() (map[string]any, string) {
		return map[string]any{"complaints": int(n), "windowDays": p.ComplaintWindowDays}, fmt.Sprintf("%s in the last %d days, %g points each", count(int(n), "complaint", "complaints"), p.ComplaintWindowDays, p.ComplaintPoints)
	}))
	return total(cs)
}

func clamp(v, lo, hi float64) float64 {
	if math.IsNaN(v) {
		return lo
	}
	return math.Max(lo, math.Min(hi, v))
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }
func round2(v float64) float64 { return math.Round(v*100) / 100 }

// count writes n things, singular or plural.
func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
