package httpapi

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/gorilla/mux"

	"github.com/clubcrm/crm/adapters/auth"
	"github.com/clubcrm/crm/commands"
	"github.com/clubcrm/crm/domain/segment"
	"github.com/clubcrm/crm/eventstore"
	"github.com/clubcrm/crm/projections"
	"github.com/clubcrm/crm/readmodels/segments"
)

// SegmentEndpoints is what the segment endpoints use.
type SegmentEndpoints struct {
	Segments  *commands.Segments
	Reader    segments.Reader
	Refresher *segments.Refresher
	// Unknown answers which of ids are not live profiles of tenant, so a
	// STATIC segment never lists someone who does not exist.
	Unknown func(ctx context.Context, tenant string, ids []uuid.UUID) ([]uuid.UUID, error)
}

// SegmentRequest is the body of POST /segments and /segments/preview.
type SegmentRequest struct {
	Name        string         `json:"name" doc:"at most 200 characters"`
	Description string         `json:"description,omitempty"`
	Type        segment.Type   `json:"type" enum:"STATIC,DYNAMIC,SMART"`
	Combinator  string         `json:"combinator,omitempty" enum:"AND,OR" doc:"how the top-level rules combine (AND when absent)"`
	Rules       []segment.Rule `json:"rules,omitempty" doc:"{field, operator, value}, {activity, operator, value, within} or a group {combinator, not, rules} (docs/segments.md)"`
	Smart       *segment.Smart `json:"smart,omitempty" doc:"SMART only: {kind: LIKELY_TO_CHURN|HIGHLY_ENGAGED|LAPSING_MEMBERS, threshold, inactiveDays}"`
}

func (s SegmentRequest) definition() segment.Definition {
	return segment.Definition{Name: s.Name, Description: s.Description, Type: s.Type, Combinator: s.Combinator, Rules: s.Rules, Smart: s.Smart}
}

// SegmentEdit is the body of PATCH /segments/{id}: the fields to change.
type SegmentEdit struct {
	Name        *string         `json:"name,omitempty"`
	Description *string         `json:"description,omitempty"`
	Type        *segment.Type   `json:"type,omitempty" doc:"may be given, but must be the segment's type"`
	Combinator  *string         `json:"combinator,omitempty" enum:"AND,OR"`
	Rules       *[]segment.Rule `json:"rules,omitempty" doc:"replaces every rule"`
	Smart       *segment.Smart  `json:"smart,omitempty"`
}

// MembersRequest is the body of POST /segments/{id}/members.
type MembersRequest struct {
	Add    []uuid.UUID `json:"add,omitempty" doc:"profile ids to add (at most 10,000)"`
	Remove []uuid.UUID `json:"remove,omitempty" doc:"profile ids to remove (at most 10,000); an id in both is removed"`
}

// MembersChanged answers POST /segments/{id}/members.
type MembersChanged struct {
	Added   []uuid.UUID   `json:"added" doc:"ids the change recorded as added (the request's, deduplicated; one also removed is removed)"`
	Removed []uuid.UUID   `json:"removed" doc:"ids the change recorded as removed; removing a non-member changes nothing"`
	Segment segments.View `json:"segment"`
}

// PreviewRequest is the body of POST /segments/preview.
type PreviewRequest struct {
	SegmentRequest
	Sample int `json:"sample,omitempty" doc:"members to answer, 0-100 (default 20)"`
}

// segmentError maps the segment commands' and queries' errors to problems.
func segmentError(err error) error {
	var bad segment.ErrInvalid
	switch {
	case errors.As(err, &bad):
		return Invalid(problemFields(bad)...)
	case errors.Is(err, segment.ErrNotFound):
		return NotFound("segment")
	case errors.Is(err, segment.ErrExists):
		return Conflict("a segment with this id exists already")
	case errors.Is(err, segment.ErrNotStatic):
		return Unprocessable(err.Error(), FieldError{"type", "members are added and removed by hand only in a STATIC segment"})
	case errors.Is(err, segment.ErrTypeChange):
		return Unprocessable(err.Error(), FieldError{"type", "cannot change"})
	case errors.Is(err, eventstore.ErrConflict):
		return Conflict("the segment changed while the command ran; retry it")
	}
	return err
}

// problemFields answers problems keyed by field path as FieldErrors in
// path order.
func problemFields[M ~map[string]string](p M) []FieldError {
	fields := make([]FieldError, 0, len(p))
	for f, reason := range p {
		fields = append(fields, FieldError{f, reason})
	}
	sort.Slice(fields, func(i, j int) bool { return fields[i].Field < fields[j].Field })
	return fields
}

