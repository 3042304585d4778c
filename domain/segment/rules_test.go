package segment_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/domain/segment"
)

// raw answers a rule value as JSON text; "" is no value at all.
func raw(s string) json.RawMessage {
	if s == "" {
		return nil
	}
	return json.RawMessage(s)
}

// fr is a field rule.
func fr(field string, op segment.Operator, value string) segment.Rule {
	return segment.Rule{Field: field, Operator: op, Value: raw(value)}
}

// ar is an activity rule.
func ar(m segment.ActivityMatch, op segment.Operator, value, within string) segment.Rule {
	return segment.Rule{Activity: &m, Operator: op, Value: raw(value), Within: within}
}

// grp is a nested group rule.
func grp(combinator string, not bool, rules ...segment.Rule) segment.Rule {
	if rules == nil {
		rules = []segment.Rule{}
	}
	return segment.Rule{Combinator: combinator, Not: not, Rules: rules}
}

func field(t *testing.T, name string) segment.Field {
	t.Helper()
	f, ok := segment.FieldNamed(name)
	require.True(t, ok, "field %s", name)
	return f
}

func utc(y int, m time.Month, d, h, mi, s, ns int) time.Time {
	return time.Date(y, m, d, h, mi, s, ns, time.UTC)
}

// assertProblems checks that the problems are exactly the paths of want,
// each message holding want's text.
func assertProblems(t *testing.T, want map[string]string, got segment.Problems) {
	t.Helper()
	wantKeys := make([]string, 0, len(want))
	for k := range want {
		wantKeys = append(wantKeys, k)
	}
	gotKeys := make([]string, 0, len(got))
	for k := range got {
		gotKeys = append(gotKeys, k)
	}
	slices.Sort(wantKeys)
	slices.Sort(gotKeys)
	if !assert.Equal(t, wantKeys, gotKeys, "problem paths; problems: %v", got) {
		return
	}
	for k, msg := range want {
		assert.Contains(t, got[k], msg, "problem at %s", k)
	}
}

// checkOne checks a single rule at the top and answers its node.
func checkOne(t *testing.T, r segment.Rule) segment.Node {
	t.Helper()
	n, p := segment.Rules{Rules: []segment.Rule{r}}.Check()
	require.Nil(t, p)
	require.NotNil(t, n.Group)
	require.Len(t, n.Group.Nodes, 1)
	return n.Group.Nodes[0]
}

func TestFields(t *testing.T) {
	seen := map[string]bool{}
	kinds := map[segment.Kind]bool{}
	for _, f := range segment.Fields {
		assert.False(t, seen[f.Name], "field %s is listed twice", f.Name)
		seen[f.Name] = true
		kinds[f.Kind] = true
		got, ok := segment.FieldNamed(f.Name)
		require.True(t, ok, f.Name)
		assert.Equal(t, f, got)
		assert.NotEmpty(t, f.Kind.Operators(), "field %s of kind %s has no operators", f.Name, f.Kind)
		if f.Kind == segment.Enum {
			assert.NotEmpty(t, f.Values, "enum %s has no values", f.Name)
			for _, v := range f.Values {
				assert.Equal(t, strings.ToUpper(v), v, "enum values are upper case")
			}
		} else {
			assert.Empty(t, f.Values, "only an enum has values: %s", f.Name)
		}
	}
	for _, k := range []segment.Kind{segment.String, segment.Enum, segment.Number, segment.Boolean, segment.Time, segment.Tags, segment.Aliases} {
		assert.True(t, kinds[k], "no field of kind %s", k)
	}
	for _, name := range []string{"", "nope", "Email", "EMAIL", " email", "externalIds", "tag"} {
		_, ok := segment.FieldNamed(name)
		assert.False(t, ok, "%q is not a field", name)
	}
	assert.Equal(t, []string{"ACTIVE", "ARCHIVED", "MERGED"}, field(t, "status").Values)
	assert.Equal(t, []string{"GUEST", "PROSPECT", "MEMBER", "LAPSED", "CHURNED"}, field(t, "lifecycleStage").Values)
	assert.Nil(t, segment.Kind("nope").Operators())
}

func TestKindOperators(t *testing.T) {
	tests := []struct {
		kind segment.Kind
		want []segment.Operator
	}{
		{segment.String, []segment.Operator{segment.Eq, segment.Neq, segment.In, segment.Nin, segment.Contains, segment.StartsWith, segment.Exists, segment.NotExists}},
		{segment.Enum, []segment.Operator{segment.Eq, segment.Neq, segment.In, segment.Nin, segment.Exists, segment.NotExists}},
		{segment.Number, []segment.Operator{segment.Eq, segment.Neq, segment.In, segment.Nin, segment.Lt, segment.Lte, segment.Gt, segment.Gte, segment.Between, segment.Exists, segment.NotExists}},
		{segment.Boolean, []segment.Operator{segment.Eq, segment.Neq, segment.Exists, segment.NotExists}},
		{segment.Time, []segment.Operator{segment.Eq, segment.Neq, segment.Lt, segment.Lte, segment.Gt, segment.Gte, segment.Between, segment.WithinLast, segment.NotWithinLast, segment.Exists, segment.NotExists}},
		{segment.Tags, []segment.Operator{segment.HasTag, segment.HasAnyTag, segment.HasAllTags, segment.Contains, segment.Exists, segment.NotExists}},
		{segment.Aliases, []segment.Operator{segment.Eq, segment.Contains, segment.StartsWith, segment.Exists, segment.NotExists}},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			assert.Equal(t, tt.want, tt.kind.Operators())
		})
	}
}

var allOperators = []segment.Operator{
	segment.Eq, segment.Neq, segment.In, segment.Nin, segment.Lt, segment.Lte, segment.Gt, segment.Gte,
	segment.Between, segment.Contains, segment.StartsWith, segment.Exists, segment.NotExists,
	segment.WithinLast, segment.NotWithinLast, segment.HasTag, segment.HasAnyTag, segment.HasAllTags,
}

// validValue answers a value a field of kind takes for op.
func validValue(kind segment.Kind, op segment.Operator) string {
	switch op {
	case segment.Exists, segment.NotExists:
		return ""
	case segment.WithinLast, segment.NotWithinLast:
		return `"30d"`
	case segment.In, segment.Nin, segment.HasAnyTag, segment.HasAllTags:
		switch kind {
		case segment.Number:
			return `[1, 2]`
		case segment.Enum:
			return `["active"]`
		case segment.Tags:
			return `["VIP"]`
		}
		return `["a", "b"]`
	case segment.Between:
		if kind == segment.Time {
			return `["2026-01-01", "2026-02-01"]`
		}
		return `[1, 2]`
	}
	switch kind {
	case segment.Number:
		return `5`
	case segment.Boolean:
		return `true`
	case segment.Time:
		return `"2026-01-31"`
	case segment.Enum:
		return `"active"`
	case segment.Tags:
		return `"vip"`
	}
	return `"x"`
}

