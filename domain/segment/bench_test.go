package segment_test

import (
	"encoding/json"
	"testing"

	"github.com/clubcrm/crm/domain/segment"
)

// exampleRules is the specification's example segment with a nested group
// and an activity condition: what staff typically write.
const exampleRules = `{"combinator": "AND", "rules": [
	{"field": "membershipStatus", "operator": "eq", "value": "ACTIVE"},
	{"field": "membershipTier", "operator": "in", "value": ["Gold", "Platinum"]},
	{"field": "handicap", "operator": "lt", "value": 15},
	{"field": "bookingCount30d", "operator": "gte", "value": 2},
	{"field": "engagementScore", "operator": "gte", "value": 50},
	{"field": "emailOptIn", "operator": "eq", "value": true},
	{"combinator": "OR", "not": true, "rules": [
		{"field": "tags", "operator": "hasAnyTag", "value": ["board", "staff"]},
		{"activity": {"type": "email.opened"}, "operator": "notExists", "within": "60d"}]}]}`

// BenchmarkCheck decodes and checks a definition's rules, as every create,
// update, preview and membership batch does.
func BenchmarkCheck(b *testing.B) {
	for b.Loop() {
		var g segment.Rules
		if err := json.Unmarshal([]byte(exampleRules), &g); err != nil {
			b.Fatal(err)
		}
		if _, p := g.Check(); p != nil {
			b.Fatal(p)
		}
	}
}