func segmentID(r *http.Request) (uuid.UUID, error) {
	id, err := uuid.Parse(mux.Vars(r)["id"])
	if err != nil {
		return uuid.Nil, NotFound("segment")
	}
	return id, nil
}

// RegisterSegments adds the segment endpoints: definitions (crm:admin to
// manage, crm:read to read), STATIC members, preview, refresh and the sync
// to Messaging.
func (a *API) RegisterSegments(s SegmentEndpoints) {
	tags := []string{"segments"}
	a.Handle(Route{Method: http.MethodGet, Path: "/segments/fields", Summary: "The fields, kinds and operators rules may use", Tags: tags,
		Role: auth.RoleRead, Response: SegmentFields{}},
		func(w http.ResponseWriter, r *http.Request) error {
			WriteJSON(w, http.StatusOK, segmentFields())
			return nil
		})

	a.Handle(Route{Method: http.MethodGet, Path: "/segments", Summary: "The tenant's segments, newest first", Tags: tags, Role: auth.RoleRead,
		Query: []Param{
			{Name: "type", Description: "STATIC, DYNAMIC or SMART"},
			{Name: "limit", Type: "integer", Description: "page size, 1-" + strconv.Itoa(MaxLimit)},
			{Name: "cursor", Description: "nextCursor of the previous page"},
		},
		Response: List[segments.View]{}},
		func(w http.ResponseWriter, r *http.Request) error {
			typ := strings.ToUpper(r.URL.Query().Get("type"))
			if typ != "" && !slices.Contains(segment.Types, segment.Type(typ)) {
				return Invalid(FieldError{"type", "must be one of STATIC, DYNAMIC, SMART"})
			}
			p, err := ParsePage(r)
			if err != nil {
				return err
			}
			var after *segments.ListCursor
			if p.Cursor != "" {
				after = &segments.ListCursor{}
				if err := DecodeCursor(p.Cursor, after); err != nil {
					return err
				}
			}
			items, next, err := s.Reader.List(r.Context(), Tenant(r), typ, p.Limit, after)
			if err != nil {
				return err
			}
			l := List[segments.View]{Items: items}
			if l.Items == nil {
				l.Items = []segments.View{}
			}
			if next != nil {
				l.NextCursor = EncodeCursor(next)
			}
			WriteJSON(w, http.StatusOK, l)
			return nil
		})

	a.Handle(Route{Method: http.MethodPost, Path: "/segments", Summary: "Create a segment; a rule-based one is computed at once", Tags: tags,
		Role: auth.RoleAdmin, Request: SegmentRequest{}, Response: segments.View{}, Status: http.StatusCreated,
		Errors: []int{http.StatusConflict}, Idempotent: true},
		func(w http.ResponseWriter, r *http.Request) error {
			var in SegmentRequest
			if err := Decode(r, &in); err != nil {
				return err
			}
			act := actor(r)
			id := uuid.New()
			if key := IdempotencyKey(r); key != "" {
				// A retry whose first response was lost opens no second segment.
				id = eventstore.DeriveID(act.Tenant, "segment", key)
			}
			res, err := s.Segments.Create(r.Context(), act, id, in.definition())
			if err != nil {
				return segmentError(err)
			}
			w.Header().Set("Location", FullPath(Route{Path: "/segments/" + id.String()}))
			writeWritten(w, http.StatusCreated, res.Position, segments.FromAggregate(res.Segment))
			return nil
		})

	a.Handle(Route{Method: http.MethodPost, Path: "/segments/preview", Summary: "Count and sample who a definition selects now, saving nothing", Tags: tags,
		Role: auth.RoleAdmin, Request: PreviewRequest{}, Response: segments.Preview{}},
		func(w http.ResponseWriter, r *http.Request) error {
			var in PreviewRequest
			if err := Decode(r, &in); err != nil {
				return err
			}
			if in.Sample < 0 || in.Sample > 100 {
				return Invalid(FieldError{"sample", "must be from 0 to 100"})
			}
			if in.Sample == 0 {
				in.Sample = 20
			}
			d := in.definition()
			if d.Type == "" {
				d.Type = segment.Dynamic
			}
			if strings.TrimSpace(d.Name) == "" {
				d.Name = "preview"
			}
			d = d.Normalized()
			if d.Type == segment.Static {
				return Invalid(FieldError{"type", "a STATIC segment has no rules to preview"})
			}
			node, p := d.Check()
			if p != nil {
				return Invalid(problemFields(p)...)
			}
			out, err := s.Reader.Preview(r.Context(), Tenant(r), node, in.Sample)
			if err != nil {
				return err
			}
			WriteJSON(w, http.StatusOK, out)
			return nil
		})

	a.Handle(Route{Method: http.MethodGet, Path: "/segments/{id}", Summary: "A segment: its definition and membership state", Tags: tags,
		Role: auth.RoleRead, Response: segments.View{}, Errors: []int{http.StatusNotFound}},
		func(w http.ResponseWriter, r *http.Request) error {
			id, err := segmentID(r)
			if err != nil {
				return err
			}
			v, err := s.Reader.Get(r.Context(), Tenant(r), id)
			if err != nil {
				return segmentError(err)
			}
			WriteJSON(w, http.StatusOK, v)
			return nil
		})

	a.Handle(Route{Method: http.MethodPatch, Path: "/segments/{id}", Summary: "Change a segment's name, description or rules; its membership is recomputed", Tags: tags,
		Role: auth.RoleAdmin, Request: SegmentEdit{}, Response: segments.View{},
		Errors: []int{http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity}, Idempotent: true},
		func(w http.ResponseWriter, r *http.Request) error {
			id, err := segmentID(r)
			if err != nil {
				return err
			}
			var in SegmentEdit
			if err := Decode(r, &in); err != nil {
				return err
			}
			res, err := s.Segments.Update(r.Context(), actor(r), id, func(d segment.Definition) segment.Definition {
				if in.Name != nil {
					d.Name = *in.Name
				}
				if in.Description != nil {
					d.Description = *in.Description
				}
				if in.Type != nil {
					d.Type = *in.Type
				}
				if in.Combinator != nil {
					d.Combinator = *in.Combinator
				}
				if in.Rules != nil {
					d.Rules = *in.Rules
				}
				if in.Smart != nil {
					d.Smart = in.Smart
				}
				return d
			})
			if err != nil {
				return segmentError(err)
			}
			writeWritten(w, http.StatusOK, res.Position, segments.FromAggregate(res.Segment))
			return nil
		})

	a.Handle(Route{Method: http.MethodDelete, Path: "/segments/{id}", Summary: "Delete a segment: it has no members from then on", Tags: tags,
		Role: auth.RoleAdmin, Status: http.StatusNoContent, Errors: []int{http.StatusNotFound, http.StatusConflict}, Idempotent: true},
		func(w http.ResponseWriter, r *http.Request) error {
			id, err := segmentID(r)
			if err != nil {
				return err
			}
			res, err := s.Segments.Delete(r.Context(), actor(r), id)
			if err != nil {
				return segmentError(err)
			}
			if res.Position != (eventstore.Position{}) {
				w.Header().Set(PositionHeader, projections.EncodeToken(res.Position))
			}
			w.WriteHeader(http.StatusNoContent)
			return nil
		})

	a.Handle(Route{Method: http.MethodPost, Path: "/segments/{id}/members", Summary: "Add and remove members of a STATIC segment", Tags: tags,
		Role: auth.RoleAdmin, Request: MembersRequest{}, Response: MembersChanged{},
		Errors: []int{http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity}, Idempotent: true, BodyLimit: 2 << 20},
		func(w http.ResponseWriter, r *http.Request) error {
			id, err := segmentID(r)
			if err != nil {
				return err
			}
			var in MembersRequest
			if err := Decode(r, &in); err != nil {
				return err
			}
			if len(in.Add) == 0 && len(in.Remove) == 0 {
				return Invalid(FieldError{"", "give add, remove or both"})
			}
			if len(in.Add) > 0 && len(in.Add) <= segment.MaxMembersCall {
				unknown, err := s.Unknown(r.Context(), Tenant(r), in.Add)
				if err != nil {
					return err
				}
				if len(unknown) > 0 {
					var fields []FieldError
					for i, c := range in.Add {
						for _, u := range unknown {
							if c == u {
								fields = append(fields, FieldError{"add[" + strconv.Itoa(i) + "]", "no live profile " + c.String() + " in this tenant"})
							}
						}
					}
					return Unprocessable("only existing, unmerged profiles can be added", fields...)
				}
			}
			res, err := s.Segments.ChangeMembers(r.Context(), actor(r), id, in.Add, in.Remove)
			if err != nil {
				return segmentError(err)
			}
			writeWritten(w, http.StatusOK, res.Position, MembersChanged{Added: res.Added, Removed: res.Removed, Segment: segments.FromAggregate(res.Segment)})
			return nil
		})

	a.Handle(Route{Method: http.MethodGet, Path: "/segments/{id}/members", Summary: "A segment's members with a profile summary, in id order", Tags: tags,
		Role: auth.RoleRead, Query: []Param{
			{Name: "limit", Type: "integer", Description: "page size, 1-" + strconv.Itoa(MaxLimit)},
			{Name: "cursor", Description: "nextCursor of the previous page"},
		},
		Response: List[segments.Member]{}, Errors: []int{http.StatusNotFound}},
		func(w http.ResponseWriter, r *http.Request) error {
			id, err := segmentID(r)
			if err != nil {
				return err
			}
			p, err := ParsePage(r)
			if err != nil {
				return err
			}
			var after *uuid.UUID
			if p.Cursor != "" {
				after = &uuid.UUID{}
				if err := DecodeCursor(p.Cursor, after); err != nil {
					return err
				}
			}
			items, next, err := s.Reader.Members(r.Context(), Tenant(r), id, p.Limit, after)
			if err != nil {
				return segmentError(err)
			}
			l := List[segments.Member]{Items: items}
			if l.Items == nil {
				l.Items = []segments.Member{}
			}
			if next != nil {
				l.NextCursor = EncodeCursor(next)
			}
			WriteJSON(w, http.StatusOK, l)
			return nil
		})

	a.Handle(Route{Method: http.MethodPost, Path: "/segments/{id}/refresh", Summary: "Recompute a segment's whole membership now", Tags: tags,
		Role: auth.RoleAdmin, Response: segments.Result{}, Errors: []int{http.StatusNotFound}},
		func(w http.ResponseWriter, r *http.Request) error {
			id, err := segmentID(r)
			if err != nil {
				return err
			}
			res, err := s.Refresher.Refresh(r.Context(), Tenant(r), id)
			if err != nil {
				return segmentError(err)
			}
			WriteJSON(w, http.StatusOK, res)
			return nil
		})

	a.Handle(Route{Method: http.MethodPost, Path: "/segments/{id}/sync-to-messaging", Summary: "Send the membership to Messaging as a snapshot; diffs follow as it changes", Tags: tags,
		Role: auth.RoleAdmin, Response: segments.SyncResult{}, Errors: []int{http.StatusNotFound}, Idempotent: true},
		func(w http.ResponseWriter, r *http.Request) error {
			id, err := segmentID(r)
			if err != nil {
				return err
			}
			res, err := s.Refresher.Sync(r.Context(), Tenant(r), id)
			if err != nil {
				return segmentError(err)
			}
			WriteJSON(w, http.StatusOK, res)
			return nil
		})
}

