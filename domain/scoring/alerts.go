package scoring

// AlertState is what the alerting remembers of a profile between score
// changes: whether its churn risk is high (raised and not yet cleared),
// the highest engagement since the last drop, under which model version,
// and how many events of each kind it has caused (which numbers them, so a
// retried decision appends the same event again, a no-op).
type AlertState struct {
	ChurnHigh     bool
	Crossings     int // churn-risk raised and cleared events so far
	EngagementRef *float64
	RefModel      int
	Drops         int
}

// Alert kinds.
const (
	ChurnRaised       = "churn.raised"
	ChurnCleared      = "churn.cleared"
	EngagementDropped = "engagement.dropped"
)

// Alert is an event the alerting decided, numbered by Seq among its kind's
// (crossings count raised and cleared together).
type Alert struct {
	Kind      string
	Seq       int
	Score     float64 // churn risk, or engagement after the drop
	Threshold float64 // the crossed threshold; for a drop the points fallen
	From      float64 // a drop's highest engagement before it
}

// Decide answers the events a profile's new scores call for under alerts,
// and the state after them. A reference kept under another model version
// is restarted at the new engagement without an event: a model change is
// not a member's drop.
func Decide(a Alerts, s AlertState, engagement, churn float64, model int) ([]Alert, AlertState) {
	var out []Alert
	switch {
	case !s.ChurnHigh && churn > a.ChurnHigh:
		s.ChurnHigh, s.Crossings = true, s.Crossings+1
		out = append(out, Alert{Kind: ChurnRaised, Seq: s.Crossings, Score: churn, Threshold: a.ChurnHigh})
	case s.ChurnHigh && churn < a.ChurnClear:
		s.ChurnHigh, s.Crossings = false, s.Crossings+1
		out = append(out, Alert{Kind: ChurnCleared, Seq: s.Crossings, Score: churn, Threshold: a.ChurnClear})
	}
	switch {
	case s.EngagementRef == nil || s.RefModel != model:
		s.EngagementRef, s.RefModel = &engagement, model
	case *s.EngagementRef-engagement >= a.EngagementDrop:
		s.Drops++
		out = append(out, Alert{Kind: EngagementDropped, Seq: s.Drops, Score: engagement, Threshold: a.EngagementDrop, From: *s.EngagementRef})
		s.EngagementRef = &engagement
	case engagement > *s.EngagementRef:
		s.EngagementRef = &engagement
	}
	return out, s
}
