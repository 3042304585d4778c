package segment_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/domain/segment"
)

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

func ptr[T any](v T) *T { return &v }

func dynamic(rules ...segment.Rule) segment.Definition {
	return segment.Definition{Name: "Active members", Type: segment.Dynamic, Combinator: segment.And, Rules: rules}
}

func static() segment.Definition {
	return segment.Definition{Name: "Board", Description: "the club's board", Type: segment.Static}
}

func smart(s segment.Smart, rules ...segment.Rule) segment.Definition {
	return segment.Definition{Name: "Smart", Type: segment.Smartly, Smart: &s, Rules: rules}
}

var activeRule = segment.Rule{Field: "status", Operator: segment.Eq, Value: json.RawMessage(`"ACTIVE"`)}

func invalid(t *testing.T, err error) segment.ErrInvalid {
	t.Helper()
	var e segment.ErrInvalid
	require.ErrorAs(t, err, &e)
	return e
}

func TestConstants(t *testing.T) {
	assert.Equal(t, []segment.Type{segment.Static, segment.Dynamic, segment.Smartly}, segment.Types)
	assert.Equal(t, []string{segment.LikelyToChurn, segment.HighlyEngaged, segment.LapsingMembers}, segment.SmartKinds)
	assert.Equal(t, "segment", segment.Category)
}

