package segment

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/domain/timeline"
)

// Operator compares a field, or an activity count, with a value.
type Operator string

// Operators (docs/segments.md).
const (
	Eq            Operator = "eq"
	Neq           Operator = "neq"
	In            Operator = "in"
	Nin           Operator = "nin"
	Lt            Operator = "lt"
	Lte           Operator = "lte"
	Gt            Operator = "gt"
	Gte           Operator = "gte"
	Between       Operator = "between"
	Contains      Operator = "contains"
	StartsWith    Operator = "startsWith"
	Exists        Operator = "exists"
	NotExists     Operator = "notExists"
	WithinLast    Operator = "withinLast"
	NotWithinLast Operator = "notWithinLast"
	HasTag        Operator = "hasTag"
	HasAnyTag     Operator = "hasAnyTag"
	HasAllTags    Operator = "hasAllTags"
)

// countOperators compare the number of matching activities.
var countOperators = []Operator{Eq, Neq, Lt, Lte, Gt, Gte, Between, Exists, NotExists}

// CountOperators lists the operators of an activity condition.
func CountOperators() []Operator { return slices.Clone(countOperators) }

// ActivityTypes lists the activity types a condition may name (the
// upstream event types they come from are accepted too).
func ActivityTypes() []string { return enumOf(timeline.Types) }

// ActivityCategories lists the activity categories.
func ActivityCategories() []string { return enumOf(timeline.Categories) }

// Combinators.
const (
	And = "AND"
	Or  = "OR"
)

// Limits of a rule tree, so one segment cannot make a statement the
// database takes minutes to plan.
const (
	MaxDepth = 8
	MaxRules = 200
	MaxList  = 1000 // values of in, nin, hasAnyTag, hasAllTags
)

// Rules is a group of rules as staff write them: the specification's
// {rules: [...], combinator} with nesting.
type Rules struct {
	Combinator string `json:"combinator"`
	Not        bool   `json:"not,omitempty"`
	Rules      []Rule `json:"rules"`
}

// Rule is one condition: on a field ({field, operator, value}), on the
// timeline ({activity, operator, value, within}), or a nested group
// ({combinator, not, rules}).
type Rule struct {
	Field    string          `json:"field,omitempty"`
	Operator Operator        `json:"operator,omitempty"`
	Value    json.RawMessage `json:"value,omitempty"`

	Activity *ActivityMatch `json:"activity,omitempty"`
	Within   string         `json:"within,omitempty"`

	Combinator string `json:"combinator,omitempty"`
	Not        bool   `json:"not,omitempty"`
	Rules      []Rule `json:"rules,omitempty"`
}

// ActivityMatch says which timeline activities a condition counts: of a
// type (an activity type such as TEETIME_BOOKED, or the upstream event
// type teetime.booked), a category, a channel, or several of these.
type ActivityMatch struct {
	Type     string `json:"type,omitempty"`
	Category string `json:"category,omitempty"`
	Channel  string `json:"channel,omitempty"`
}

func (r Rule) isGroup() bool { return r.Rules != nil || r.Combinator != "" }

// Problems maps a rule's path (rules[2].value) to what is wrong with it.
type Problems map[string]string

// Node is a checked rule: exactly one of Group, Field and Activity is set,
// with values of the types the field's kind asks for.
type Node struct {
	Group    *Group
	Field    *FieldCond
	Activity *ActivityCond
}

// Group is a checked group: all (And) or any (Or) of its nodes, negated
// when Not. An empty group matches everyone.
type Group struct {
	Or    bool
	Not   bool
	Nodes []Node
}

// FieldCond is a checked field condition. Value holds, by operator and
// kind: a string, float64, bool or time.Time; []string or []float64 for
// in, nin and the tag lists; [2]float64 or [2]time.Time for between;
// nothing for exists and notExists. Within holds withinLast's duration.
type FieldCond struct {
	Field  Field
	Op     Operator
	Value  any
	Within time.Duration
}