// SegmentFields answers GET /segments/fields: what rules may use.
type SegmentFields struct {
	Fields              []SegmentField `json:"fields"`
	ActivityOperators   []string       `json:"activityOperators" doc:"operators of an activity condition (they compare a count)"`
	ActivityTypes       []string       `json:"activityTypes"`
	ActivityCategories  []string       `json:"activityCategories"`
	SmartKinds          []string       `json:"smartKinds"`
	DurationUnits       string         `json:"durationUnits"`
	MaxRules            int            `json:"maxRules"`
	MaxDepth            int            `json:"maxDepth"`
	MaxValuesInOperator int            `json:"maxValuesInOperator"`
}

// SegmentField is one field with its operators.
type SegmentField struct {
	segment.Field
	Operators []string `json:"operators"`
}

func segmentFields() SegmentFields {
	out := SegmentFields{ActivityOperators: ops(segment.CountOperators()), ActivityTypes: segment.ActivityTypes(),
		ActivityCategories: segment.ActivityCategories(), SmartKinds: segment.SmartKinds,
		DurationUnits: "m (minutes), h (hours), d (days), w (weeks): 30d, 12h", MaxRules: segment.MaxRules, MaxDepth: segment.MaxDepth, MaxValuesInOperator: segment.MaxList}
	for _, f := range segment.Fields {
		out.Fields = append(out.Fields, SegmentField{Field: f, Operators: ops(f.Kind.Operators())})
	}
	return out
}

func ops(os []segment.Operator) []string {
	out := make([]string, len(os))
	for i, o := range os {
		out[i] = string(o)
	}
	return out
}