func TestDefinitionCheck(t *testing.T) {
	tests := []struct {
		name string
		def  segment.Definition
		want map[string]string // nil: valid
	}{
		{"dynamic", dynamic(activeRule), nil},
		{"dynamic OR", segment.Definition{Name: "x", Type: segment.Dynamic, Combinator: "or", Rules: []segment.Rule{activeRule}}, nil},
		{"static", static(), nil},
		{"static with an empty rule list", segment.Definition{Name: "x", Type: segment.Static, Rules: []segment.Rule{}}, nil},
		{"static ignores its combinator", segment.Definition{Name: "x", Type: segment.Static, Combinator: "XOR"}, nil},
		{"smart", smart(segment.Smart{Kind: segment.LikelyToChurn}), nil},
		{"smart with rules", smart(segment.Smart{Kind: segment.HighlyEngaged}, activeRule), nil},
		{"name of 200 characters", segment.Definition{Name: strings.Repeat("é", segment.MaxName), Type: segment.Static}, nil},
		{"description of 2000 characters", segment.Definition{Name: "x", Description: strings.Repeat("é", segment.MaxDescription), Type: segment.Static}, nil},
		// name and description
		{"no name", segment.Definition{Type: segment.Static}, map[string]string{"name": "is required"}},
		{"blank name", segment.Definition{Name: " \t ", Type: segment.Static}, map[string]string{"name": "is required"}},
		{"name too long", segment.Definition{Name: strings.Repeat("é", segment.MaxName+1), Type: segment.Static}, map[string]string{"name": "must be at most 200 characters"}},
		{"description too long", segment.Definition{Name: "x", Description: strings.Repeat("é", segment.MaxDescription+1), Type: segment.Static}, map[string]string{"description": "must be at most 2000 characters"}},
		// type
		{"no type", segment.Definition{Name: "x"}, map[string]string{"type": "must be one of STATIC, DYNAMIC, SMART"}},
		{"unknown type", segment.Definition{Name: "x", Type: "CLEVER"}, map[string]string{"type": "must be one of STATIC, DYNAMIC, SMART"}},
		{"lower-case type before normalising", segment.Definition{Name: "x", Type: "static"}, map[string]string{"type": "must be one of STATIC, DYNAMIC, SMART"}},
		{"unknown type, no name, long description", segment.Definition{Description: strings.Repeat("x", segment.MaxDescription+1), Type: "X"}, map[string]string{
			"name":        "is required",
			"description": "must be at most 2000 characters",
			"type":        "must be one of",
		}},
		// static
		{"static with rules", segment.Definition{Name: "x", Type: segment.Static, Rules: []segment.Rule{activeRule}}, map[string]string{"rules": "a STATIC segment has no rules: its members are added and removed by hand"}},
		{"static with invalid rules reports only that it has rules", segment.Definition{Name: "x", Type: segment.Static, Rules: []segment.Rule{{Field: "nope"}}}, map[string]string{"rules": "a STATIC segment has no rules"}},
		{"static with a smart kind", segment.Definition{Name: "x", Type: segment.Static, Smart: &segment.Smart{Kind: segment.LikelyToChurn}}, map[string]string{"smart": "only a SMART segment has a smart kind"}},
		// dynamic
		{"dynamic without rules", segment.Definition{Name: "x", Type: segment.Dynamic}, map[string]string{"rules": "must hold at least one rule"}},
		{"dynamic with an empty rule list", segment.Definition{Name: "x", Type: segment.Dynamic, Rules: []segment.Rule{}}, map[string]string{"rules": "must hold at least one rule"}},
		{"dynamic with a smart kind", segment.Definition{Name: "x", Type: segment.Dynamic, Rules: []segment.Rule{activeRule}, Smart: &segment.Smart{Kind: segment.LikelyToChurn}}, map[string]string{"smart": "only a SMART segment has a smart kind"}},
		{"dynamic with a bad combinator", segment.Definition{Name: "x", Type: segment.Dynamic, Combinator: "XOR", Rules: []segment.Rule{activeRule}}, map[string]string{"combinator": "must be AND or OR"}},
		{"dynamic with bad rules", dynamic(activeRule, segment.Rule{Field: "nope", Operator: segment.Eq}, segment.Rule{Field: "email"}), map[string]string{
			"rules[1].field":    `unknown field "nope"`,
			"rules[2].operator": "is required",
		}},
		{"dynamic: every problem at once", segment.Definition{Type: segment.Dynamic, Smart: &segment.Smart{}, Combinator: "?", Rules: []segment.Rule{{Field: "nope"}}}, map[string]string{
			"name":           "is required",
			"smart":          "only a SMART segment has a smart kind",
			"combinator":     "must be AND or OR",
			"rules[0].field": `unknown field "nope"`,
		}},
		// smart
		{"smart without a kind", segment.Definition{Name: "x", Type: segment.Smartly}, map[string]string{"smart": `is required for a SMART segment: {"kind": "LIKELY_TO_CHURN"}`}},
		{"smart without a kind still checks its rules", segment.Definition{Name: "x", Type: segment.Smartly, Rules: []segment.Rule{{Field: "nope"}}}, map[string]string{"smart": "is required for a SMART segment", "rules[0].field": "unknown field"}},
		{"smart kind empty", smart(segment.Smart{}), map[string]string{"smart.kind": "is required: one of LIKELY_TO_CHURN, HIGHLY_ENGAGED, LAPSING_MEMBERS"}},
		{"smart kind unknown", smart(segment.Smart{Kind: "BIG_SPENDERS"}), map[string]string{"smart.kind": "must be one of LIKELY_TO_CHURN, HIGHLY_ENGAGED, LAPSING_MEMBERS"}},
		{"smart kind lower case before normalising", smart(segment.Smart{Kind: "likely_to_churn"}), map[string]string{"smart.kind": "must be one of"}},
		{"churn threshold 0", smart(segment.Smart{Kind: segment.LikelyToChurn, Threshold: ptr(0.0)}), nil},
		{"churn threshold 100", smart(segment.Smart{Kind: segment.LikelyToChurn, Threshold: ptr(100.0)}), nil},
		{"churn threshold negative", smart(segment.Smart{Kind: segment.LikelyToChurn, Threshold: ptr(-0.5)}), map[string]string{"smart.threshold": "must be between 0 and 100"}},
		{"churn threshold above 100", smart(segment.Smart{Kind: segment.LikelyToChurn, Threshold: ptr(100.1)}), map[string]string{"smart.threshold": "must be between 0 and 100"}},
		{"churn with inactive days", smart(segment.Smart{Kind: segment.LikelyToChurn, InactiveDays: ptr(30)}), map[string]string{"smart.inactiveDays": "applies only to LAPSING_MEMBERS"}},
		{"engaged threshold", smart(segment.Smart{Kind: segment.HighlyEngaged, Threshold: ptr(90.0)}), nil},
		{"engaged threshold above 100", smart(segment.Smart{Kind: segment.HighlyEngaged, Threshold: ptr(101.0)}), map[string]string{"smart.threshold": "must be between 0 and 100"}},
		{"engaged with inactive days and a bad threshold", smart(segment.Smart{Kind: segment.HighlyEngaged, InactiveDays: ptr(0), Threshold: ptr(-1.0)}), map[string]string{
			"smart.inactiveDays": "applies only to LAPSING_MEMBERS",
			"smart.threshold":    "must be between 0 and 100",
		}},
		{"lapsing 1 day", smart(segment.Smart{Kind: segment.LapsingMembers, InactiveDays: ptr(1)}), nil},
		{"lapsing 3650 days", smart(segment.Smart{Kind: segment.LapsingMembers, InactiveDays: ptr(3650)}), nil},
		{"lapsing 0 days", smart(segment.Smart{Kind: segment.LapsingMembers, InactiveDays: ptr(0)}), map[string]string{"smart.inactiveDays": "must be between 1 and 3650"}},
		{"lapsing 3651 days", smart(segment.Smart{Kind: segment.LapsingMembers, InactiveDays: ptr(3651)}), map[string]string{"smart.inactiveDays": "must be between 1 and 3650"}},
		{"lapsing with a threshold", smart(segment.Smart{Kind: segment.LapsingMembers, Threshold: ptr(50.0)}), map[string]string{"smart.threshold": "applies only to LIKELY_TO_CHURN and HIGHLY_ENGAGED"}},
		{"smart with bad rules", smart(segment.Smart{Kind: segment.LapsingMembers}, segment.Rule{Field: "nope"}), map[string]string{"rules[0].field": `unknown field "nope"`}},
		{"smart: every problem at once", segment.Definition{Name: strings.Repeat("x", 201), Type: segment.Smartly, Combinator: "NAND", Smart: &segment.Smart{Kind: segment.LapsingMembers, InactiveDays: ptr(-1), Threshold: ptr(1.0)}, Rules: []segment.Rule{activeRule, {Field: "email", Operator: segment.Eq}}}, map[string]string{
			"name":               "must be at most 200 characters",
			"combinator":         "must be AND or OR",
			"smart.inactiveDays": "must be between 1 and 3650",
			"smart.threshold":    "applies only to",
			"rules[1].value":     "is required for eq",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, p := tt.def.Check()
			if tt.want == nil {
				require.Nil(t, p)
				if tt.def.Type != segment.Static {
					require.NotNil(t, n.Group)
				}
				return
			}
			assertProblems(t, tt.want, p)
			assert.Equal(t, segment.Node{}, n)
		})
	}
}

