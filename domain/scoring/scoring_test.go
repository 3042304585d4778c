package scoring_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/domain/scoring"
)

// T is "today" in the fixtures: 2026-03-31.
var T = scoring.DayOf(time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC))

// anna plays, opens some email and pays: an engaged member.
func anna() scoring.Inputs {
	var in scoring.Inputs
	in.Activity(T-2, scoring.ChannelGolf, true) // booked a tee time
	in.Activity(T-5, scoring.ChannelGolf, false)
	in.Activity(T-20, scoring.ChannelEmail, false) // opened an email
	in.Opened(T - 20)
	in.Activity(T-45, scoring.ChannelInPerson, false) // a visit
	in.Activity(T-100, scoring.ChannelGolf, true)     // outside every 90-day window
	for _, d := range []scoring.Day{T - 20, T - 50, T - 70, T - 85} {
		in.Sent(d)
	}
	in.Paid(T-30, 250_000) // R 2,500.00
	return in
}

// bob used to play and read the club's email, and has gone quiet.
func bob() scoring.Inputs {
	var in scoring.Inputs
	for _, d := range []scoring.Day{T - 40, T - 50, T - 60, T - 70, T - 80, T - 90, T - 100, T - 120, T - 150, T - 200} {
		in.Activity(d, scoring.ChannelGolf, false)
	}
	for _, d := range []scoring.Day{T - 70, T - 90, T - 100, T - 120} {
		in.Opened(d)
	}
	in.PaymentFailed(T - 10)
	in.SetTier(T-300, "Gold")
	in.SetTier(T-45, "Silver")
	in.ComplaintNote(uuid.MustParse("00000000-0000-0000-0000-00000000000b"), T-15, true)
	return in
}

func contribution(s scoring.Score, name string) scoring.Component {
	for _, c := range s.Components {
		if c.Name == name {
			return c
		}
	}
	return scoring.Component{}
}

func TestEngagementByHand(t *testing.T) {
	r := scoring.Compute(scoring.Default(), anna(), T)
	e := r.Engagement
	// recency: 2 days, half-life 30: 100 · 0.5^(2/30) = 95.48 → 95.5, × 0.30 = 28.65
	// frequency: 4 activities in 90 days = 1.333 a month: 100 · (1 − e^(−1.333/4)) = 28.35 → 28.3, × 0.25 = 7.075
	// monetary: 250,000 cents: 100 · ln(1 + 2,500) / ln(1 + 5,000) = 91.86 → 91.9, × 0.20 = 18.38
	// breadth: GOLF, EMAIL, IN_PERSON = 3 of 3: 100, × 0.15 = 15
	// depth: 1 open of 4 sent = 25% against 50%: 0.7 · 0.5 + 0.3 · 0 = 35.0, × 0.10 = 3.5
	// total 72.605 → 72.6
	want := map[string]float64{"recency": 95.5, "frequency": 28.3, "monetary": 91.9, "breadth": 100, "depth": 35}
	for name, v := range want {
		assert.Equal(t, v, contribution(e, name).Normalized, name)
	}
	assert.Equal(t, 72.6, e.Value)
	assert.Equal(t, 28.65, contribution(e, "recency").Contribution)
	assert.Equal(t, []string{"GOLF", "EMAIL", "IN_PERSON"}, contribution(e, "breadth").Input["channels"])
	// Nothing in Anna's history is a churn risk: too little history to
	// decline from (2 activities in the 180 days before the last 30 are
	// 0.33 per 30 days, under the minimum of 1), no failed payment, no
	// usual opens, no downgrade, no complaint.
	assert.Equal(t, 0.0, r.Churn.Value)
}

func TestChurnByHand(t *testing.T) {
	in := bob()
	r := scoring.Compute(scoring.Default(), in, T)
	c := r.Churn
	// activity decline: 0 in the last 30 days against 10 in the 180 before
	// = 1.667 per 30 days: a 100% drop, full at 50%: 100, × 0.35 = 35
	// payment issues: 1 failed in 90 days × 50 points = 50, × 0.25 = 12.5
	// engagement drop: 0 opens in 60 days against 4 in the 120 before = 2
	// per 60: 100% down = 100, × 0.20 = 20
	// tier downgrade: Gold → Silver 45 days ago: 100 · (1 − 45/180) = 75, × 0.10 = 7.5
	// complaints: 1 note in 180 days × 50 points = 50, × 0.10 = 5
	// total 80.0
	want := map[string]float64{"activityDecline": 100, "paymentIssues": 50, "engagementDrop": 100, "tierDowngrade": 75, "complaints": 50}
	for name, v := range want {
		assert.Equal(t, v, contribution(c, name).Normalized, name)
	}
	assert.Equal(t, 80.0, c.Value)

	// A second failed payment: 100 points, × 0.25 = 25: 92.5.
	in.PaymentFailed(T - 3)
	assert.Equal(t, 92.5, scoring.Compute(scoring.Default(), in, T).Churn.Value)

	// An overdue membership is full payment risk on its own.
	b := bob()
	b.MembershipStatus = "ARREARS"
	assert.Equal(t, 100.0, contribution(scoring.Compute(scoring.Default(), b, T).Churn, "paymentIssues").Normalized)
}