// ActivityCond counts the activities of a profile that match Types (any
// of them; none means every type), Category and Channel, over the last
// Within (all time when zero), and compares the count: Count for the
// comparisons, [2]int64 bounds for between.
type ActivityCond struct {
	Types    []string
	Category string
	Channel  string
	Within   time.Duration
	Op       Operator
	Count    int64
	Bounds   [2]int64
}

// Check validates rules and answers them checked. Every problem is
// reported at once, by path.
func (g Rules) Check() (Node, Problems) {
	c := checker{problems: Problems{}}
	n := c.group("", Rule{Combinator: g.Combinator, Not: g.Not, Rules: g.Rules}, 0)
	if len(c.problems) > 0 {
		return Node{}, c.problems
	}
	return n, nil
}

type checker struct {
	problems Problems
	count    int
}

func (c *checker) fail(path, field, format string, args ...any) {
	p := field
	if path != "" {
		p = path + "." + field
	}
	if _, ok := c.problems[p]; !ok {
		c.problems[p] = fmt.Sprintf(format, args...)
	}
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

// group checks a group at path ("" for the top, whose rules are "rules[i]").
func (c *checker) group(path string, r Rule, depth int) Node {
	if depth >= MaxDepth {
		c.fail(path, "rules", "groups nest at most %d deep", MaxDepth)
		return Node{}
	}
	g := &Group{Not: r.Not}
	switch strings.ToUpper(r.Combinator) {
	case And, "":
	case Or:
		g.Or = true
	default:
		c.fail(path, "combinator", "must be AND or OR")
	}
	if r.Field != "" || r.Operator != "" || r.Value != nil || r.Activity != nil || r.Within != "" {
		c.fail(path, "rules", "a group has only combinator, not and rules")
	}
	for i, sub := range r.Rules {
		c.count++
		if c.count == MaxRules+1 {
			c.fail("", "rules", "at most %d rules in all", MaxRules)
		}
		p := join(path, fmt.Sprintf("rules[%d]", i))
		var n Node
		switch {
		case sub.isGroup():
			n = c.group(p, sub, depth+1)
		case sub.Activity != nil:
			n = c.activity(p, sub)
		default:
			n = c.field(p, sub)
		}
		g.Nodes = append(g.Nodes, n)
	}
	return Node{Group: g}
}

func (c *checker) field(path string, r Rule) Node {
	if r.Not {
		c.fail(path, "not", "only a group may be negated: wrap the rule in {\"combinator\": \"AND\", \"not\": true, \"rules\": [...]}")
	}
	if r.Within != "" {
		c.fail(path, "within", "only an activity condition has a window; for a date field use withinLast")
	}
	if r.Field == "" {
		c.fail(path, "field", "is required (or activity, or rules for a group)")
		return Node{}
	}
	f, ok := FieldNamed(r.Field)
	if !ok {
		c.fail(path, "field", "unknown field %q", r.Field)
		return Node{}
	}
	ops := f.Kind.Operators()
	if r.Operator == "" {
		c.fail(path, "operator", "is required")
		return Node{}
	}
	if !slices.Contains(ops, r.Operator) {
		c.fail(path, "operator", "%s is not an operator of %s (a %s): use one of %s", r.Operator, f.Name, f.Kind, list(ops))
		return Node{}
	}
	fc := &FieldCond{Field: f, Op: r.Operator}
	vp := join(path, "value")
	v, ok := c.value(vp, f, r.Operator, r.Value)
	if !ok {
		return Node{}
	}
	switch r.Operator {
	case WithinLast, NotWithinLast:
		fc.Within = v.(time.Duration)
	default:
		fc.Value = v
	}
	return Node{Field: fc}
}

// value decodes and checks a field condition's value.
func (c *checker) value(path string, f Field, op Operator, raw json.RawMessage) (any, bool) {
	bad := func(format string, args ...any) (any, bool) {
		c.problems[path] = fmt.Sprintf(format, args...)
		return nil, false
	}
	present := len(bytes.TrimSpace(raw)) > 0 && !bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
	switch op {
	case Exists, NotExists:
		if present {
			return bad("%s takes no value", op)
		}
		return nil, true
	}
	if !present {
		return bad("is required for %s", op)
	}
	switch op {
	case WithinLast, NotWithinLast:
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return bad("must be a duration such as \"30d\" or \"12h\" for %s", op)
		}
		d, err := ParseDuration(s)
		if err != nil {
			return bad("%v", err)
		}
		return d, true
	case In, Nin, HasAnyTag, HasAllTags:
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil || len(items) == 0 {
			return bad("must be a non-empty array for %s", op)
		}
		if len(items) > MaxList {
			return bad("holds at most %d values", MaxList)
		}
		if f.Kind == Number {
			out := make([]float64, len(items))
			for i, it := range items {
				n, ok := number(it)
				if !ok {
					return bad("[%d] must be a number for %s", i, op)
				}
				out[i] = n
			}
			return out, true
		}
		out := make([]string, len(items))
		for i, it := range items {
			s, ok := c.str(f, it)
			if !ok {
				return bad("[%d] must be %s for %s", i, c.want(f), op)
			}
			out[i] = s
		}
		return out, true
	case Between:
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil || len(items) != 2 {
			return bad("must be an array of two values [from, to] for between")
		}
		switch f.Kind {
		case Number:
			a, ok1 := number(items[0])
			b, ok2 := number(items[1])
			if !ok1 || !ok2 {
				return bad("must be two numbers for between")
			}
			if a > b {
				return bad("the first bound must not exceed the second")
			}
			return [2]float64{a, b}, true
		case Time:
			a, ok1 := instant(items[0])
			b, ok2 := instant(items[1])
			if !ok1 || !ok2 {
				return bad("must be two dates (2026-01-31) or RFC 3339 times for between")
			}
			if a.After(b) {
				return bad("the first bound must not be after the second")
			}
			return [2]time.Time{a, b}, true
		}
	}
	switch f.Kind {
	case Number:
		n, ok := number(raw)
		if !ok {
			return bad("must be a number for %s", op)
		}
		return n, true
	case Boolean:
		var b bool
		if json.Unmarshal(raw, &b) != nil {
			return bad("must be true or false for %s", op)
		}
		return b, true
	case Time:
		t, ok := instant(raw)
		if !ok {
			return bad("must be a date (2026-01-31) or an RFC 3339 time for %s", op)
		}
		return t, true
	}
	s, ok := c.str(f, raw)
	if !ok {
		return bad("must be %s for %s", c.want(f), op)
	}
	if (op == Contains || op == StartsWith) && s == "" {
		return bad("must not be empty for %s", op)
	}
	return s, true
}

