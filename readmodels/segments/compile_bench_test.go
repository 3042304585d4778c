package segments

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/clubcrm/crm/domain/segment"
)

// BenchmarkCompile turns a checked rule tree (the specification's example
// with a nested group and an activity condition) into its SQL predicate.
func BenchmarkCompile(b *testing.B) {
	var g segment.Rules
	if err := json.Unmarshal([]byte(`{"combinator": "AND", "rules": [
		{"field": "membershipStatus", "operator": "eq", "value": "ACTIVE"},
		{"field": "membershipTier", "operator": "in", "value": ["Gold", "Platinum"]},
		{"field": "handicap", "operator": "lt", "value": 15},
		{"field": "bookingCount30d", "operator": "gte", "value": 2},
		{"field": "engagementScore", "operator": "gte", "value": 50},
		{"field": "emailOptIn", "operator": "eq", "value": true},
		{"combinator": "OR", "not": true, "rules": [
			{"field": "tags", "operator": "hasAnyTag", "value": ["board", "staff"]},
			{"activity": {"type": "email.opened"}, "operator": "notExists", "within": "60d"}]}]}`), &g); err != nil {
		b.Fatal(err)
	}
	node, p := g.Check()
	if p != nil {
		b.Fatal(p)
	}
	now := time.Now()
	for b.Loop() {
		if _, _, err := refreshSQL(live{Tenant: "club-a", Type: segment.Dynamic, Node: node}, now, nil); err != nil {
			b.Fatal(err)
		}
	}
}
