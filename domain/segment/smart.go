package segment

import (
	"fmt"
	"strings"

	"github.com/segmentio/encoding/json"
)

// Smart segment kinds: model-driven segments whose rules the CRM writes
// from the scores (docs/scoring.md) and the activity metrics.
const (
	// LikelyToChurn: active members and lapsed members whose churn risk
	// is at least Threshold (default 70): the churn model's estimate that
	// they leave within about 30 days.
	LikelyToChurn = "LIKELY_TO_CHURN"
	// HighlyEngaged: active profiles whose engagement score is at least
	// Threshold (default 75).
	HighlyEngaged = "HIGHLY_ENGAGED"
	// LapsingMembers: members (lifecycle MEMBER) with no activity in the
	// last InactiveDays (default 45), or none ever.
	LapsingMembers = "LAPSING_MEMBERS"
)

// SmartKinds lists every kind.
var SmartKinds = []string{LikelyToChurn, HighlyEngaged, LapsingMembers}

// Defaults of the smart parameters.
const (
	DefaultChurnThreshold      = 70
	DefaultEngagementThreshold = 75
	DefaultInactiveDays        = 45
)

// Smart says which model-driven segment a SMART segment is, with its
// parameters; unset ones take their defaults.
type Smart struct {
	Kind         string   `json:"kind"`
	Threshold    *float64 `json:"threshold,omitempty"`
	InactiveDays *int     `json:"inactiveDays,omitempty"`
}

func (s Smart) check(p Problems) {
	switch s.Kind {
	case LikelyToChurn, HighlyEngaged:
		if s.InactiveDays != nil {
			p["smart.inactiveDays"] = "applies only to " + LapsingMembers
		}
		if s.Threshold != nil && (*s.Threshold < 0 || *s.Threshold > 100) {
			p["smart.threshold"] = "must be between 0 and 100"
		}
	case LapsingMembers:
		if s.Threshold != nil {
			p["smart.threshold"] = "applies only to " + LikelyToChurn + " and " + HighlyEngaged
		}
		if s.InactiveDays != nil && (*s.InactiveDays < 1 || *s.InactiveDays > 3650) {
			p["smart.inactiveDays"] = "must be between 1 and 3650"
		}
	case "":
		p["smart.kind"] = "is required: one of " + strings.Join(SmartKinds, ", ")
	default:
		p["smart.kind"] = "must be one of " + strings.Join(SmartKinds, ", ")
	}
}

// Rules answers the rules a smart segment stands for.
func (s Smart) Rules() Rules {
	raw := func(v any) json.RawMessage {
		b, _ := json.Marshal(v)
		return b
	}
	threshold := func(def float64) float64 {
		if s.Threshold != nil {
			return *s.Threshold
		}
		return def
	}
	switch s.Kind {
	case LikelyToChurn:
		return Rules{Combinator: And, Rules: []Rule{
			{Field: "status", Operator: Eq, Value: raw("ACTIVE")},
			{Field: "lifecycleStage", Operator: In, Value: raw([]string{"MEMBER", "LAPSED"})},
			{Field: "churnRiskScore", Operator: Gte, Value: raw(threshold(DefaultChurnThreshold))},
		}}
	case HighlyEngaged:
		return Rules{Combinator: And, Rules: []Rule{
			{Field: "status", Operator: Eq, Value: raw("ACTIVE")},
			{Field: "engagementScore", Operator: Gte, Value: raw(threshold(DefaultEngagementThreshold))},
		}}
	case LapsingMembers:
		days := DefaultInactiveDays
		if s.InactiveDays != nil {
			days = *s.InactiveDays
		}
		return Rules{Combinator: And, Rules: []Rule{
			{Field: "status", Operator: Eq, Value: raw("ACTIVE")},
			{Field: "lifecycleStage", Operator: Eq, Value: raw("MEMBER")},
			{Field: "lastActivityAt", Operator: NotWithinLast, Value: raw(fmt.Sprintf("%dd", days))},
		}}
	}
	return Rules{Combinator: And}
}