// TestOperatorsByKind tries every operator on a field of every kind: the
// kind's operators are accepted with a value of the right type, the
// others rejected at rules[0].operator.
func TestOperatorsByKind(t *testing.T) {
	fields := map[segment.Kind]string{
		segment.String:  "email",
		segment.Enum:    "status",
		segment.Number:  "engagementScore",
		segment.Boolean: "emailOptIn",
		segment.Time:    "lastActivityAt",
		segment.Tags:    "tags",
		segment.Aliases: "aliases",
	}
	for kind, name := range fields {
		for _, op := range allOperators {
			t.Run(name+"/"+string(op), func(t *testing.T) {
				f := field(t, name)
				require.Equal(t, kind, f.Kind)
				n, p := segment.Rules{Rules: []segment.Rule{fr(name, op, validValue(kind, op))}}.Check()
				if slices.Contains(kind.Operators(), op) {
					require.Nil(t, p)
					require.Len(t, n.Group.Nodes, 1)
					fc := n.Group.Nodes[0].Field
					require.NotNil(t, fc)
					assert.Equal(t, f, fc.Field)
					assert.Equal(t, op, fc.Op)
					return
				}
				assertProblems(t, map[string]string{
					"rules[0].operator": fmt.Sprintf("%s is not an operator of %s (a %s): use one of ", op, name, kind),
				}, p)
				assert.Equal(t, segment.Node{}, n)
			})
		}
	}
}

func TestFieldConditionValues(t *testing.T) {
	tests := []struct {
		name   string
		rule   segment.Rule
		value  any
		within time.Duration
	}{
		// string
		{"string eq keeps case", fr("email", segment.Eq, `"Jane@Mail.com"`), "Jane@Mail.com", 0},
		{"string eq empty", fr("firstName", segment.Eq, `""`), "", 0},
		{"string neq", fr("lastName", segment.Neq, `"Smith"`), "Smith", 0},
		{"string in", fr("membershipTier", segment.In, `["Gold", "Platinum"]`), []string{"Gold", "Platinum"}, 0},
		{"string nin with empty element", fr("homeClubId", segment.Nin, `["", "c1"]`), []string{"", "c1"}, 0},
		{"string contains", fr("displayName", segment.Contains, `"ann"`), "ann", 0},
		{"string startsWith", fr("phoneNumber", segment.StartsWith, `"+27"`), "+27", 0},
		{"string exists", fr("email", segment.Exists, ""), nil, 0},
		{"string notExists with null", fr("email", segment.NotExists, `null`), nil, 0},
		{"nested field name", fr("externalIds.golfRsaId", segment.Eq, `"G1"`), "G1", 0},
		{"value with white space around", fr("email", segment.Eq, "  \"a@b.c\"\n"), "a@b.c", 0},
		// enum
		{"enum eq upper-cased", fr("status", segment.Eq, `"active"`), "ACTIVE", 0},
		{"enum eq trimmed", fr("status", segment.Neq, `" Archived "`), "ARCHIVED", 0},
		{"enum in", fr("lifecycleStage", segment.In, `["member", "Lapsed", "CHURNED"]`), []string{"MEMBER", "LAPSED", "CHURNED"}, 0},
		{"enum nin", fr("lifecycleStage", segment.Nin, `["guest"]`), []string{"GUEST"}, 0},
		{"enum exists", fr("lifecycleStage", segment.Exists, ""), nil, 0},
		// number
		{"number gt", fr("engagementScore", segment.Gt, `50`), float64(50), 0},
		{"number lte fraction", fr("handicap", segment.Lte, `12.5`), 12.5, 0},
		{"number eq negative", fr("handicap", segment.Eq, `-3`), float64(-3), 0},
		{"number exponent", fr("lifetimeValue", segment.Gte, `1e6`), float64(1e6), 0},
		{"number lt", fr("churnRiskScore", segment.Lt, `0`), float64(0), 0},
		{"number neq", fr("version", segment.Neq, `1`), float64(1), 0},
		{"number in", fr("sclMemberId", segment.In, `[1, 2.5, -4]`), []float64{1, 2.5, -4}, 0},
		{"number nin", fr("bookingCount30d", segment.Nin, `[0]`), []float64{0}, 0},
		{"number between", fr("engagementScore", segment.Between, `[10, 20]`), [2]float64{10, 20}, 0},
		{"number between equal bounds", fr("engagementScore", segment.Between, `[5, 5]`), [2]float64{5, 5}, 0},
		{"number between negative", fr("handicap", segment.Between, `[-5, 0.5]`), [2]float64{-5, 0.5}, 0},
		{"number exists", fr("engagementScore", segment.Exists, ""), nil, 0},
		// boolean
		{"boolean eq true", fr("emailOptIn", segment.Eq, `true`), true, 0},
		{"boolean neq false", fr("smsOptIn", segment.Neq, `false`), false, 0},
		{"boolean notExists", fr("whatsappOptIn", segment.NotExists, ""), nil, 0},
		// time
		{"time as date", fr("lastActivityAt", segment.Lt, `"2026-01-31"`), utc(2026, 1, 31, 0, 0, 0, 0), 0},
		{"time as RFC 3339 UTC", fr("createdAt", segment.Gte, `"2026-01-31T10:00:00Z"`), utc(2026, 1, 31, 10, 0, 0, 0), 0},
		{"time as RFC 3339 offset, in UTC", fr("createdAt", segment.Gt, `"2026-01-31T10:00:00+02:00"`), utc(2026, 1, 31, 8, 0, 0, 0), 0},
		{"time with nanoseconds", fr("updatedAt", segment.Eq, `"2026-01-31T10:00:00.123456789Z"`), utc(2026, 1, 31, 10, 0, 0, 123456789), 0},
		{"time neq", fr("updatedAt", segment.Neq, `"2025-12-31"`), utc(2025, 12, 31, 0, 0, 0, 0), 0},
		{"time lte", fr("updatedAt", segment.Lte, `"2025-12-31T23:59:59-05:00"`), utc(2026, 1, 1, 4, 59, 59, 0), 0},
		{"time between dates", fr("createdAt", segment.Between, `["2026-01-01", "2026-02-01"]`), [2]time.Time{utc(2026, 1, 1, 0, 0, 0, 0), utc(2026, 2, 1, 0, 0, 0, 0)}, 0},
		{"time between date and time", fr("createdAt", segment.Between, `["2026-01-01", "2026-01-31T23:59:59Z"]`), [2]time.Time{utc(2026, 1, 1, 0, 0, 0, 0), utc(2026, 1, 31, 23, 59, 59, 0)}, 0},
		{"time between equal", fr("createdAt", segment.Between, `["2026-01-01", "2026-01-01T00:00:00Z"]`), [2]time.Time{utc(2026, 1, 1, 0, 0, 0, 0), utc(2026, 1, 1, 0, 0, 0, 0)}, 0},
		{"time withinLast days", fr("lastActivityAt", segment.WithinLast, `"30d"`), nil, 30 * day},
		{"time withinLast minutes", fr("updatedAt", segment.WithinLast, `"90m"`), nil, 90 * time.Minute},
		{"time notWithinLast hours", fr("lastActivityAt", segment.NotWithinLast, `"12h"`), nil, 12 * time.Hour},
		{"time notWithinLast weeks", fr("createdAt", segment.NotWithinLast, `" 2w "`), nil, 14 * day},
		{"time exists", fr("lastActivityAt", segment.Exists, ""), nil, 0},
		// tags
		{"tag normalised", fr("tags", segment.HasTag, `"  VIP   Gold "`), "vip gold", 0},
		{"tag with punctuation", fr("tags", segment.HasTag, `"Junior-U18"`), "junior-u18", 0},
		{"tags any normalised", fr("tags", segment.HasAnyTag, `["VIP", "Junior"]`), []string{"vip", "junior"}, 0},
		{"tags all normalised", fr("tags", segment.HasAllTags, `["a", " B "]`), []string{"a", "b"}, 0},
		{"tag contains normalised", fr("tags", segment.Contains, `"Gol"`), "gol", 0},
		{"tag of 50 characters", fr("tags", segment.HasTag, `"`+strings.Repeat("a", 50)+`"`), strings.Repeat("a", 50), 0},
		{"tags exist", fr("tags", segment.Exists, ""), nil, 0},
		{"tags notExists", fr("tags", segment.NotExists, ""), nil, 0},
		// aliases
		{"alias eq", fr("aliases", segment.Eq, `"Jane@Mail.com"`), "Jane@Mail.com", 0},
		{"alias contains", fr("aliases", segment.Contains, `"mail"`), "mail", 0},
		{"alias startsWith", fr("aliases", segment.StartsWith, `"+44"`), "+44", 0},
		{"alias notExists", fr("aliases", segment.NotExists, ""), nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := checkOne(t, tt.rule)
			require.Nil(t, n.Group)
			require.Nil(t, n.Activity)
			require.NotNil(t, n.Field)
			assert.Equal(t, segment.FieldCond{
				Field:  field(t, tt.rule.Field),
				Op:     tt.rule.Operator,
				Value:  tt.value,
				Within: tt.within,
			}, *n.Field)
		})
	}
}

