package segments

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/clubcrm/crm/domain/segment"
	"github.com/clubcrm/crm/readmodels/customers"
)

// params numbers a statement's parameters as a compiled predicate adds
// them.
type params struct{ args []any }

func (p *params) add(v any) string {
	p.args = append(p.args, v)
	return "$" + strconv.Itoa(len(p.args))
}

// needs says what a predicate reads beside the profile's own fields: the
// read models joined to customers, the timeline (activity rules), and the
// version and updatedAt every event moves.
type needs struct{ metrics, currency, scores, activity, stamp bool }

// fieldsOnly reports whether only events that move a profile's own fields
// (customer.MovesFields) can change the predicate's answer for it.
func (n needs) fieldsOnly() bool {
	return !n.metrics && !n.currency && !n.scores && !n.activity && !n.stamp
}

func (n needs) from() string {
	from := "customers c"
	if n.metrics || n.currency {
		from += customers.JoinMetrics
	}
	if n.currency {
		from += customers.JoinCurrency
	}
	if n.scores {
		from += customers.JoinScores
	}
	return from
}

// column is a field's SQL over the customers query (c, m, cur, s).
type column struct {
	expr  string
	needs needs
}

var columns = map[string]column{
	"id":                    {expr: "c.id::text"},
	"authUserId":            {expr: "c.auth_user_id"},
	"email":                 {expr: "c.email"},
	"phoneNumber":           {expr: "c.phone_number"},
	"sclMemberId":           {expr: "c.scl_member_id::float8"},
	"teetimePlayerId":       {expr: "c.teetime_player_id"},
	"messagingContactId":    {expr: "c.messaging_contact_id"},
	"externalIds.mcaV1ZaId": {expr: "(c.external_ids ->> 'mcaV1ZaId')"},
	"externalIds.mcaV1UkId": {expr: "(c.external_ids ->> 'mcaV1UkId')"},
	"externalIds.golfRsaId": {expr: "(c.external_ids ->> 'golfRsaId')"},
	"firstName":             {expr: "c.first_name"},
	"lastName":              {expr: "c.last_name"},
	"displayName":           {expr: "c.display_name"},
	"status":                {expr: "c.status"},
	"lifecycleStage":        {expr: "c.lifecycle_stage"},
	"tags":                  {expr: "c.tags"},
	"engagementScore":       {expr: "s.engagement_score", needs: needs{scores: true}},
	"churnRiskScore":        {expr: "s.churn_risk_score", needs: needs{scores: true}},
	"lifetimeValue":         {expr: "(" + customers.LifetimeValue + ")::float8", needs: needs{currency: true}},
	"lifetimeValueCurrency": {expr: "(" + customers.LifetimeValueCurrency + ")", needs: needs{currency: true}},
	"lastActivityAt":        {expr: "m.last_activity_at", needs: needs{metrics: true}},
	"activityCount30d":      {expr: "coalesce(m.activity_count_30d, 0)::float8", needs: needs{metrics: true}},
	"bookingCount30d":       {expr: "coalesce(m.booking_count_30d, 0)::float8", needs: needs{metrics: true}},
	"handicap":              {expr: "c.handicap::float8"},
	"homeClubId":            {expr: "c.home_club_id"},
	"membershipTier":        {expr: "c.membership_tier"},
	"membershipStatus":      {expr: "c.membership_status"},
	"emailOptIn":            {expr: "c.email_opt_in"},
	"smsOptIn":              {expr: "c.sms_opt_in"},
	"pushOptIn":             {expr: "c.push_opt_in"},
	"whatsappOptIn":         {expr: "c.whatsapp_opt_in"},
	"aliases":               {expr: "c.aliases"},
	"version":               {expr: "c.version::float8", needs: needs{stamp: true}},
	"createdAt":             {expr: "c.created_at"},
	"updatedAt":             {expr: "c.updated_at", needs: needs{stamp: true}},
	"mergedInto":            {expr: "c.merged_into::text"},
}

// compiler turns a checked rule tree into one SQL boolean expression over
// the customers query, for a WHERE clause. Under a NOT every leaf is
// two-valued (a missing value makes a comparison false, never null), so NOT
// of a group is exactly the profiles the group leaves out. Elsewhere a
// leaf is left as its bare comparison: AND and OR without NOT above them
// come out true for exactly the same rows whether a missing value makes a
// leaf null or false, and a bare comparison is one the planner can match
// to an index and estimate (wrapped, the example segment scanned its
// club's every profile and took five times as long).
type compiler struct {
	p       *params
	now     time.Time
	needs   needs
	negated int // how many NOT groups enclose the node being compiled
}