func (c *checker) want(f Field) string {
	switch f.Kind {
	case Enum:
		return "one of " + strings.Join(f.Values, ", ")
	case Tags:
		return fmt.Sprintf("a tag (1 to %d characters)", customer.MaxTagLength)
	}
	return "a string"
}

// str decodes a string value; an Enum's must be one of its values (case
// is forgiven: "active" is ACTIVE).
func (c *checker) str(f Field, raw json.RawMessage) (string, bool) {
	var s string
	if isNull(raw) || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	switch f.Kind {
	case Enum:
		s = strings.ToUpper(strings.TrimSpace(s))
		return s, slices.Contains(f.Values, s)
	case Tags:
		// Tags are stored normalised; so are the values they are tested with.
		t, err := customer.NormalizeTag(s)
		return t, err == nil
	}
	return s, true
}

// isNull reports a JSON null, which decodes into a number or a string
// without error, as 0 or "".
func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

func number(raw json.RawMessage) (float64, bool) {
	var n float64
	if isNull(raw) || json.Unmarshal(raw, &n) != nil || math.IsNaN(n) || math.IsInf(n, 0) {
		return 0, false
	}
	return n, true
}

func instant(raw json.RawMessage) (time.Time, bool) {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return time.Time{}, false
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), true
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, true
	}
	return time.Time{}, false
}