func TestDefinitionCheckNode(t *testing.T) {
	status := field(t, "status")
	stage := field(t, "lifecycleStage")
	email := segment.Rule{Field: "email", Operator: segment.Exists}
	emailNode := segment.Node{Field: &segment.FieldCond{Field: field(t, "email"), Op: segment.Exists}}
	activeNode := segment.Node{Field: &segment.FieldCond{Field: status, Op: segment.Eq, Value: "ACTIVE"}}

	t.Run("static has no node", func(t *testing.T) {
		n, p := static().Check()
		require.Nil(t, p)
		assert.Equal(t, segment.Node{}, n)
	})
	t.Run("dynamic is its rules", func(t *testing.T) {
		d := segment.Definition{Name: "x", Type: segment.Dynamic, Combinator: "OR", Rules: []segment.Rule{activeRule, email}}
		n, p := d.Check()
		require.Nil(t, p)
		assert.Equal(t, segment.Node{Group: &segment.Group{Or: true, Nodes: []segment.Node{activeNode, emailNode}}}, n)
		g, gp := d.Group().Check()
		require.Nil(t, gp)
		assert.Equal(t, g, n)
	})
	t.Run("smart is its kind's rules AND the rules given", func(t *testing.T) {
		d := smart(segment.Smart{Kind: segment.LikelyToChurn}, email)
		d.Combinator = "OR"
		n, p := d.Check()
		require.Nil(t, p)
		assert.Equal(t, segment.Node{Group: &segment.Group{Nodes: []segment.Node{
			{Group: &segment.Group{Nodes: []segment.Node{
				activeNode,
				{Field: &segment.FieldCond{Field: stage, Op: segment.In, Value: []string{"MEMBER", "LAPSED"}}},
				{Field: &segment.FieldCond{Field: field(t, "churnRiskScore"), Op: segment.Gte, Value: float64(segment.DefaultChurnThreshold)}},
			}}},
			{Group: &segment.Group{Or: true, Nodes: []segment.Node{emailNode}}},
		}}}, n)
	})
	t.Run("smart without rules is its kind's rules AND everyone", func(t *testing.T) {
		n, p := smart(segment.Smart{Kind: segment.LapsingMembers, InactiveDays: ptr(10)}).Check()
		require.Nil(t, p)
		assert.Equal(t, segment.Node{Group: &segment.Group{Nodes: []segment.Node{
			{Group: &segment.Group{Nodes: []segment.Node{
				activeNode,
				{Field: &segment.FieldCond{Field: stage, Op: segment.Eq, Value: "MEMBER"}},
				{Field: &segment.FieldCond{Field: field(t, "lastActivityAt"), Op: segment.NotWithinLast, Within: 10 * day}},
			}}},
			{Group: &segment.Group{}},
		}}}, n)
	})
	t.Run("smart threshold override", func(t *testing.T) {
		n, p := smart(segment.Smart{Kind: segment.HighlyEngaged, Threshold: ptr(82.5)}).Check()
		require.Nil(t, p)
		assert.Equal(t, &segment.Group{Nodes: []segment.Node{
			activeNode,
			{Field: &segment.FieldCond{Field: field(t, "engagementScore"), Op: segment.Gte, Value: 82.5}},
		}}, n.Group.Nodes[0].Group)
	})
}

func TestSmartRules(t *testing.T) {
	status := segment.Rule{Field: "status", Operator: segment.Eq, Value: json.RawMessage(`"ACTIVE"`)}
	tests := []struct {
		name  string
		smart segment.Smart
		want  []segment.Rule
	}{
		{"likely to churn, default", segment.Smart{Kind: segment.LikelyToChurn}, []segment.Rule{
			status,
			{Field: "lifecycleStage", Operator: segment.In, Value: json.RawMessage(`["MEMBER","LAPSED"]`)},
			{Field: "churnRiskScore", Operator: segment.Gte, Value: json.RawMessage(`70`)},
		}},
		{"likely to churn, threshold", segment.Smart{Kind: segment.LikelyToChurn, Threshold: ptr(55.5)}, []segment.Rule{
			status,
			{Field: "lifecycleStage", Operator: segment.In, Value: json.RawMessage(`["MEMBER","LAPSED"]`)},
			{Field: "churnRiskScore", Operator: segment.Gte, Value: json.RawMessage(`55.5`)},
		}},
		{"likely to churn, threshold 0", segment.Smart{Kind: segment.LikelyToChurn, Threshold: ptr(0.0)}, []segment.Rule{
			status,
			{Field: "lifecycleStage", Operator: segment.In, Value: json.RawMessage(`["MEMBER","LAPSED"]`)},
			{Field: "churnRiskScore", Operator: segment.Gte, Value: json.RawMessage(`0`)},
		}},
		{"highly engaged, default", segment.Smart{Kind: segment.HighlyEngaged}, []segment.Rule{
			status,
			{Field: "engagementScore", Operator: segment.Gte, Value: json.RawMessage(`75`)},
		}},
		{"highly engaged, threshold", segment.Smart{Kind: segment.HighlyEngaged, Threshold: ptr(100.0)}, []segment.Rule{
			status,
			{Field: "engagementScore", Operator: segment.Gte, Value: json.RawMessage(`100`)},
		}},
		{"lapsing members, default", segment.Smart{Kind: segment.LapsingMembers}, []segment.Rule{
			status,
			{Field: "lifecycleStage", Operator: segment.Eq, Value: json.RawMessage(`"MEMBER"`)},
			{Field: "lastActivityAt", Operator: segment.NotWithinLast, Value: json.RawMessage(`"45d"`)},
		}},
		{"lapsing members, days", segment.Smart{Kind: segment.LapsingMembers, InactiveDays: ptr(3650)}, []segment.Rule{
			status,
			{Field: "lifecycleStage", Operator: segment.Eq, Value: json.RawMessage(`"MEMBER"`)},
			{Field: "lastActivityAt", Operator: segment.NotWithinLast, Value: json.RawMessage(`"3650d"`)},
		}},
		{"lapsing members ignore a threshold", segment.Smart{Kind: segment.LapsingMembers, Threshold: ptr(1.0), InactiveDays: ptr(7)}, []segment.Rule{
			status,
			{Field: "lifecycleStage", Operator: segment.Eq, Value: json.RawMessage(`"MEMBER"`)},
			{Field: "lastActivityAt", Operator: segment.NotWithinLast, Value: json.RawMessage(`"7d"`)},
		}},
		{"unknown kind is everyone", segment.Smart{Kind: "NOPE"}, nil},
		{"no kind is everyone", segment.Smart{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.smart.Rules()
			assert.Equal(t, segment.Rules{Combinator: segment.And, Rules: tt.want}, r)
			// Whatever a smart kind writes passes the checker.
			_, p := r.Check()
			assert.Nil(t, p)
		})
	}
	assert.Equal(t, 70, segment.DefaultChurnThreshold)
	assert.Equal(t, 75, segment.DefaultEngagementThreshold)
	assert.Equal(t, 45, segment.DefaultInactiveDays)
}