// compile answers the predicate of n, its parameters added to p, evaluated
// as of now (withinLast and activity windows count back from it).
func compile(n segment.Node, p *params, now time.Time) (string, needs, error) {
	c := compiler{p: p, now: now}
	sql, err := c.node(n)
	return sql, c.needs, err
}

func (c *compiler) node(n segment.Node) (string, error) {
	switch {
	case n.Group != nil:
		return c.group(n.Group)
	case n.Field != nil:
		s, err := c.field(n.Field)
		if err != nil {
			return "", err
		}
		if c.negated == 0 {
			return s, nil
		}
		return "coalesce(" + s + ", false)", nil
	case n.Activity != nil:
		return c.activity(n.Activity), nil
	}
	return "", fmt.Errorf("empty rule")
}

func (c *compiler) group(g *segment.Group) (string, error) {
	if len(g.Nodes) == 0 {
		if g.Not {
			return "false", nil
		}
		return "true", nil
	}
	if g.Not {
		c.negated++
		defer func() { c.negated-- }()
	}
	parts := make([]string, len(g.Nodes))
	for i, n := range g.Nodes {
		s, err := c.node(n)
		if err != nil {
			return "", err
		}
		parts[i] = s
	}
	op := " AND "
	if g.Or {
		op = " OR "
	}
	s := "(" + strings.Join(parts, op) + ")"
	if g.Not {
		s = "NOT " + s
	}
	return s, nil
}

func (c *compiler) field(f *segment.FieldCond) (string, error) {
	col, ok := columns[f.Field.Name]
	if !ok {
		return "", fmt.Errorf("field %s has no column", f.Field.Name)
	}
	c.needs.metrics = c.needs.metrics || col.needs.metrics
	c.needs.currency = c.needs.currency || col.needs.currency
	c.needs.scores = c.needs.scores || col.needs.scores
	c.needs.stamp = c.needs.stamp || col.needs.stamp
	x := col.expr
	switch f.Field.Kind {
	case segment.Tags:
		return c.tags(x, f), nil
	case segment.Aliases:
		return c.aliases(x, f), nil
	}
	text := f.Field.Kind == segment.String || f.Field.Kind == segment.Enum
	switch f.Op {
	case segment.Eq:
		return x + " = " + c.typed(f.Value), nil
	case segment.Neq:
		return x + " IS DISTINCT FROM " + c.typed(f.Value), nil
	case segment.In:
		return x + " = ANY(" + c.typed(f.Value) + ")", nil
	case segment.Nin:
		return "NOT coalesce(" + x + " = ANY(" + c.typed(f.Value) + "), false)", nil
	case segment.Lt:
		return x + " < " + c.typed(f.Value), nil
	case segment.Lte:
		return x + " <= " + c.typed(f.Value), nil
	case segment.Gt:
		return x + " > " + c.typed(f.Value), nil
	case segment.Gte:
		return x + " >= " + c.typed(f.Value), nil
	case segment.Between:
		switch b := f.Value.(type) {
		case [2]float64:
			return x + " BETWEEN " + c.p.add(b[0]) + "::float8 AND " + c.p.add(b[1]) + "::float8", nil
		case [2]time.Time:
			return x + " BETWEEN " + c.p.add(b[0]) + "::timestamptz AND " + c.p.add(b[1]) + "::timestamptz", nil
		}
	case segment.Contains:
		return "strpos(lower(" + x + "), lower(" + c.p.add(f.Value) + "::text)) > 0", nil
	case segment.StartsWith:
		return "starts_with(lower(" + x + "), lower(" + c.p.add(f.Value) + "::text))", nil
	case segment.Exists:
		if text {
			return "(" + x + " IS NOT NULL AND " + x + " <> '')", nil
		}
		return x + " IS NOT NULL", nil
	case segment.NotExists:
		if text {
			return "(" + x + " IS NULL OR " + x + " = '')", nil
		}
		return x + " IS NULL", nil
	case segment.WithinLast:
		return x + " >= " + c.p.add(c.now.Add(-f.Within)) + "::timestamptz", nil
	case segment.NotWithinLast:
		return "(" + x + " IS NULL OR " + x + " < " + c.p.add(c.now.Add(-f.Within)) + "::timestamptz)", nil
	}
	return "", fmt.Errorf("operator %s of %s has no SQL", f.Op, f.Field.Name)
}