func TestFieldConditionProblems(t *testing.T) {
	long := make([]string, segment.MaxList+1)
	for i := range long {
		long[i] = fmt.Sprintf(`"v%d"`, i)
	}
	longList := "[" + strings.Join(long, ",") + "]"
	tests := []struct {
		name string
		rule segment.Rule
		want map[string]string
	}{
		// field and operator
		{"no field", segment.Rule{Operator: segment.Eq, Value: raw(`"x"`)}, map[string]string{"rules[0].field": "is required (or activity, or rules for a group)"}},
		{"empty rule", segment.Rule{}, map[string]string{"rules[0].field": "is required"}},
		{"unknown field", fr("nope", segment.Eq, `"x"`), map[string]string{"rules[0].field": `unknown field "nope"`}},
		{"field names are case sensitive", fr("Email", segment.Eq, `"x"`), map[string]string{"rules[0].field": `unknown field "Email"`}},
		{"no operator", fr("email", "", `"x"`), map[string]string{"rules[0].operator": "is required"}},
		{"unknown operator", fr("email", "like", `"x"`), map[string]string{"rules[0].operator": "like is not an operator of email (a string): use one of eq, neq, in, nin, contains, startsWith, exists, notExists"}},
		{"operator of another kind", fr("emailOptIn", segment.Gt, `1`), map[string]string{"rules[0].operator": "gt is not an operator of emailOptIn (a boolean): use one of eq, neq, exists, notExists"}},
		{"operator case sensitive", fr("email", "EQ", `"x"`), map[string]string{"rules[0].operator": "EQ is not an operator of email"}},
		{"hasTag on a string", fr("email", segment.HasTag, `"x"`), map[string]string{"rules[0].operator": "hasTag is not an operator of email"}},
		{"withinLast on a number", fr("engagementScore", segment.WithinLast, `"30d"`), map[string]string{"rules[0].operator": "withinLast is not an operator of engagementScore (a number)"}},
		// missing values
		{"missing value", fr("email", segment.Eq, ""), map[string]string{"rules[0].value": "is required for eq"}},
		{"null value", fr("engagementScore", segment.Gt, `null`), map[string]string{"rules[0].value": "is required for gt"}},
		{"blank value", fr("engagementScore", segment.Gt, "   "), map[string]string{"rules[0].value": "is required for gt"}},
		{"missing list", fr("email", segment.In, ""), map[string]string{"rules[0].value": "is required for in"}},
		{"missing between", fr("engagementScore", segment.Between, ""), map[string]string{"rules[0].value": "is required for between"}},
		{"missing duration", fr("lastActivityAt", segment.WithinLast, ""), map[string]string{"rules[0].value": "is required for withinLast"}},
		// types by kind
		{"number as string", fr("engagementScore", segment.Gt, `"5"`), map[string]string{"rules[0].value": "must be a number for gt"}},
		{"number as bool", fr("engagementScore", segment.Eq, `true`), map[string]string{"rules[0].value": "must be a number for eq"}},
		{"number out of range", fr("engagementScore", segment.Eq, `1e400`), map[string]string{"rules[0].value": "must be a number for eq"}},
		{"number as list", fr("engagementScore", segment.Eq, `[1]`), map[string]string{"rules[0].value": "must be a number for eq"}},
		{"boolean as string", fr("emailOptIn", segment.Eq, `"true"`), map[string]string{"rules[0].value": "must be true or false for eq"}},
		{"boolean as number", fr("emailOptIn", segment.Neq, `1`), map[string]string{"rules[0].value": "must be true or false for neq"}},
		{"time as number", fr("createdAt", segment.Lt, `20260131`), map[string]string{"rules[0].value": "must be a date (2026-01-31) or an RFC 3339 time for lt"}},
		{"time day first", fr("createdAt", segment.Lt, `"31/01/2026"`), map[string]string{"rules[0].value": "must be a date (2026-01-31) or an RFC 3339 time for lt"}},
		{"time without zone", fr("createdAt", segment.Gt, `"2026-01-31T10:00:00"`), map[string]string{"rules[0].value": "or an RFC 3339 time for gt"}},
		{"time unpadded date", fr("createdAt", segment.Eq, `"2026-1-31"`), map[string]string{"rules[0].value": "or an RFC 3339 time for eq"}},
		{"time impossible date", fr("createdAt", segment.Eq, `"2026-02-30"`), map[string]string{"rules[0].value": "or an RFC 3339 time for eq"}},
		{"enum unknown value", fr("status", segment.Eq, `"GONE"`), map[string]string{"rules[0].value": "must be one of ACTIVE, ARCHIVED, MERGED for eq"}},
		{"enum as number", fr("lifecycleStage", segment.Neq, `1`), map[string]string{"rules[0].value": "must be one of GUEST, PROSPECT, MEMBER, LAPSED, CHURNED for neq"}},
		{"string as number", fr("email", segment.Eq, `5`), map[string]string{"rules[0].value": "must be a string for eq"}},
		{"string as object", fr("email", segment.Eq, `{"a": 1}`), map[string]string{"rules[0].value": "must be a string for eq"}},
		{"contains empty", fr("email", segment.Contains, `""`), map[string]string{"rules[0].value": "must not be empty for contains"}},
		{"startsWith empty", fr("email", segment.StartsWith, `""`), map[string]string{"rules[0].value": "must not be empty for startsWith"}},
		{"alias startsWith empty", fr("aliases", segment.StartsWith, `""`), map[string]string{"rules[0].value": "must not be empty for startsWith"}},
		{"alias as number", fr("aliases", segment.Eq, `1`), map[string]string{"rules[0].value": "must be a string for eq"}},
		{"tag starting with punctuation", fr("tags", segment.HasTag, `"-vip"`), map[string]string{"rules[0].value": "must be a tag"}},
		{"tag blank", fr("tags", segment.HasTag, `"   "`), map[string]string{"rules[0].value": "must be a tag"}},
		{"tag of 51 characters", fr("tags", segment.HasTag, `"`+strings.Repeat("a", 51)+`"`), map[string]string{"rules[0].value": "must be a tag"}},
		{"tag contains empty", fr("tags", segment.Contains, `""`), map[string]string{"rules[0].value": "must be a tag"}},
		{"tag as number", fr("tags", segment.HasTag, `7`), map[string]string{"rules[0].value": "for hasTag"}},
		// lists
		{"in empty", fr("email", segment.In, `[]`), map[string]string{"rules[0].value": "must be a non-empty array for in"}},
		{"nin not an array", fr("email", segment.Nin, `"a"`), map[string]string{"rules[0].value": "must be a non-empty array for nin"}},
		{"hasAnyTag empty", fr("tags", segment.HasAnyTag, `[]`), map[string]string{"rules[0].value": "must be a non-empty array for hasAnyTag"}},
		{"hasAllTags not an array", fr("tags", segment.HasAllTags, `"vip"`), map[string]string{"rules[0].value": "must be a non-empty array for hasAllTags"}},
		{"in too long", fr("email", segment.In, longList), map[string]string{"rules[0].value": "holds at most 1000 values"}},
		{"in string element a number", fr("email", segment.In, `["a", 1]`), map[string]string{"rules[0].value": "[1] must be a string for in"}},
		{"nin number element a string", fr("engagementScore", segment.Nin, `[1, "2"]`), map[string]string{"rules[0].value": "[1] must be a number for nin"}},
		{"in enum element unknown", fr("status", segment.In, `["ACTIVE", "nope"]`), map[string]string{"rules[0].value": "[1] must be one of ACTIVE, ARCHIVED, MERGED for in"}},
		{"hasAnyTag bad element", fr("tags", segment.HasAnyTag, `["vip", ""]`), map[string]string{"rules[0].value": "[1] must be a tag"}},
		{"hasAllTags element a number", fr("tags", segment.HasAllTags, `[1]`), map[string]string{"rules[0].value": "[0] must be a tag"}},
		// between
		{"between one value", fr("engagementScore", segment.Between, `[1]`), map[string]string{"rules[0].value": "must be an array of two values [from, to] for between"}},
		{"between three values", fr("engagementScore", segment.Between, `[1, 2, 3]`), map[string]string{"rules[0].value": "must be an array of two values"}},
		{"between not an array", fr("engagementScore", segment.Between, `5`), map[string]string{"rules[0].value": "must be an array of two values"}},
		{"between empty", fr("createdAt", segment.Between, `[]`), map[string]string{"rules[0].value": "must be an array of two values"}},
		{"between number reversed", fr("engagementScore", segment.Between, `[5, 1]`), map[string]string{"rules[0].value": "the first bound must not exceed the second"}},
		{"between number wrong type", fr("engagementScore", segment.Between, `[1, "2"]`), map[string]string{"rules[0].value": "must be two numbers for between"}},
		{"between time reversed", fr("createdAt", segment.Between, `["2026-02-01", "2026-01-01"]`), map[string]string{"rules[0].value": "the first bound must not be after the second"}},
		{"between time reversed by offset", fr("createdAt", segment.Between, `["2026-01-01T10:00:00Z", "2026-01-01T11:00:00+02:00"]`), map[string]string{"rules[0].value": "the first bound must not be after the second"}},
		{"between time wrong type", fr("createdAt", segment.Between, `["2026-01-01", 5]`), map[string]string{"rules[0].value": "must be two dates (2026-01-31) or RFC 3339 times for between"}},
		// exists
		{"exists with a value", fr("email", segment.Exists, `"x"`), map[string]string{"rules[0].value": "exists takes no value"}},
		{"notExists with false", fr("emailOptIn", segment.NotExists, `false`), map[string]string{"rules[0].value": "notExists takes no value"}},
		{"exists with empty list", fr("tags", segment.Exists, `[]`), map[string]string{"rules[0].value": "exists takes no value"}},
		// durations
		{"withinLast a number", fr("lastActivityAt", segment.WithinLast, `30`), map[string]string{"rules[0].value": `must be a duration such as "30d" or "12h" for withinLast`}},
		{"withinLast zero", fr("lastActivityAt", segment.WithinLast, `"0d"`), map[string]string{"rules[0].value": `"0d" is not a duration`}},
		{"withinLast years", fr("lastActivityAt", segment.WithinLast, `"1y"`), map[string]string{"rules[0].value": `"1y" is not a duration`}},
		{"withinLast negative", fr("lastActivityAt", segment.WithinLast, `"-1d"`), map[string]string{"rules[0].value": `"-1d" is not a duration`}},
		{"notWithinLast too long", fr("lastActivityAt", segment.NotWithinLast, `"3651d"`), map[string]string{"rules[0].value": `"3651d" is longer than ten years`}},
		{"notWithinLast a Go duration", fr("lastActivityAt", segment.NotWithinLast, `"1h30m"`), map[string]string{"rules[0].value": "is not a duration"}},
		// not and within belong elsewhere
		{"not on a field", segment.Rule{Field: "email", Operator: segment.Eq, Value: raw(`"x"`), Not: true}, map[string]string{"rules[0].not": "only a group may be negated"}},
		{"within on a field", segment.Rule{Field: "lastActivityAt", Operator: segment.WithinLast, Value: raw(`"30d"`), Within: "30d"}, map[string]string{"rules[0].within": "only an activity condition has a window; for a date field use withinLast"}},
		{"not, within and no field", segment.Rule{Not: true, Within: "30d"}, map[string]string{
			"rules[0].not":    "only a group may be negated",
			"rules[0].within": "only an activity condition has a window",
			"rules[0].field":  "is required",
		}},
		{"not and bad value", segment.Rule{Field: "engagementScore", Operator: segment.Gt, Value: raw(`"x"`), Not: true}, map[string]string{
			"rules[0].not":   "only a group may be negated",
			"rules[0].value": "must be a number for gt",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, p := segment.Rules{Rules: []segment.Rule{tt.rule}}.Check()
			assertProblems(t, tt.want, p)
			assert.Equal(t, segment.Node{}, n, "no node when there are problems")
		})
	}
}