func TestNormalized(t *testing.T) {
	t.Run("trims and upper-cases", func(t *testing.T) {
		in := segment.Definition{
			Name:        "  Lapsing golfers \n",
			Description: "\t those who stopped playing  ",
			Type:        " smart ",
			Combinator:  "or",
			Smart:       &segment.Smart{Kind: " lapsing_members ", InactiveDays: ptr(30)},
			Rules: []segment.Rule{
				{Field: "handicap", Operator: segment.Lt, Value: json.RawMessage(`10`)},
				{Combinator: "", Not: true, Rules: []segment.Rule{
					{Field: "status", Operator: segment.Eq, Value: json.RawMessage(`"active"`)},
					{Combinator: "or"},
				}},
			},
		}
		got := in.Normalized()
		assert.Equal(t, segment.Definition{
			Name:        "Lapsing golfers",
			Description: "those who stopped playing",
			Type:        segment.Smartly,
			Combinator:  "OR",
			Smart:       &segment.Smart{Kind: segment.LapsingMembers, InactiveDays: ptr(30)},
			Rules: []segment.Rule{
				{Field: "handicap", Operator: segment.Lt, Value: json.RawMessage(`10`)},
				{Combinator: "AND", Not: true, Rules: []segment.Rule{
					{Field: "status", Operator: segment.Eq, Value: json.RawMessage(`"active"`)},
					{Combinator: "OR", Rules: []segment.Rule{}},
				}},
			},
		}, got)
		// The input is left as it was.
		assert.Equal(t, " lapsing_members ", in.Smart.Kind)
		assert.Equal(t, "", in.Rules[1].Combinator)
		assert.Equal(t, "or", in.Rules[1].Rules[1].Combinator)
		assert.Nil(t, in.Rules[1].Rules[1].Rules)
		// Normalising twice changes nothing more.
		assert.Equal(t, got, got.Normalized())
	})
	tests := []struct {
		name string
		in   segment.Definition
		want segment.Definition
	}{
		{"empty", segment.Definition{}, segment.Definition{Combinator: "AND", Rules: []segment.Rule{}}},
		{"no combinator is AND", segment.Definition{Type: "dynamic", Rules: []segment.Rule{activeRule}}, segment.Definition{Type: segment.Dynamic, Combinator: "AND", Rules: []segment.Rule{activeRule}}},
		{"static is AND without rules", segment.Definition{Name: "x", Type: "Static", Combinator: "or"}, segment.Definition{Name: "x", Type: segment.Static, Combinator: "AND", Rules: []segment.Rule{}}},
		{"static keeps rules it should not have", segment.Definition{Type: segment.Static, Rules: []segment.Rule{activeRule}}, segment.Definition{Type: segment.Static, Combinator: "AND", Rules: []segment.Rule{activeRule}}},
		{"unknown combinator upper-cased", segment.Definition{Type: segment.Dynamic, Combinator: "xor"}, segment.Definition{Type: segment.Dynamic, Combinator: "XOR", Rules: []segment.Rule{}}},
		{"field rules are as given", segment.Definition{Type: segment.Dynamic, Rules: []segment.Rule{{Field: " email ", Operator: "EQ", Value: json.RawMessage(` "x" `)}}}, segment.Definition{Type: segment.Dynamic, Combinator: "AND", Rules: []segment.Rule{{Field: " email ", Operator: "EQ", Value: json.RawMessage(` "x" `)}}}},
		{"smart kind without type", segment.Definition{Smart: &segment.Smart{Kind: "highly_engaged"}}, segment.Definition{Combinator: "AND", Rules: []segment.Rule{}, Smart: &segment.Smart{Kind: segment.HighlyEngaged}}},
		{"deep nesting", segment.Definition{Rules: []segment.Rule{grp("or", false, grp("", true, grp("and", false)))}}, segment.Definition{Combinator: "AND", Rules: []segment.Rule{
			{Combinator: "OR", Rules: []segment.Rule{{Combinator: "AND", Not: true, Rules: []segment.Rule{{Combinator: "AND", Rules: []segment.Rule{}}}}}},
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.in.Normalized())
		})
	}
}

func TestCreate(t *testing.T) {
	id := uuid.New()
	t.Run("decides segment.created with the normalised definition", func(t *testing.T) {
		s := &segment.Segment{ID: id, TenantID: "club-a"}
		d := segment.Definition{Name: " Active ", Type: "dynamic", Combinator: "or", Rules: []segment.Rule{activeRule}}
		evs, err := s.Create(d, "staff-1")
		require.NoError(t, err)
		assert.Equal(t, []segment.Event{{Type: segment.TypeCreated, Data: &segment.Created{
			SegmentID:  id,
			Definition: d.Normalized(),
			Actor:      "staff-1",
		}}}, evs)
		assert.Equal(t, "Active", evs[0].Data.(*segment.Created).Definition.Name)
		assert.False(t, s.Exists(), "deciding changes nothing")
	})
	t.Run("static", func(t *testing.T) {
		evs, err := (&segment.Segment{ID: id}).Create(segment.Definition{Name: "Board", Type: "static"}, "staff-1")
		require.NoError(t, err)
		require.Len(t, evs, 1)
		assert.Equal(t, segment.Definition{Name: "Board", Type: segment.Static, Combinator: "AND", Rules: []segment.Rule{}}, evs[0].Data.(*segment.Created).Definition)
	})
	t.Run("smart, normalised before it is checked", func(t *testing.T) {
		evs, err := (&segment.Segment{ID: id}).Create(segment.Definition{Name: "Churn", Type: " Smart", Smart: &segment.Smart{Kind: "likely_to_churn "}}, "staff-1")
		require.NoError(t, err)
		require.Len(t, evs, 1)
		assert.Equal(t, &segment.Smart{Kind: segment.LikelyToChurn}, evs[0].Data.(*segment.Created).Definition.Smart)
	})
	t.Run("invalid", func(t *testing.T) {
		evs, err := (&segment.Segment{ID: id}).Create(segment.Definition{Name: "  ", Type: segment.Dynamic, Rules: []segment.Rule{{Field: "nope"}}}, "staff-1")
		assert.Nil(t, evs)
		e := invalid(t, err)
		assertProblems(t, map[string]string{"name": "is required", "rules[0].field": "unknown field"}, segment.Problems(e))
	})
	t.Run("exists", func(t *testing.T) {
		s := &segment.Segment{ID: id, Version: 1, Definition: static()}
		evs, err := s.Create(static(), "staff-1")
		assert.Nil(t, evs)
		assert.ErrorIs(t, err, segment.ErrExists)
	})
	t.Run("exists even when deleted", func(t *testing.T) {
		s := &segment.Segment{ID: id, Version: 2, Definition: static(), Deleted: true}
		_, err := s.Create(static(), "staff-1")
		assert.ErrorIs(t, err, segment.ErrExists)
	})
	t.Run("exists wins over invalid", func(t *testing.T) {
		s := &segment.Segment{ID: id, Version: 1}
		_, err := s.Create(segment.Definition{}, "staff-1")
		assert.ErrorIs(t, err, segment.ErrExists)
	})
}