// typed adds a value with the cast its type needs.
func (c *compiler) typed(v any) string {
	ph := c.p.add(v)
	switch v.(type) {
	case float64:
		return ph + "::float8"
	case bool:
		return ph + "::boolean"
	case time.Time:
		return ph + "::timestamptz"
	case []float64:
		return ph + "::float8[]"
	case []string:
		return ph + "::text[]"
	}
	return ph + "::text"
}

func (c *compiler) tags(x string, f *segment.FieldCond) string {
	switch f.Op {
	case segment.HasTag:
		return x + " @> ARRAY[" + c.p.add(f.Value) + "::text]"
	case segment.HasAnyTag:
		return x + " && " + c.p.add(f.Value) + "::text[]"
	case segment.HasAllTags:
		return x + " @> " + c.p.add(f.Value) + "::text[]"
	case segment.Contains:
		return "EXISTS (SELECT 1 FROM unnest(" + x + ") t WHERE strpos(t, " + c.p.add(f.Value) + "::text) > 0)"
	case segment.Exists:
		return "cardinality(" + x + ") > 0"
	}
	return "cardinality(" + x + ") = 0"
}

func (c *compiler) aliases(x string, f *segment.FieldCond) string {
	any := func(cond string) string {
		return "EXISTS (SELECT 1 FROM jsonb_array_elements(" + x + ") a WHERE " + cond + ")"
	}
	switch f.Op {
	case segment.Eq:
		return any("a ->> 'value' = " + c.p.add(f.Value) + "::text")
	case segment.Contains:
		return any("strpos(lower(a ->> 'value'), lower(" + c.p.add(f.Value) + "::text)) > 0")
	case segment.StartsWith:
		return any("starts_with(lower(a ->> 'value'), lower(" + c.p.add(f.Value) + "::text))")
	case segment.Exists:
		return "jsonb_array_length(" + x + ") > 0"
	}
	return "jsonb_array_length(" + x + ") = 0"
}

// activity counts the profile's timeline activities in the window. The
// count stops one past the number the comparison names, so "at least 2"
// reads at most 3 rows of the index, however busy the profile.
func (c *compiler) activity(a *segment.ActivityCond) string {
	c.needs.activity = true
	where := []string{"a.tenant_id = c.tenant_id", "a.customer_id = c.id"}
	if len(a.Types) > 0 {
		where = append(where, "a.type = ANY("+c.p.add(a.Types)+"::text[])")
	}
	if a.Category != "" {
		where = append(where, "a.category = "+c.p.add(a.Category)+"::text")
	}
	if a.Channel != "" {
		where = append(where, "a.channel = "+c.p.add(a.Channel)+"::text")
	}
	if a.Within > 0 {
		where = append(where, "a.occurred_at >= "+c.p.add(c.now.Add(-a.Within))+"::timestamptz")
	}
	rows := "SELECT 1 FROM activities a WHERE " + strings.Join(where, " AND ")
	switch a.Op {
	case segment.Exists:
		return "EXISTS (" + rows + ")"
	case segment.NotExists:
		return "NOT EXISTS (" + rows + ")"
	}
	limit := a.Count + 1
	if a.Op == segment.Between {
		limit = a.Bounds[1] + 1
	}
	n := "(SELECT count(*) FROM (" + rows + " LIMIT " + strconv.FormatInt(limit, 10) + ") x)"
	switch a.Op {
	case segment.Eq:
		return n + " = " + strconv.FormatInt(a.Count, 10)
	case segment.Neq:
		return n + " <> " + strconv.FormatInt(a.Count, 10)
	case segment.Lt:
		return n + " < " + strconv.FormatInt(a.Count, 10)
	case segment.Lte:
		return n + " <= " + strconv.FormatInt(a.Count, 10)
	case segment.Gt:
		return n + " > " + strconv.FormatInt(a.Count, 10)
	case segment.Gte:
		return n + " >= " + strconv.FormatInt(a.Count, 10)
	}
	return n + " BETWEEN " + strconv.FormatInt(a.Bounds[0], 10) + " AND " + strconv.FormatInt(a.Bounds[1], 10)
}
