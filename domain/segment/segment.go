// Package segment is the CustomerSegment aggregate (specification section
// 8; docs/segments.md): STATIC segments list their members, DYNAMIC ones
// hold rules over the profile read model and the timeline, SMART ones are
// model-driven rules the CRM writes. The package checks rules and decides
// events; compiling rules into SQL and keeping membership is the read
// side's (readmodels/segments).
package segment

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/segmentio/encoding/json"
)

// Category is the stream category: one stream segment-<uuid> per segment.
const Category = "segment"

// Stream answers a segment's stream.
func Stream(id uuid.UUID) string { return Category + "-" + id.String() }

// Type is a segment's kind.
type Type string

// Types.
const (
	Static  Type = "STATIC"
	Dynamic Type = "DYNAMIC"
	Smartly Type = "SMART"
)

// Types lists every type.
var Types = []Type{Static, Dynamic, Smartly}

// Event types.
const (
	TypeCreated        = "segment.created"
	TypeUpdated        = "segment.updated"
	TypeDeleted        = "segment.deleted"
	TypeMembersChanged = "segment.members.changed"
)

// Limits.
const (
	MaxName        = 200
	MaxDescription = 2000
	MaxMembersCall = 10_000 // ids in one add/remove
)

// Definition is what staff define: a name and who belongs.
type Definition struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Type        Type   `json:"type"`
	Combinator  string `json:"combinator"`
	Rules       []Rule `json:"rules"`
	Smart       *Smart `json:"smart,omitempty"`
}

// Group answers the definition's rules as a group.
func (d Definition) Group() Rules { return Rules{Combinator: d.Combinator, Rules: d.Rules} }

// Check validates a definition and answers its predicate: the rules, and
// for a SMART segment the smart kind's rules AND the rules given. A STATIC
// segment's predicate is its member list, so its node is empty.
func (d Definition) Check() (Node, Problems) {
	p := Problems{}
	if strings.TrimSpace(d.Name) == "" {
		p["name"] = "is required"
	} else if utf8.RuneCountInString(d.Name) > MaxName {
		p["name"] = fmt.Sprintf("must be at most %d characters", MaxName)
	}
	if utf8.RuneCountInString(d.Description) > MaxDescription {
		p["description"] = fmt.Sprintf("must be at most %d characters", MaxDescription)
	}
	var node Node
	var rp Problems
	switch d.Type {
	case Static:
		if len(d.Rules) > 0 {
			p["rules"] = "a STATIC segment has no rules: its members are added and removed by hand"
		}
		if d.Smart != nil {
			p["smart"] = "only a SMART segment has a smart kind"
		}
	case Dynamic:
		if d.Smart != nil {
			p["smart"] = "only a SMART segment has a smart kind"
		}
		if len(d.Rules) == 0 {
			p["rules"] = "must hold at least one rule"
		}
		node, rp = d.Group().Check()
	case Smartly:
		if d.Smart == nil {
			p["smart"] = "is required for a SMART segment: {\"kind\": \"" + LikelyToChurn + "\"}"
			_, rp = d.Group().Check()
			break
		}
		d.Smart.check(p)
		node, rp = d.Group().Check()
		if len(rp) == 0 && len(p) == 0 {
			sn, sp := d.Smart.Rules().Check()
			if rp == nil && len(sp) > 0 {
				rp = Problems{}
			}
			for k, v := range sp {
				rp["smart."+k] = v
			}
			node = Node{Group: &Group{Nodes: []Node{sn, node}}}
		}
	default:
		p["type"] = "must be one of STATIC, DYNAMIC, SMART"
	}
	for k, v := range rp {
		p[k] = v
	}
	if len(p) > 0 {
		return Node{}, p
	}
	return node, nil
}

// Normalized answers the definition as it is stored: trimmed, with the
// combinators upper-cased and an empty rule list for STATIC.
func (d Definition) Normalized() Definition {
	d.Type = Type(strings.ToUpper(strings.TrimSpace(string(d.Type))))
	d.Name = strings.TrimSpace(d.Name)
	d.Description = strings.TrimSpace(d.Description)
	g := d.Group().normalized()
	d.Combinator, d.Rules = g.Combinator, g.Rules
	if d.Type == Static {
		d.Combinator = And
	}
	if d.Smart != nil {
		sm := *d.Smart
		sm.Kind = strings.ToUpper(strings.TrimSpace(sm.Kind))
		d.Smart = &sm
	}
	return d
}

func (g Rules) normalized() Rules {
	g.Combinator = strings.ToUpper(strings.TrimSpace(g.Combinator))
	if g.Combinator == "" {
		g.Combinator = And
	}
	if g.Rules == nil {
		g.Rules = []Rule{}
	}
	rs := make([]Rule, len(g.Rules))
	for i, r := range g.Rules {
		if r.isGroup() {
			n := Rules{Combinator: r.Combinator, Not: r.Not, Rules: r.Rules}.normalized()
			r.Combinator, r.Rules = n.Combinator, n.Rules
		}
		rs[i] = r
	}
	g.Rules = rs
	return g
}

// Created opens a segment.
type Created struct {
	SegmentID  uuid.UUID  `json:"segmentId"`
	Definition Definition `json:"definition"`
	Actor      string     `json:"actor"`
}

// Updated replaces the definition (the whole of it, after the change).
type Updated struct {
	Definition Definition `json:"definition"`
	Actor      string     `json:"actor"`
}