func TestListLimit(t *testing.T) {
	items := make([]string, segment.MaxList)
	for i := range items {
		items[i] = fmt.Sprint(i)
	}
	n := checkOne(t, fr("sclMemberId", segment.In, "["+strings.Join(items, ",")+"]"))
	require.NotNil(t, n.Field)
	assert.Len(t, n.Field.Value, segment.MaxList)
	assert.IsType(t, []float64{}, n.Field.Value)

	_, p := segment.Rules{Rules: []segment.Rule{fr("sclMemberId", segment.Nin, "["+strings.Join(append(items, "1"), ",")+"]")}}.Check()
	assertProblems(t, map[string]string{"rules[0].value": "holds at most 1000 values"}, p)
}

func TestGroups(t *testing.T) {
	email := fr("email", segment.Exists, "")
	emailNode := segment.Node{Field: &segment.FieldCond{Field: field(t, "email"), Op: segment.Exists}}
	tests := []struct {
		name  string
		rules segment.Rules
		want  segment.Node
	}{
		{"empty group", segment.Rules{}, segment.Node{Group: &segment.Group{}}},
		{"empty group negated", segment.Rules{Not: true}, segment.Node{Group: &segment.Group{Not: true}}},
		{"no combinator is AND", segment.Rules{Rules: []segment.Rule{email}}, segment.Node{Group: &segment.Group{Nodes: []segment.Node{emailNode}}}},
		{"AND", segment.Rules{Combinator: "AND", Rules: []segment.Rule{email}}, segment.Node{Group: &segment.Group{Nodes: []segment.Node{emailNode}}}},
		{"and lower case", segment.Rules{Combinator: "and", Rules: []segment.Rule{email}}, segment.Node{Group: &segment.Group{Nodes: []segment.Node{emailNode}}}},
		{"OR", segment.Rules{Combinator: "OR", Rules: []segment.Rule{email}}, segment.Node{Group: &segment.Group{Or: true, Nodes: []segment.Node{emailNode}}}},
		{"Or mixed case", segment.Rules{Combinator: "Or", Rules: []segment.Rule{email}}, segment.Node{Group: &segment.Group{Or: true, Nodes: []segment.Node{emailNode}}}},
		{"not at the top", segment.Rules{Combinator: "OR", Not: true, Rules: []segment.Rule{email, email}}, segment.Node{Group: &segment.Group{Or: true, Not: true, Nodes: []segment.Node{emailNode, emailNode}}}},
		{"nested group", segment.Rules{Rules: []segment.Rule{email, grp("or", true, email)}}, segment.Node{Group: &segment.Group{Nodes: []segment.Node{
			emailNode,
			{Group: &segment.Group{Or: true, Not: true, Nodes: []segment.Node{emailNode}}},
		}}}},
		{"nested group of rules only", segment.Rules{Rules: []segment.Rule{{Rules: []segment.Rule{email}}}}, segment.Node{Group: &segment.Group{Nodes: []segment.Node{
			{Group: &segment.Group{Nodes: []segment.Node{emailNode}}},
		}}}},
		{"nested empty group of combinator only", segment.Rules{Rules: []segment.Rule{{Combinator: "OR"}}}, segment.Node{Group: &segment.Group{Nodes: []segment.Node{
			{Group: &segment.Group{Or: true}},
		}}}},
		{"nested empty negated group", segment.Rules{Rules: []segment.Rule{{Not: true, Rules: []segment.Rule{}}}}, segment.Node{Group: &segment.Group{Nodes: []segment.Node{
			{Group: &segment.Group{Not: true}},
		}}}},
		{"three deep", segment.Rules{Combinator: "OR", Rules: []segment.Rule{grp("AND", false, grp("OR", true, email), email)}}, segment.Node{Group: &segment.Group{Or: true, Nodes: []segment.Node{
			{Group: &segment.Group{Nodes: []segment.Node{
				{Group: &segment.Group{Or: true, Not: true, Nodes: []segment.Node{emailNode}}},
				emailNode,
			}}},
		}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, p := tt.rules.Check()
			require.Nil(t, p)
			assert.Equal(t, tt.want, n)
		})
	}
}

func TestGroupProblems(t *testing.T) {
	email := fr("email", segment.Exists, "")
	m := segment.ActivityMatch{Type: "TEETIME_BOOKED"}
	tests := []struct {
		name  string
		rules segment.Rules
		want  map[string]string
	}{
		{"bad combinator at the top", segment.Rules{Combinator: "XOR", Rules: []segment.Rule{email}}, map[string]string{"combinator": "must be AND or OR"}},
		{"combinator with white space", segment.Rules{Combinator: " AND ", Rules: []segment.Rule{email}}, map[string]string{"combinator": "must be AND or OR"}},
		{"symbolic combinator", segment.Rules{Combinator: "&&", Rules: []segment.Rule{email}}, map[string]string{"combinator": "must be AND or OR"}},
		{"bad combinator nested", segment.Rules{Rules: []segment.Rule{email, grp("NOR", false, email)}}, map[string]string{"rules[1].combinator": "must be AND or OR"}},
		{"group with a field", segment.Rules{Rules: []segment.Rule{{Combinator: "AND", Field: "email", Rules: []segment.Rule{email}}}}, map[string]string{"rules[0].rules": "a group has only combinator, not and rules"}},
		{"group with an operator", segment.Rules{Rules: []segment.Rule{{Combinator: "AND", Operator: segment.Eq, Rules: []segment.Rule{email}}}}, map[string]string{"rules[0].rules": "a group has only combinator, not and rules"}},
		{"group with a value", segment.Rules{Rules: []segment.Rule{{Rules: []segment.Rule{email}, Value: raw(`1`)}}}, map[string]string{"rules[0].rules": "a group has only combinator, not and rules"}},
		{"group with an activity", segment.Rules{Rules: []segment.Rule{{Combinator: "OR", Activity: &m, Rules: []segment.Rule{email}}}}, map[string]string{"rules[0].rules": "a group has only combinator, not and rules"}},
		{"group with a window", segment.Rules{Rules: []segment.Rule{{Combinator: "OR", Within: "30d"}}}, map[string]string{"rules[0].rules": "a group has only combinator, not and rules"}},
		{"field rule with a combinator is a group", segment.Rules{Rules: []segment.Rule{{Field: "email", Operator: segment.Exists, Combinator: "AND"}}}, map[string]string{"rules[0].rules": "a group has only combinator, not and rules"}},
		{"bad combinator and bad rule inside", segment.Rules{Rules: []segment.Rule{grp("XOR", true, fr("nope", segment.Eq, `1`), email, grp("AND", false, fr("email", "", "")))}}, map[string]string{
			"rules[0].combinator":                 "must be AND or OR",
			"rules[0].rules[0].field":             `unknown field "nope"`,
			"rules[0].rules[2].rules[0].operator": "is required",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, p := tt.rules.Check()
			assertProblems(t, tt.want, p)
			assert.Equal(t, segment.Node{}, n)
		})
	}
}

// nest wraps leaf in k nested groups.
func nest(k int, leaf segment.Rule) segment.Rule {
	r := leaf
	for range k {
		r = grp("AND", false, r)
	}
	return r
}

func TestMaxDepth(t *testing.T) {
	leaf := fr("email", segment.Exists, "")
	// The top group is at depth 0: MaxDepth-1 nested groups are allowed.
	n, p := segment.Rules{Rules: []segment.Rule{nest(segment.MaxDepth-1, leaf)}}.Check()
	require.Nil(t, p)
	depth := 0
	for g := n.Group; g != nil; g = g.Nodes[0].Group {
		depth++
		if g.Nodes[0].Group == nil {
			assert.NotNil(t, g.Nodes[0].Field)
		}
	}
	assert.Equal(t, segment.MaxDepth, depth, "groups in all, the top one included")

	_, p = segment.Rules{Rules: []segment.Rule{nest(segment.MaxDepth, leaf)}}.Check()
	path := strings.Repeat("rules[0].", segment.MaxDepth) + "rules"
	assertProblems(t, map[string]string{path: "groups nest at most 8 deep"}, p)

	// Whatever is below the limit is not checked any further, and a second
	// too deep branch is reported on its own path.
	_, p = segment.Rules{Rules: []segment.Rule{
		nest(segment.MaxDepth+3, fr("nope", "", "")),
		leaf,
		nest(segment.MaxDepth, leaf),
	}}.Check()
	assertProblems(t, map[string]string{
		strings.Repeat("rules[0].", segment.MaxDepth) + "rules":                 "groups nest at most 8 deep",
		"rules[2]." + strings.Repeat("rules[0].", segment.MaxDepth-1) + "rules": "groups nest at most 8 deep",
	}, p)
}

func TestMaxRules(t *testing.T) {
	leaf := fr("email", segment.Exists, "")
	rules := func(n int) []segment.Rule {
		return slices.Repeat([]segment.Rule{leaf}, n)
	}
	n, p := segment.Rules{Rules: rules(segment.MaxRules)}.Check()
	require.Nil(t, p)
	assert.Len(t, n.Group.Nodes, segment.MaxRules)

	_, p = segment.Rules{Rules: rules(segment.MaxRules + 1)}.Check()
	assertProblems(t, map[string]string{"rules": "at most 200 rules in all"}, p)

	// Groups count as rules, and rules count at every depth.
	_, p = segment.Rules{Rules: []segment.Rule{grp("AND", false, rules(segment.MaxRules-1)...)}}.Check()
	require.Nil(t, p, "a group of 199 rules is 200 rules")
	_, p = segment.Rules{Rules: []segment.Rule{grp("AND", false, rules(segment.MaxRules)...)}}.Check()
	assertProblems(t, map[string]string{"rules": "at most 200 rules in all"}, p)
	_, p = segment.Rules{Rules: []segment.Rule{
		grp("OR", false, rules(100)...),
		grp("OR", false, grp("AND", false, rules(99)...)),
	}}.Check()
	assertProblems(t, map[string]string{"rules": "at most 200 rules in all"}, p)

	// Reported once, beside the problems of the rules.
	_, p = segment.Rules{Rules: append(rules(segment.MaxRules+50), fr("nope", segment.Eq, `1`))}.Check()
	assertProblems(t, map[string]string{
		"rules":            "at most 200 rules in all",
		"rules[250].field": `unknown field "nope"`,
	}, p)
}

func TestEveryProblemAtOnce(t *testing.T) {
	rules := segment.Rules{Combinator: "AND", Rules: []segment.Rule{
		fr("nope", segment.Eq, `"x"`),
		grp("or", false,
			fr("email", "", ""),
			fr("engagementScore", segment.Gt, `"high"`),
			fr("emailOptIn", segment.Eq, `true`),
		),
		fr("status", segment.Eq, `"gone"`),
		ar(segment.ActivityMatch{Type: "nope"}, segment.Gte, `-1`, "1y"),
		grp("XOR", false, segment.Rule{Field: "emailOptIn", Operator: segment.Eq, Value: raw(`true`), Not: true}),
		fr("lastActivityAt", segment.WithinLast, `"30d"`),
		fr("tags", segment.HasAnyTag, `[]`),
		grp("AND", true, grp("OR", false, fr("createdAt", segment.Between, `["2026-02-01", "2026-01-01"]`))),
	}}
	n, p := rules.Check()
	assert.Equal(t, segment.Node{}, n)
	assertProblems(t, map[string]string{
		"rules[0].field":                   `unknown field "nope"`,
		"rules[1].rules[0].operator":       "is required",
		"rules[1].rules[1].value":          "must be a number for gt",
		"rules[2].value":                   "must be one of ACTIVE, ARCHIVED, MERGED for eq",
		"rules[3].activity.type":           `unknown activity type "nope"`,
		"rules[3].within":                  `"1y" is not a duration`,
		"rules[3].value":                   "must be a whole number of at least 0 for gte",
		"rules[4].combinator":              "must be AND or OR",
		"rules[4].rules[0].not":            "only a group may be negated",
		"rules[6].value":                   "must be a non-empty array for hasAnyTag",
		"rules[7].rules[0].rules[0].value": "the first bound must not be after the second",
	}, p)
}

func TestActivityType(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"TEETIME_BOOKED", "TEETIME_BOOKED", true},
		{"teetime_booked", "TEETIME_BOOKED", true},
		{" TeeTime_Booked ", "TEETIME_BOOKED", true},
		{"teetime.booked", "TEETIME_BOOKED", true},
		{" teetime.booked ", "TEETIME_BOOKED", true},
		{"email.opened", "EMAIL_OPENED", true},
		{"contactPreference.updated", "CONTACT_PREFERENCE_UPDATED", true},
		{"payment.failed", "PAYMENT_FAILED", true},
		{"VISIT", "VISIT", true},
		{"note_added", "NOTE_ADDED", true},
		{"CHURN_RISK_HIGH", "CHURN_RISK_HIGH", true},
		{"TEETIME.BOOKED", "", false}, // upstream types are as the upstream spells them
		{"teetime.cancelled", "", false},
		{"contactpreference.updated", "", false},
		{"nope", "", false},
		{"", "", false},
		{"   ", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := segment.ActivityType(tt.in)
			assert.Equal(t, tt.ok, ok)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestActivityConditionValues(t *testing.T) {
	booked := segment.ActivityMatch{Type: "TEETIME_BOOKED"}
	tests := []struct {
		name string
		rule segment.Rule
		want segment.ActivityCond
	}{
		{"type, count and window", ar(booked, segment.Gte, `3`, "30d"), segment.ActivityCond{Types: []string{"TEETIME_BOOKED"}, Within: 30 * day, Op: segment.Gte, Count: 3}},
		{"upstream type", ar(segment.ActivityMatch{Type: "teetime.booked"}, segment.Gt, `0`, ""), segment.ActivityCond{Types: []string{"TEETIME_BOOKED"}, Op: segment.Gt, Count: 0}},
		{"lower-case type", ar(segment.ActivityMatch{Type: "email_opened"}, segment.Lt, `2`, "2w"), segment.ActivityCond{Types: []string{"EMAIL_OPENED"}, Within: 14 * day, Op: segment.Lt, Count: 2}},
		{"manual type", ar(segment.ActivityMatch{Type: "visit"}, segment.Exists, "", "90m"), segment.ActivityCond{Types: []string{"VISIT"}, Within: 90 * time.Minute, Op: segment.Exists}},
		{"category only", ar(segment.ActivityMatch{Category: "booking"}, segment.Exists, "", ""), segment.ActivityCond{Category: "BOOKING", Op: segment.Exists}},
		{"category trimmed", ar(segment.ActivityMatch{Category: " Golf "}, segment.NotExists, "", "12h"), segment.ActivityCond{Category: "GOLF", Within: 12 * time.Hour, Op: segment.NotExists}},
		{"channel only, upper-cased", ar(segment.ActivityMatch{Channel: " email "}, segment.Eq, `1`, ""), segment.ActivityCond{Channel: "EMAIL", Op: segment.Eq, Count: 1}},
		{"type, category and channel", ar(segment.ActivityMatch{Type: "message.sent", Category: "communication", Channel: "sms"}, segment.Lte, `5`, "7d"), segment.ActivityCond{Types: []string{"MESSAGE_SENT"}, Category: "COMMUNICATION", Channel: "SMS", Within: 7 * day, Op: segment.Lte, Count: 5}},
		{"neq zero", ar(booked, segment.Neq, `0`, ""), segment.ActivityCond{Types: []string{"TEETIME_BOOKED"}, Op: segment.Neq}},
		{"whole number written as a fraction", ar(booked, segment.Eq, `2.0`, ""), segment.ActivityCond{Types: []string{"TEETIME_BOOKED"}, Op: segment.Eq, Count: 2}},
		{"count in exponent form", ar(booked, segment.Gte, `1e3`, ""), segment.ActivityCond{Types: []string{"TEETIME_BOOKED"}, Op: segment.Gte, Count: 1000}},
		{"largest count", ar(booked, segment.Lt, `2147483647`, ""), segment.ActivityCond{Types: []string{"TEETIME_BOOKED"}, Op: segment.Lt, Count: 2147483647}},
		{"between", ar(booked, segment.Between, `[1, 3]`, "30d"), segment.ActivityCond{Types: []string{"TEETIME_BOOKED"}, Within: 30 * day, Op: segment.Between, Bounds: [2]int64{1, 3}}},
		{"between equal bounds", ar(booked, segment.Between, `[0, 0]`, ""), segment.ActivityCond{Types: []string{"TEETIME_BOOKED"}, Op: segment.Between, Bounds: [2]int64{0, 0}}},
		{"exists with null", ar(booked, segment.Exists, `null`, ""), segment.ActivityCond{Types: []string{"TEETIME_BOOKED"}, Op: segment.Exists}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := checkOne(t, tt.rule)
			require.Nil(t, n.Group)
			require.Nil(t, n.Field)
			require.NotNil(t, n.Activity)
			assert.Equal(t, tt.want, *n.Activity)
		})
	}
}

func TestActivityConditionProblems(t *testing.T) {
	booked := segment.ActivityMatch{Type: "TEETIME_BOOKED"}
	counts := "eq, neq, lt, lte, gt, gte, between, exists, notExists"
	tests := []struct {
		name string
		rule segment.Rule
		want map[string]string
	}{
		{"matches nothing", ar(segment.ActivityMatch{}, segment.Exists, "", ""), map[string]string{"rules[0].activity": "must name a type, a category or a channel"}},
		{"unknown type", ar(segment.ActivityMatch{Type: "nope"}, segment.Exists, "", ""), map[string]string{"rules[0].activity.type": `unknown activity type "nope": an activity type (TEETIME_BOOKED) or an upstream event type (teetime.booked)`}},
		{"blank type", ar(segment.ActivityMatch{Type: "  "}, segment.Exists, "", ""), map[string]string{"rules[0].activity": "must name a type, a category or a channel"}},
		{"upstream type upper-cased", ar(segment.ActivityMatch{Type: "TEETIME.BOOKED"}, segment.Exists, "", ""), map[string]string{"rules[0].activity.type": "unknown activity type"}},
		{"unknown category", ar(segment.ActivityMatch{Category: "golfing"}, segment.Exists, "", ""), map[string]string{"rules[0].activity.category": "must be one of MEMBERSHIP, BOOKING, COMMUNICATION, ENGAGEMENT, FINANCIAL, GOLF, MARKETING, SUPPORT, SOCIAL, SYSTEM"}},
		{"unknown type and category", ar(segment.ActivityMatch{Type: "x", Category: "y", Channel: "SMS"}, segment.Exists, "", ""), map[string]string{
			"rules[0].activity.type":     `unknown activity type "x"`,
			"rules[0].activity.category": "must be one of",
		}},
		{"zero window", ar(booked, segment.Exists, "", "0d"), map[string]string{"rules[0].within": `"0d" is not a duration`}},
		{"window in years", ar(booked, segment.Exists, "", "1y"), map[string]string{"rules[0].within": `"1y" is not a duration`}},
		{"window too long", ar(booked, segment.Exists, "", "600w"), map[string]string{"rules[0].within": `"600w" is longer than ten years`}},
		{"no operator", ar(booked, "", `1`, ""), map[string]string{"rules[0].operator": "is required: a count comparison (gte with a value), exists or notExists"}},
		{"in is not a count operator", ar(booked, segment.In, `[1]`, ""), map[string]string{"rules[0].operator": "in does not compare a count: use one of " + counts}},
		{"withinLast is not a count operator", ar(booked, segment.WithinLast, `"30d"`, ""), map[string]string{"rules[0].operator": "withinLast does not compare a count"}},
		{"contains is not a count operator", ar(booked, segment.Contains, `"x"`, ""), map[string]string{"rules[0].operator": "contains does not compare a count"}},
		{"with a field", segment.Rule{Field: "email", Activity: &booked, Operator: segment.Exists}, map[string]string{"rules[0].field": "an activity condition has no field"}},
		{"negated", segment.Rule{Activity: &booked, Operator: segment.Exists, Not: true}, map[string]string{"rules[0].not": "only a group may be negated; for no such activity use notExists"}},
		{"exists with a value", ar(booked, segment.Exists, `1`, ""), map[string]string{"rules[0].value": "exists takes no value"}},
		{"notExists with a value", ar(booked, segment.NotExists, `0`, ""), map[string]string{"rules[0].value": "notExists takes no value"}},
		{"count missing", ar(booked, segment.Gte, "", ""), map[string]string{"rules[0].value": "must be a whole number of at least 0 for gte"}},
		{"count negative", ar(booked, segment.Gt, `-1`, ""), map[string]string{"rules[0].value": "must be a whole number of at least 0 for gt"}},
		{"count fraction", ar(booked, segment.Lt, `1.5`, ""), map[string]string{"rules[0].value": "must be a whole number of at least 0 for lt"}},
		{"count as string", ar(booked, segment.Lte, `"3"`, ""), map[string]string{"rules[0].value": "must be a whole number of at least 0 for lte"}},
		{"count too large", ar(booked, segment.Neq, `2147483648`, ""), map[string]string{"rules[0].value": "must be a whole number of at least 0 for neq"}},
		{"count as list", ar(booked, segment.Eq, `[1]`, ""), map[string]string{"rules[0].value": "must be a whole number of at least 0 for eq"}},
		{"between missing", ar(booked, segment.Between, "", ""), map[string]string{"rules[0].value": "must be two whole numbers of at least 0 for between"}},
		{"between one bound", ar(booked, segment.Between, `[1]`, ""), map[string]string{"rules[0].value": "must be two whole numbers of at least 0 for between"}},
		{"between three bounds", ar(booked, segment.Between, `[1, 2, 3]`, ""), map[string]string{"rules[0].value": "must be two whole numbers"}},
		{"between negative", ar(booked, segment.Between, `[-1, 2]`, ""), map[string]string{"rules[0].value": "must be two whole numbers"}},
		{"between fraction", ar(booked, segment.Between, `[1, 2.5]`, ""), map[string]string{"rules[0].value": "must be two whole numbers"}},
		{"between not a list", ar(booked, segment.Between, `3`, ""), map[string]string{"rules[0].value": "must be two whole numbers"}},
		{"between reversed", ar(booked, segment.Between, `[3, 1]`, ""), map[string]string{"rules[0].value": "the first bound must not exceed the second"}},
		{"everything wrong", segment.Rule{Field: "email", Activity: &segment.ActivityMatch{}, Not: true, Within: "soon"}, map[string]string{
			"rules[0].field":    "an activity condition has no field",
			"rules[0].not":      "only a group may be negated",
			"rules[0].activity": "must name a type, a category or a channel",
			"rules[0].within":   `"soon" is not a duration`,
			"rules[0].operator": "is required",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, p := segment.Rules{Rules: []segment.Rule{tt.rule}}.Check()
			assertProblems(t, tt.want, p)
			assert.Equal(t, segment.Node{}, n)
		})
	}
}

// TestRulesFromJSON checks rules as the API receives them.
func TestRulesFromJSON(t *testing.T) {
	var g segment.Rules
	require.NoError(t, json.Unmarshal([]byte(`{
		"combinator": "or",
		"rules": [
			{"field": "status", "operator": "eq", "value": "active"},
			{"field": "lifecycleStage", "operator": "in", "value": ["member", "lapsed"]},
			{"activity": {"type": "teetime.booked"}, "operator": "gte", "value": 2, "within": "30d"},
			{"combinator": "and", "not": true, "rules": [
				{"field": "tags", "operator": "hasTag", "value": "VIP"},
				{"field": "lastActivityAt", "operator": "notWithinLast", "value": "45d"}
			]},
			{"field": "email", "operator": "exists"}
		]
	}`), &g))
	n, p := g.Check()
	require.Nil(t, p)
	assert.Equal(t, segment.Node{Group: &segment.Group{Or: true, Nodes: []segment.Node{
		{Field: &segment.FieldCond{Field: field(t, "status"), Op: segment.Eq, Value: "ACTIVE"}},
		{Field: &segment.FieldCond{Field: field(t, "lifecycleStage"), Op: segment.In, Value: []string{"MEMBER", "LAPSED"}}},
		{Activity: &segment.ActivityCond{Types: []string{"TEETIME_BOOKED"}, Within: 30 * day, Op: segment.Gte, Count: 2}},
		{Group: &segment.Group{Not: true, Nodes: []segment.Node{
			{Field: &segment.FieldCond{Field: field(t, "tags"), Op: segment.HasTag, Value: "vip"}},
			{Field: &segment.FieldCond{Field: field(t, "lastActivityAt"), Op: segment.NotWithinLast, Within: 45 * day}},
		}}},
		{Field: &segment.FieldCond{Field: field(t, "email"), Op: segment.Exists}},
	}}}, n)

	// An explicit "value": null is no value.
	require.NoError(t, json.Unmarshal([]byte(`{"rules": [{"field": "email", "operator": "exists", "value": null}]}`), &g))
	_, p = g.Check()
	assert.Nil(t, p)
}

// Nulls are no values, blanks name nothing, and messages state the limits.
func TestNullsBlanksAndLimits(t *testing.T) {
	booked := segment.ActivityMatch{Type: "TEETIME_BOOKED"}
	t.Run("null count is no count", func(t *testing.T) {
		_, p := segment.Rules{Rules: []segment.Rule{ar(booked, segment.Eq, `null`, "")}}.Check()
		assertProblems(t, map[string]string{"rules[0].value": "must be a whole number of at least 0 for eq"}, p)
	})
	t.Run("null bounds are no bounds", func(t *testing.T) {
		_, p := segment.Rules{Rules: []segment.Rule{ar(booked, segment.Between, `[null, null]`, "")}}.Check()
		assertProblems(t, map[string]string{"rules[0].value": "must be two whole numbers of at least 0 for between"}, p)
		_, p = segment.Rules{Rules: []segment.Rule{fr("engagementScore", segment.Between, `[null, 5]`)}}.Check()
		assertProblems(t, map[string]string{"rules[0].value": "must be two numbers for between"}, p)
	})
	t.Run("null list elements are no values", func(t *testing.T) {
		_, p := segment.Rules{Rules: []segment.Rule{fr("engagementScore", segment.In, `[null]`)}}.Check()
		assertProblems(t, map[string]string{"rules[0].value": "[0] must be a number for in"}, p)
		_, p = segment.Rules{Rules: []segment.Rule{fr("email", segment.Nin, `["a", null]`)}}.Check()
		assertProblems(t, map[string]string{"rules[0].value": "[1] must be a string for nin"}, p)
	})
	t.Run("a blank category or channel names nothing", func(t *testing.T) {
		for _, m := range []segment.ActivityMatch{{Category: "  "}, {Channel: "  "}, {Category: " ", Channel: "\t"}} {
			_, p := segment.Rules{Rules: []segment.Rule{ar(m, segment.Exists, "", "")}}.Check()
			assertProblems(t, map[string]string{"rules[0].activity": "must name a type, a category or a channel"}, p)
		}
	})
	t.Run("the tag message states the tag limit", func(t *testing.T) {
		_, p := segment.Rules{Rules: []segment.Rule{fr("tags", segment.HasTag, `"`+strings.Repeat("a", 51)+`"`)}}.Check()
		assertProblems(t, map[string]string{"rules[0].value": "a tag (1 to 50 characters)"}, p)
	})
}

func TestActivityLists(t *testing.T) {
	ops := segment.CountOperators()
	assert.Equal(t, []segment.Operator{segment.Eq, segment.Neq, segment.Lt, segment.Lte, segment.Gt, segment.Gte, segment.Between, segment.Exists, segment.NotExists}, ops)
	ops[0] = "changed"
	assert.Equal(t, segment.Eq, segment.CountOperators()[0], "the list answered is a copy")

	types := segment.ActivityTypes()
	assert.Contains(t, types, "TEETIME_BOOKED")
	for _, typ := range types {
		got, ok := segment.ActivityType(typ)
		assert.True(t, ok, typ)
		assert.Equal(t, typ, got)
	}
	cats := segment.ActivityCategories()
	assert.Contains(t, cats, "BOOKING")
	for _, c := range cats {
		_, p := segment.Rules{Rules: []segment.Rule{ar(segment.ActivityMatch{Category: strings.ToLower(c)}, segment.Exists, "", "")}}.Check()
		assert.Nil(t, p, c)
	}
}