// created answers a segment folded from its creation with d.
func created(t *testing.T, d segment.Definition) *segment.Segment {
	t.Helper()
	s := &segment.Segment{ID: uuid.New(), TenantID: "club-a"}
	evs, err := s.Create(d, "staff-1")
	require.NoError(t, err)
	for _, e := range evs {
		s.Apply(e.Data, t0)
	}
	return s
}

// stored answers a segment folded from its creation with d, the event
// having gone through JSON as the store keeps it.
func stored(t *testing.T, d segment.Definition) *segment.Segment {
	t.Helper()
	s := &segment.Segment{ID: uuid.New(), TenantID: "club-a"}
	evs, err := s.Create(d, "staff-1")
	require.NoError(t, err)
	for _, e := range evs {
		b, err := json.Marshal(e.Data)
		require.NoError(t, err)
		v, err := segment.Decode(e.Type, b)
		require.NoError(t, err)
		s.Apply(v, t0)
	}
	return s
}

func TestUpdate(t *testing.T) {
	withEmail := dynamic(activeRule, segment.Rule{Field: "email", Operator: segment.Exists})
	tests := []struct {
		name    string
		current *segment.Segment
		def     segment.Definition
		err     error
		invalid map[string]string
		want    *segment.Definition // nil with no error: no event
	}{
		{"not found", &segment.Segment{ID: uuid.New()}, dynamic(activeRule), segment.ErrNotFound, nil, nil},
		{"deleted", &segment.Segment{ID: uuid.New(), Version: 2, Deleted: true, Definition: dynamic(activeRule)}, dynamic(activeRule), segment.ErrNotFound, nil, nil},
		{"type change", created(t, dynamic(activeRule)), static(), segment.ErrTypeChange, nil, nil},
		{"type change to smart", created(t, dynamic(activeRule)), smart(segment.Smart{Kind: segment.LikelyToChurn}), segment.ErrTypeChange, nil, nil},
		{"type change wins over invalid", created(t, static()), segment.Definition{Type: segment.Dynamic}, segment.ErrTypeChange, nil, nil},
		{"no type is a type change", created(t, static()), segment.Definition{Name: "Board"}, segment.ErrTypeChange, nil, nil},
		{"invalid", created(t, dynamic(activeRule)), dynamic(segment.Rule{Field: "email", Operator: segment.Eq}), nil, map[string]string{"rules[0].value": "is required for eq"}, nil},
		{"invalid static", created(t, static()), segment.Definition{Name: "", Type: segment.Static, Rules: []segment.Rule{activeRule}}, nil, map[string]string{"name": "is required", "rules": "a STATIC segment has no rules"}, nil},
		{"equal", created(t, withEmail), withEmail, nil, nil, nil},
		{"equal once normalised", created(t, withEmail), segment.Definition{Name: "  Active members ", Type: "dynamic", Combinator: "and", Rules: withEmail.Rules}, nil, nil, nil},
		{"equal to what the store kept", stored(t, withEmail), segment.Definition{Name: "Active members", Type: segment.Dynamic, Rules: []segment.Rule{
			{Field: "status", Operator: segment.Eq, Value: json.RawMessage(` "ACTIVE" `)},
			{Field: "email", Operator: segment.Exists},
		}}, nil, nil, nil},
		{"equal static", stored(t, static()), segment.Definition{Name: "Board", Description: " the club's board ", Type: "STATIC", Combinator: "OR"}, nil, nil, nil},
		{"equal smart", stored(t, smart(segment.Smart{Kind: segment.LapsingMembers, InactiveDays: ptr(30)})), smart(segment.Smart{Kind: "lapsing_members", InactiveDays: ptr(30)}), nil, nil, nil},
		{"renamed", created(t, withEmail), segment.Definition{Name: "Reachable members", Type: segment.Dynamic, Rules: withEmail.Rules}, nil, nil,
			&segment.Definition{Name: "Reachable members", Type: segment.Dynamic, Combinator: "AND", Rules: withEmail.Rules}},
		{"combinator changed", created(t, withEmail), segment.Definition{Name: "Active members", Type: segment.Dynamic, Combinator: "or", Rules: withEmail.Rules}, nil, nil,
			&segment.Definition{Name: "Active members", Type: segment.Dynamic, Combinator: "OR", Rules: withEmail.Rules}},
		{"a rule removed", created(t, withEmail), dynamic(activeRule), nil, nil, ptr(dynamic(activeRule))},
		{"a value spelled differently is a change", created(t, dynamic(activeRule)), dynamic(segment.Rule{Field: "status", Operator: segment.Eq, Value: json.RawMessage(`"active"`)}), nil, nil,
			ptr(dynamic(segment.Rule{Field: "status", Operator: segment.Eq, Value: json.RawMessage(`"active"`)}))},
		{"description of a static", created(t, static()), segment.Definition{Name: "Board", Type: segment.Static}, nil, nil,
			&segment.Definition{Name: "Board", Type: segment.Static, Combinator: "AND", Rules: []segment.Rule{}}},
		{"smart threshold set to its default is a change", created(t, smart(segment.Smart{Kind: segment.LikelyToChurn})), smart(segment.Smart{Kind: segment.LikelyToChurn, Threshold: ptr(70.0)}), nil, nil,
			&segment.Definition{Name: "Smart", Type: segment.Smartly, Combinator: "AND", Rules: []segment.Rule{}, Smart: &segment.Smart{Kind: segment.LikelyToChurn, Threshold: ptr(70.0)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := *tt.current
			evs, err := tt.current.Update(tt.def, "staff-2")
			assert.Equal(t, before, *tt.current, "deciding changes nothing")
			switch {
			case tt.err != nil:
				assert.ErrorIs(t, err, tt.err)
				assert.Nil(t, evs)
			case tt.invalid != nil:
				assert.Nil(t, evs)
				assertProblems(t, tt.invalid, segment.Problems(invalid(t, err)))
			case tt.want == nil:
				require.NoError(t, err)
				assert.Nil(t, evs, "an equal definition is no event")
			default:
				require.NoError(t, err)
				assert.Equal(t, []segment.Event{{Type: segment.TypeUpdated, Data: &segment.Updated{Definition: *tt.want, Actor: "staff-2"}}}, evs)
			}
		})
	}
}

func TestDelete(t *testing.T) {
	evs, err := (&segment.Segment{ID: uuid.New()}).Delete("staff-1")
	assert.ErrorIs(t, err, segment.ErrNotFound)
	assert.Nil(t, evs)

	s := created(t, dynamic(activeRule))
	evs, err = s.Delete("staff-1")
	require.NoError(t, err)
	assert.Equal(t, []segment.Event{{Type: segment.TypeDeleted, Data: &segment.Deleted{Actor: "staff-1"}}}, evs)
	s.Apply(evs[0].Data, t0.Add(time.Hour))

	evs, err = s.Delete("staff-1")
	assert.ErrorIs(t, err, segment.ErrNotFound, "deleting twice")
	assert.Nil(t, evs)
	_, err = s.Update(dynamic(activeRule), "staff-1")
	assert.ErrorIs(t, err, segment.ErrNotFound, "a deleted segment is not updated")
	_, err = s.Create(dynamic(activeRule), "staff-1")
	assert.ErrorIs(t, err, segment.ErrExists, "nor created again")
}

func TestChangeMembers(t *testing.T) {
	a, b, c := uuid.New(), uuid.New(), uuid.New()
	many := make([]uuid.UUID, segment.MaxMembersCall)
	for i := range many {
		many[i] = uuid.New()
	}
	tooMany := append(append([]uuid.UUID{}, many...), uuid.New())
	tests := []struct {
		name           string
		add, remove    []uuid.UUID
		added, remove2 []uuid.UUID // the event's; nil for no event
		invalid        map[string]string
	}{
		{"nothing", nil, nil, nil, nil, nil},
		{"empty lists", []uuid.UUID{}, []uuid.UUID{}, nil, nil, nil},
		{"add", []uuid.UUID{a, b}, nil, []uuid.UUID{a, b}, []uuid.UUID{}, nil},
		{"remove", nil, []uuid.UUID{c}, []uuid.UUID{}, []uuid.UUID{c}, nil},
		{"add and remove", []uuid.UUID{a}, []uuid.UUID{b}, []uuid.UUID{a}, []uuid.UUID{b}, nil},
		{"duplicates dropped, order kept", []uuid.UUID{b, a, b, a}, []uuid.UUID{c, c}, []uuid.UUID{b, a}, []uuid.UUID{c}, nil},
		{"added and removed is removed", []uuid.UUID{a, b}, []uuid.UUID{a}, []uuid.UUID{b}, []uuid.UUID{a}, nil},
		{"only added and removed is a removal", []uuid.UUID{a, a}, []uuid.UUID{a}, []uuid.UUID{}, []uuid.UUID{a}, nil},
		{"nil id", []uuid.UUID{uuid.Nil}, nil, []uuid.UUID{uuid.Nil}, []uuid.UUID{}, nil},
		{"as many as allowed", many, nil, many, []uuid.UUID{}, nil},
		{"as many as allowed, repeated", append(append([]uuid.UUID{}, many[:5000]...), many[:5000]...), nil, many[:5000], []uuid.UUID{}, nil},
		{"too many added", tooMany, []uuid.UUID{a}, nil, nil, map[string]string{"add": "at most 10000 ids in one call"}},
		{"too many removed", []uuid.UUID{a}, tooMany, nil, nil, map[string]string{"remove": "at most 10000 ids in one call"}},
		{"too many of both", tooMany, tooMany, nil, nil, map[string]string{"add": "at most 10000 ids in one call", "remove": "at most 10000 ids in one call"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := created(t, static())
			evs, err := s.ChangeMembers(tt.add, tt.remove, "staff-3")
			switch {
			case tt.invalid != nil:
				assert.Nil(t, evs)
				assertProblems(t, tt.invalid, segment.Problems(invalid(t, err)))
			case tt.added == nil:
				require.NoError(t, err)
				assert.Nil(t, evs)
			default:
				require.NoError(t, err)
				assert.Equal(t, []segment.Event{{Type: segment.TypeMembersChanged, Data: &segment.MembersChanged{Added: tt.added, Removed: tt.remove2, Actor: "staff-3"}}}, evs)
				b, err := json.Marshal(evs[0].Data)
				require.NoError(t, err)
				assert.NotContains(t, string(b), "null", "lists are [] when empty, never null")
			}
		})
	}
	t.Run("input lists are left as they were", func(t *testing.T) {
		add, rm := []uuid.UUID{a, a, b}, []uuid.UUID{b}
		_, err := created(t, static()).ChangeMembers(add, rm, "x")
		require.NoError(t, err)
		assert.Equal(t, []uuid.UUID{a, a, b}, add)
		assert.Equal(t, []uuid.UUID{b}, rm)
	})
	t.Run("not found", func(t *testing.T) {
		_, err := (&segment.Segment{ID: uuid.New()}).ChangeMembers([]uuid.UUID{a}, nil, "x")
		assert.ErrorIs(t, err, segment.ErrNotFound)
	})
	t.Run("deleted", func(t *testing.T) {
		s := created(t, static())
		s.Apply(&segment.Deleted{Actor: "x"}, t0)
		_, err := s.ChangeMembers([]uuid.UUID{a}, nil, "x")
		assert.ErrorIs(t, err, segment.ErrNotFound)
	})
	t.Run("not static", func(t *testing.T) {
		for _, d := range []segment.Definition{dynamic(activeRule), smart(segment.Smart{Kind: segment.HighlyEngaged})} {
			evs, err := created(t, d).ChangeMembers([]uuid.UUID{a}, nil, "x")
			assert.ErrorIs(t, err, segment.ErrNotStatic, string(d.Type))
			assert.Nil(t, evs)
			_, err = created(t, d).ChangeMembers(nil, nil, "x")
			assert.ErrorIs(t, err, segment.ErrNotStatic, "even with nothing to change")
			_, err = created(t, d).ChangeMembers(tooMany, nil, "x")
			assert.ErrorIs(t, err, segment.ErrNotStatic, "before the limits")
		}
	})
}

func TestApply(t *testing.T) {
	id := uuid.New()
	s := &segment.Segment{ID: id, TenantID: "club-a"}
	assert.False(t, s.Exists())

	d := dynamic(activeRule).Normalized()
	s.Apply(&segment.Created{SegmentID: id, Definition: d, Actor: "staff-1"}, t0)
	assert.Equal(t, segment.Segment{ID: id, TenantID: "club-a", Version: 1, Definition: d, CreatedBy: "staff-1", CreatedAt: t0, UpdatedAt: t0}, *s)
	assert.True(t, s.Exists())

	t1 := t0.Add(time.Hour)
	d2 := dynamic(activeRule, segment.Rule{Field: "email", Operator: segment.Exists}).Normalized()
	s.Apply(&segment.Updated{Definition: d2, Actor: "staff-2"}, t1)
	assert.Equal(t, segment.Segment{ID: id, TenantID: "club-a", Version: 2, Definition: d2, CreatedBy: "staff-1", CreatedAt: t0, UpdatedAt: t1}, *s)

	t2 := t1.Add(time.Hour)
	s.Apply(&segment.MembersChanged{Added: []uuid.UUID{uuid.New()}, Removed: []uuid.UUID{}, Actor: "staff-3"}, t2)
	assert.Equal(t, segment.Segment{ID: id, TenantID: "club-a", Version: 3, Definition: d2, CreatedBy: "staff-1", CreatedAt: t0, UpdatedAt: t2}, *s)

	t3 := t2.Add(time.Hour)
	s.Apply(&segment.Deleted{Actor: "staff-4"}, t3)
	assert.Equal(t, segment.Segment{ID: id, TenantID: "club-a", Version: 4, Definition: d2, CreatedBy: "staff-1", CreatedAt: t0, UpdatedAt: t3, Deleted: true}, *s)
	assert.True(t, s.Exists(), "a deleted segment still exists")

	// An event of no known type still counts toward the version.
	t4 := t3.Add(time.Hour)
	s.Apply(struct{}{}, t4)
	assert.Equal(t, uint64(5), s.Version)
	assert.Equal(t, t4, s.UpdatedAt)
	assert.Equal(t, d2, s.Definition)
}

// TestFold decides and folds a segment's whole life.
func TestFold(t *testing.T) {
	s := &segment.Segment{ID: uuid.New(), TenantID: "club-a"}
	at := t0
	apply := func(evs []segment.Event, err error) {
		t.Helper()
		require.NoError(t, err)
		for _, e := range evs {
			at = at.Add(time.Minute)
			b, err := json.Marshal(e.Data)
			require.NoError(t, err)
			v, err := segment.Decode(e.Type, b)
			require.NoError(t, err)
			assert.Equal(t, e.Data, v, "%s goes through JSON unchanged", e.Type)
			s.Apply(v, at)
		}
	}
	apply(s.Create(segment.Definition{Name: "Board", Type: "static"}, "staff-1"))
	apply(s.ChangeMembers([]uuid.UUID{uuid.New(), uuid.New()}, nil, "staff-1"))
	apply(s.Update(segment.Definition{Name: "Board", Description: "2026", Type: "STATIC"}, "staff-2"))
	apply(s.Update(segment.Definition{Name: "Board", Description: "2026", Type: "STATIC"}, "staff-2"))
	apply(s.Delete("staff-3"))
	assert.Equal(t, uint64(4), s.Version)
	assert.Equal(t, "2026", s.Definition.Description)
	assert.Equal(t, "staff-1", s.CreatedBy)
	assert.Equal(t, t0.Add(time.Minute), s.CreatedAt)
	assert.Equal(t, t0.Add(4*time.Minute), s.UpdatedAt)
	assert.True(t, s.Deleted)
}

func TestDecode(t *testing.T) {
	id, m1, m2 := uuid.New(), uuid.New(), uuid.New()
	tests := []struct {
		typ  string
		data string
		want any
	}{
		{segment.TypeCreated, `{"segmentId": "` + id.String() + `", "definition": {"name": "Board", "description": "", "type": "STATIC", "combinator": "AND", "rules": []}, "actor": "staff-1"}`,
			&segment.Created{SegmentID: id, Definition: segment.Definition{Name: "Board", Type: segment.Static, Combinator: "AND", Rules: []segment.Rule{}}, Actor: "staff-1"}},
		{segment.TypeCreated, `{"segmentId": "` + id.String() + `", "definition": {"name": "Lapsing", "type": "SMART", "combinator": "AND", "rules": [], "smart": {"kind": "LAPSING_MEMBERS", "inactiveDays": 30}}, "actor": "staff-1"}`,
			&segment.Created{SegmentID: id, Definition: segment.Definition{Name: "Lapsing", Type: segment.Smartly, Combinator: "AND", Rules: []segment.Rule{}, Smart: &segment.Smart{Kind: segment.LapsingMembers, InactiveDays: ptr(30)}}, Actor: "staff-1"}},
		{segment.TypeUpdated, `{"definition": {"name": "Active", "type": "DYNAMIC", "combinator": "OR", "rules": [
				{"field": "status", "operator": "eq", "value": "active"},
				{"activity": {"type": "teetime.booked", "channel": "APP"}, "operator": "gte", "value": 2, "within": "30d"},
				{"combinator": "AND", "not": true, "rules": [{"field": "tags", "operator": "hasAnyTag", "value": ["vip", "junior"]}]}
			]}, "actor": "staff-2"}`,
			&segment.Updated{Definition: segment.Definition{Name: "Active", Type: segment.Dynamic, Combinator: "OR", Rules: []segment.Rule{
				{Field: "status", Operator: segment.Eq, Value: json.RawMessage(`"active"`)},
				{Activity: &segment.ActivityMatch{Type: "teetime.booked", Channel: "APP"}, Operator: segment.Gte, Value: json.RawMessage(`2`), Within: "30d"},
				{Combinator: "AND", Not: true, Rules: []segment.Rule{{Field: "tags", Operator: segment.HasAnyTag, Value: json.RawMessage(`["vip", "junior"]`)}}},
			}}, Actor: "staff-2"}},
		{segment.TypeDeleted, `{"actor": "staff-3"}`, &segment.Deleted{Actor: "staff-3"}},
		{segment.TypeDeleted, `{}`, &segment.Deleted{}},
		{segment.TypeMembersChanged, `{"added": ["` + m1.String() + `"], "removed": ["` + m2.String() + `"], "actor": "staff-4"}`,
			&segment.MembersChanged{Added: []uuid.UUID{m1}, Removed: []uuid.UUID{m2}, Actor: "staff-4"}},
		{segment.TypeMembersChanged, `{"added": [], "removed": [], "actor": "x", "extra": true}`,
			&segment.MembersChanged{Added: []uuid.UUID{}, Removed: []uuid.UUID{}, Actor: "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			v, err := segment.Decode(tt.typ, []byte(tt.data))
			require.NoError(t, err)
			assert.Equal(t, tt.want, v)
		})
	}

	for _, typ := range []string{segment.TypeCreated, segment.TypeUpdated, segment.TypeDeleted, segment.TypeMembersChanged} {
		t.Run("bad JSON "+typ, func(t *testing.T) {
			v, err := segment.Decode(typ, []byte(`{"actor": `))
			require.Error(t, err)
			assert.Nil(t, v)
			assert.True(t, strings.HasPrefix(err.Error(), "decode "+typ+": "), err.Error())
			var se *json.SyntaxError
			assert.ErrorAs(t, err, &se, "the JSON error is wrapped")
		})
	}
	t.Run("wrong shape", func(t *testing.T) {
		_, err := segment.Decode(segment.TypeMembersChanged, []byte(`{"added": ["not-a-uuid"]}`))
		assert.ErrorContains(t, err, "decode segment.members.changed")
		_, err = segment.Decode(segment.TypeCreated, []byte(`[]`))
		assert.ErrorContains(t, err, "decode segment.created")
	})
	for _, typ := range []string{"segment.renamed", "", "customer.created", "SEGMENT.CREATED"} {
		t.Run("unknown "+typ, func(t *testing.T) {
			v, err := segment.Decode(typ, []byte(`{}`))
			assert.Nil(t, v)
			assert.EqualError(t, err, `unknown segment event type "`+typ+`"`)
		})
	}
}

func TestStream(t *testing.T) {
	id := uuid.MustParse("0b6f1c1e-8f1a-4c5e-9a43-2b3c4d5e6f70")
	assert.Equal(t, "segment-0b6f1c1e-8f1a-4c5e-9a43-2b3c4d5e6f70", segment.Stream(id))
	for range 20 {
		id := uuid.New()
		got, ok := segment.StreamID(segment.Stream(id))
		require.True(t, ok)
		assert.Equal(t, id, got)
	}
	for _, s := range []string{
		"",
		"segment",
		"segment-",
		"segment-not-a-uuid",
		"segment-0b6f1c1e-8f1a-4c5e-9a43-2b3c4d5e6f7",
		"segment-0b6f1c1e-8f1a-4c5e-9a43-2b3c4d5e6f70-1",
		"customer-0b6f1c1e-8f1a-4c5e-9a43-2b3c4d5e6f70",
		"segments-0b6f1c1e-8f1a-4c5e-9a43-2b3c4d5e6f70",
		"Segment-0b6f1c1e-8f1a-4c5e-9a43-2b3c4d5e6f70",
		"0b6f1c1e-8f1a-4c5e-9a43-2b3c4d5e6f70",
	} {
		got, ok := segment.StreamID(s)
		assert.False(t, ok, s)
		assert.Equal(t, uuid.Nil, got, s)
	}
}

func TestErrInvalid(t *testing.T) {
	e := segment.ErrInvalid{"rules[1].value": "is required for eq", "name": "is required", "rules[0].field": `unknown field "x"`}
	assert.EqualError(t, e, `invalid segment: name: is required; rules[0].field: unknown field "x"; rules[1].value: is required for eq`)
	assert.EqualError(t, segment.ErrInvalid{}, "invalid segment: ")
	var err error = e
	var got segment.ErrInvalid
	require.True(t, errors.As(err, &got))
	assert.Equal(t, e, got)
	assert.NotErrorIs(t, err, segment.ErrNotFound)
}