// Deleted closes a segment: it has no members from then on.
type Deleted struct {
	Actor string `json:"actor"`
}

// MembersChanged adds and removes members of a STATIC segment.
type MembersChanged struct {
	Added   []uuid.UUID `json:"added"`
	Removed []uuid.UUID `json:"removed"`
	Actor   string      `json:"actor"`
}

// Event is a decided event.
type Event struct {
	Type string
	Data any
}

// Decode answers an event's payload.
func Decode(typ string, data []byte) (any, error) {
	var v any
	switch typ {
	case TypeCreated:
		v = &Created{}
	case TypeUpdated:
		v = &Updated{}
	case TypeDeleted:
		v = &Deleted{}
	case TypeMembersChanged:
		v = &MembersChanged{}
	default:
		return nil, fmt.Errorf("unknown segment event type %q", typ)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return nil, fmt.Errorf("decode %s: %w", typ, err)
	}
	return v, nil
}

// Errors of the decisions.
var (
	ErrNotFound   = errors.New("segment not found")
	ErrExists     = errors.New("segment already exists")
	ErrNotStatic  = errors.New("only a STATIC segment's members are added and removed by hand")
	ErrTypeChange = errors.New("a segment's type cannot change: create a new segment")
)

// ErrInvalid lists a definition's problems by path.
type ErrInvalid Problems

func (e ErrInvalid) Error() string {
	keys := make([]string, 0, len(e))
	for k := range e {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ": " + e[k]
	}
	return "invalid segment: " + strings.Join(parts, "; ")
}

// Segment is the aggregate, folded from its stream.
type Segment struct {
	ID         uuid.UUID
	TenantID   string
	Version    uint64
	Definition Definition
	CreatedBy  string
	CreatedAt  time.Time
	UpdatedAt  time.Time
	Deleted    bool
}

// Exists reports whether the segment was created (deleted or not).
func (s *Segment) Exists() bool { return s.Version > 0 }

// Create decides a new segment.
func (s *Segment) Create(d Definition, actor string) ([]Event, error) {
	if s.Exists() {
		return nil, ErrExists
	}
	d = d.Normalized()
	if _, p := d.Check(); p != nil {
		return nil, ErrInvalid(p)
	}
	return []Event{{TypeCreated, &Created{SegmentID: s.ID, Definition: d, Actor: actor}}}, nil
}

// Update decides a new definition; one equal to the current is no event.
func (s *Segment) Update(d Definition, actor string) ([]Event, error) {
	if !s.Exists() || s.Deleted {
		return nil, ErrNotFound
	}
	d = d.Normalized()
	if d.Type != s.Definition.Type {
		return nil, ErrTypeChange
	}
	if _, p := d.Check(); p != nil {
		return nil, ErrInvalid(p)
	}
	a, _ := json.Marshal(d)
	b, _ := json.Marshal(s.Definition)
	if string(a) == string(b) {
		return nil, nil
	}
	return []Event{{TypeUpdated, &Updated{Definition: d, Actor: actor}}}, nil
}

// Delete decides the segment's end.
func (s *Segment) Delete(actor string) ([]Event, error) {
	if !s.Exists() || s.Deleted {
		return nil, ErrNotFound
	}
	return []Event{{TypeDeleted, &Deleted{Actor: actor}}}, nil
}

// ChangeMembers decides a STATIC segment's members. An id both added and
// removed is removed; nothing to change is no event.
func (s *Segment) ChangeMembers(add, remove []uuid.UUID, actor string) ([]Event, error) {
	if !s.Exists() || s.Deleted {
		return nil, ErrNotFound
	}
	if s.Definition.Type != Static {
		return nil, ErrNotStatic
	}
	p := Problems{}
	if len(add) > MaxMembersCall {
		p["add"] = fmt.Sprintf("at most %d ids in one call", MaxMembersCall)
	}
	if len(remove) > MaxMembersCall {
		p["remove"] = fmt.Sprintf("at most %d ids in one call", MaxMembersCall)
	}
	if len(p) > 0 {
		return nil, ErrInvalid(p)
	}
	rm := dedupe(remove)
	var ad []uuid.UUID
	for _, id := range dedupe(add) {
		if !slices.Contains(rm, id) {
			ad = append(ad, id)
		}
	}
	if len(ad) == 0 && len(rm) == 0 {
		return nil, nil
	}
	if ad == nil {
		ad = []uuid.UUID{}
	}
	return []Event{{TypeMembersChanged, &MembersChanged{Added: ad, Removed: rm, Actor: actor}}}, nil
}

func dedupe(ids []uuid.UUID) []uuid.UUID {
	seen := make(map[uuid.UUID]bool, len(ids))
	out := []uuid.UUID{}
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// Apply folds an event in.
func (s *Segment) Apply(v any, at time.Time) {
	s.Version++
	s.UpdatedAt = at
	switch d := v.(type) {
	case *Created:
		s.Definition, s.CreatedBy, s.CreatedAt = d.Definition, d.Actor, at
	case *Updated:
		s.Definition = d.Definition
	case *Deleted:
		s.Deleted = true
	}
}

// StreamID answers the segment id of a segment stream.
func StreamID(stream string) (uuid.UUID, bool) {
	rest, ok := strings.CutPrefix(stream, Category+"-")
	if !ok {
		return uuid.Nil, false
	}
	id, err := uuid.Parse(rest)
	return id, err == nil
}