func (c *checker) activity(path string, r Rule) Node {
	if r.Field != "" {
		c.fail(path, "field", "an activity condition has no field")
	}
	if r.Not {
		c.fail(path, "not", "only a group may be negated; for no such activity use notExists")
	}
	m := *r.Activity
	ac := &ActivityCond{Category: strings.ToUpper(strings.TrimSpace(m.Category)), Channel: strings.ToUpper(strings.TrimSpace(m.Channel))}
	m.Type = strings.TrimSpace(m.Type)
	if m.Type == "" && ac.Category == "" && ac.Channel == "" {
		c.fail(path, "activity", "must name a type, a category or a channel")
	}
	if m.Type != "" {
		t, ok := ActivityType(m.Type)
		if !ok {
			c.fail(path, "activity.type", "unknown activity type %q: an activity type (TEETIME_BOOKED) or an upstream event type (teetime.booked)", m.Type)
		}
		ac.Types = []string{t}
	}
	if ac.Category != "" && !slices.Contains(timeline.Categories, timeline.Category(ac.Category)) {
		c.fail(path, "activity.category", "must be one of %s", strings.Join(enumOf(timeline.Categories), ", "))
	}
	if r.Within != "" {
		d, err := ParseDuration(r.Within)
		if err != nil {
			c.fail(path, "within", "%v", err)
		}
		ac.Within = d
	}
	if r.Operator == "" {
		c.fail(path, "operator", "is required: a count comparison (gte with a value), exists or notExists")
		return Node{}
	}
	if !slices.Contains(countOperators, r.Operator) {
		c.fail(path, "operator", "%s does not compare a count: use one of %s", r.Operator, list(countOperators))
		return Node{}
	}
	ac.Op = r.Operator
	vp := join(path, "value")
	present := len(bytes.TrimSpace(r.Value)) > 0 && !bytes.Equal(bytes.TrimSpace(r.Value), []byte("null"))
	switch r.Operator {
	case Exists, NotExists:
		if present {
			c.problems[vp] = fmt.Sprintf("%s takes no value", r.Operator)
		}
	case Between:
		var b [2]int64
		var items []json.RawMessage
		ok := json.Unmarshal(r.Value, &items) == nil && len(items) == 2
		for i := 0; ok && i < 2; i++ {
			b[i], ok = count(items[i])
		}
		switch {
		case !ok:
			c.problems[vp] = "must be two whole numbers of at least 0 for between"
		case b[0] > b[1]:
			c.problems[vp] = "the first bound must not exceed the second"
		}
		ac.Bounds = b
	default:
		n, ok := count(r.Value)
		if !ok {
			c.problems[vp] = fmt.Sprintf("must be a whole number of at least 0 for %s", r.Operator)
		}
		ac.Count = n
	}
	return Node{Activity: ac}
}

func count(raw json.RawMessage) (int64, bool) {
	n, ok := number(raw)
	if !ok || n < 0 || n != math.Trunc(n) || n > math.MaxInt32 {
		return 0, false
	}
	return int64(n), true
}

// ActivityType answers the timeline activity type a rule names: an
// activity type as the timeline shows it, or the upstream event type it
// comes from.
func ActivityType(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if t, _, ok := timeline.UpstreamType(s); ok {
		return string(t), true
	}
	u := strings.ToUpper(s)
	if slices.Contains(timeline.Types, timeline.Type(u)) {
		return u, true
	}
	return "", false
}

func list(ops []Operator) string {
	s := make([]string, len(ops))
	for i, o := range ops {
		s[i] = string(o)
	}
	return strings.Join(s, ", ")
}