func TestDecayAsDaysPass(t *testing.T) {
	// Thirty days on with no new events: recency 32 days = 47.7;
	// frequency keeps 4 activities (T-45 is still within 90 days) = 28.3;
	// monetary 91.9; breadth 100; depth: 1 open of 2 sent in the window =
	// 50%, at its target: 70.
	// 47.7 · 0.3 + 28.3 · 0.25 + 91.9 · 0.2 + 100 · 0.15 + 70 · 0.1 = 61.765 → 61.8
	r := scoring.Compute(scoring.Default(), anna(), T+30)
	assert.Equal(t, 47.7, contribution(r.Engagement, "recency").Normalized)
	assert.Equal(t, 61.8, r.Engagement.Value)
	// A year on, only recency's tail is left.
	assert.Less(t, scoring.Compute(scoring.Default(), anna(), T+400).Engagement.Value, 1.0)
}

func TestModelChange(t *testing.T) {
	m := scoring.Default()
	m.Engagement.Weights = scoring.EngagementWeights{Recency: 0.5, Frequency: 0.2, Monetary: 0.1, Breadth: 0.1, Depth: 0.1}
	require.Empty(t, m.Validate())
	// 95.5 · 0.5 + 28.3 · 0.2 + 91.9 · 0.1 + 100 · 0.1 + 35 · 0.1 = 76.1
	assert.Equal(t, 76.1, scoring.Compute(m, anna(), T).Engagement.Value)
}

func TestFutureDaysCountAsToday(t *testing.T) {
	var in scoring.Inputs
	in.Activity(T+7, scoring.ChannelGolf, true) // a booking dated next week
	r := scoring.Compute(scoring.Default(), in, T)
	assert.Equal(t, 100.0, contribution(r.Engagement, "recency").Normalized)
	assert.Equal(t, 1, contribution(r.Engagement, "frequency").Input["activities"])
}

func TestValidate(t *testing.T) {
	m := scoring.Default()
	m.Engagement.Weights.Recency = 0.5
	m.Churn.Weights.Complaints = -1
	m.Engagement.RecencyHalfLifeDays = 0
	m.Alerts.ChurnClear = 90
	m.Churn.TierOrder = []string{"Gold", "gold"}
	p := m.Validate()
	assert.Equal(t, "must sum to 1, not 1.2", p["engagement.weights"])
	assert.Equal(t, "must be a number of at least 0", p["churn.weights.complaints"])
	assert.Equal(t, "must be greater than 0", p["engagement.recencyHalfLifeDays"])
	assert.Equal(t, "must not be above alerts.churnHigh", p["alerts.churnClear"])
	assert.Equal(t, `"gold" is listed twice`, p["churn.tierOrder[1]"])
	assert.Empty(t, scoring.Default().Validate())
}

func TestEncodingRoundTrip(t *testing.T) {
	for name, in := range map[string]*scoring.Inputs{"anna": ptr(anna()), "bob": ptr(bob()), "empty": {}} {
		t.Run(name, func(t *testing.T) {
			out, err := scoring.Decode(in.Encode())
			require.NoError(t, err)
			assert.Equal(t, scoring.Compute(scoring.Default(), *in, T), scoring.Compute(scoring.Default(), out, T))
			assert.Equal(t, in.Encode(), out.Encode())
		})
	}
	_, err := scoring.Decode([]byte{9, 1, 2})
	assert.ErrorIs(t, err, scoring.ErrCorrupt)
	_, err = scoring.Decode(ptr(anna()).Encode()[:7])
	assert.ErrorIs(t, err, scoring.ErrCorrupt)
}

func TestAbsorbAndPrune(t *testing.T) {
	a := anna()
	a.Absorb(bob())
	assert.Equal(t, T-2, a.LastActivity)
	r := scoring.Compute(scoring.Default(), a, T)
	assert.Equal(t, 1, contribution(r.Churn, "complaints").Input["complaints"])
	a.Prune(T + scoring.Horizon)
	assert.Empty(t, a.Days)
	assert.True(t, a.HasActivity, "the last activity outlives the pruned days: recency still decays from it")
}

func TestAlertsCrossOnceAndDrop(t *testing.T) {
	al := scoring.Default().Alerts
	var s scoring.AlertState
	steps := []struct {
		engagement, churn float64
		model             int
		want              []string
	}{
		{70, 50, 0, nil}, // the reference starts at 70
		{72, 81, 0, []string{scoring.ChurnRaised}}, // above 80: raised
		{71, 95, 0, nil}, // still high: nothing again
		{65, 70, 0, nil}, // below 80, not below 60: still high
		{51, 59, 0, []string{scoring.ChurnCleared, scoring.EngagementDropped}}, // cleared; 72 → 51 is a drop of 21
		{45, 81, 0, []string{scoring.ChurnRaised}},                             // a second crossing; 51 → 45 is no drop
		{20, 85, 1, nil}, // a new model restarts the reference at 20: no drop
		{0, 85, 1, []string{scoring.EngagementDropped}},
	}
	for i, st := range steps {
		var got []string
		var alerts []scoring.Alert
		alerts, s = scoring.Decide(al, s, st.engagement, st.churn, st.model)
		for _, a := range alerts {
			got = append(got, a.Kind)
		}
		assert.Equal(t, st.want, got, "step %d", i)
	}
	assert.Equal(t, 3, s.Crossings)
	assert.Equal(t, 2, s.Drops)
}
func ptr(in scoring.Inputs) *scoring.Inputs { return &in }

func TestValuesAgreeWithCompute(t *testing.T) {
	for _, in := range []scoring.Inputs{anna(), bob(), keen(), {}} {
		for _, day := range []scoring.Day{T, T + 1, T + 45, T + 500} {
			r := scoring.Compute(scoring.Default(), in, day)
			e, c := scoring.Values(scoring.Default(), in, day)
			assert.Equal(t, r.Engagement.Value, e)
			assert.Equal(t, r.Churn.Value, c)
		}
	}
}
