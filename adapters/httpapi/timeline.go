package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/clubcrm/crm/adapters/auth"
	"github.com/clubcrm/crm/adapters/postgres"
	"github.com/clubcrm/crm/commands"
	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/domain/timeline"
	"github.com/clubcrm/crm/readmodels/activities"
)

// TimelineEndpoints is what the timeline endpoints use.
type TimelineEndpoints struct {
	// DB holds the timeline read model.
	DB postgres.Beginner
	// Record records manual activities.
	Record *commands.RecordActivity
}

// ActivityRequest is the body of POST /customers/{id}/activities: an
// interaction staff record by hand.
type ActivityRequest struct {
	Type        string     `json:"type" enum:"VISIT,CALL,MEETING,OTHER" doc:"VISIT (in person), CALL (phone), MEETING or OTHER"`
	Title       string     `json:"title" doc:"what happened, in a line (at most 200 characters)"`
	Description string     `json:"description,omitempty" doc:"at most 4,000 characters"`
	Channel     string     `json:"channel,omitempty" enum:"IN_PERSON,PHONE,VIDEO,EMAIL,SMS,WHATSAPP,PUSH,SOCIAL,OTHER" doc:"IN_PERSON for a visit or meeting and PHONE for a call when absent"`
	OccurredAt  *time.Time `json:"occurredAt,omitempty" doc:"when it happened (RFC 3339); now when absent, never in the future"`
	Complaint   bool       `json:"complaint,omitempty" doc:"true records the activity as a complaint (churn scoring counts complaints of the last 180 days)"`
}

// Validate checks the request's shape; the aggregate checks the rest.
func (r ActivityRequest) Validate() []FieldError {
	var errs []FieldError
	if !slices.Contains(customer.ActivityKinds, customer.ActivityKind(strings.ToUpper(strings.TrimSpace(r.Type)))) {
		errs = append(errs, FieldError{"type", "must be one of VISIT, CALL, MEETING, OTHER"})
	}
	if strings.TrimSpace(r.Title) == "" {
		errs = append(errs, FieldError{"title", "is required"})
	}
	return errs
}

var (
	categoryNames = enumNames(timeline.Categories)
	typeNames     = enumNames(timeline.Types)
)

// RegisterTimeline adds the activity timeline endpoints.
func (a *API) RegisterTimeline(t TimelineEndpoints) {
	reader := activities.Reader{DB: t.DB}
	tags := []string{"timeline"}
	a.Handle(Route{Method: http.MethodGet, Path: "/customers/{id}/activities", Summary: "A customer's activity timeline, newest first", Tags: tags, Role: auth.RoleRead,
		Query: []Param{
			{Name: "category", Repeated: true, Description: "only these categories: " + strings.Join(categoryNames, ", ")},
			{Name: "type", Repeated: true, Description: "only these activity types, e.g. TEETIME_BOOKED, PAYMENT_RECEIVED, NOTE_ADDED, VISIT"},
			{Name: "from", Description: "occurred at or after: RFC 3339, or a date (its start, UTC)"},
			{Name: "to", Description: "occurred before: RFC 3339, or a date (the whole day included)"},
			{Name: "q", Description: "words that start words of the title or description (all must match)"},
			{Name: "limit", Type: "integer", Description: "page size, 1-" + strconv.Itoa(MaxLimit)},
			{Name: "cursor", Description: "nextCursor of the previous page"},
		},
		Response: List[activities.Activity]{}, Errors: []int{http.StatusNotFound}},
		func(w http.ResponseWriter, r *http.Request) error {
			id, err := pathID(r, "id")
			if err != nil {
				return err
			}
			f, err := timelineFilter(r)
			if err != nil {
				return err
			}
			p, err := ParsePage(r)
			if err != nil {
				return err
			}
			page := activities.Page{Limit: p.Limit}
			if p.Cursor != "" {
				var c activities.Cursor
				if err := DecodeCursor(p.Cursor, &c); err != nil {
					return err
				}
				page.After = &c
			}
			_, items, next, err := reader.Timeline(r.Context(), Tenant(r), id, f, page)
			if errors.Is(err, activities.ErrNotFound) {
				return NotFound("customer")
			}
			if err != nil {
				return err
			}
			l := List[activities.Activity]{Items: items}
			if l.Items == nil {
				l.Items = []activities.Activity{}
			}
			if next != nil {
				l.NextCursor = EncodeCursor(next)
			}
			WriteJSON(w, http.StatusOK, l)
			return nil
		})

	a.Handle(Route{Method: http.MethodPost, Path: "/customers/{id}/activities", Summary: "Record a manual activity (an in-person visit, a phone call)", Tags: tags,
		Role: auth.RoleWrite, Request: ActivityRequest{}, Response: activities.Activity{}, Status: http.StatusCreated,
		Errors: []int{http.StatusNotFound, http.StatusConflict}, Idempotent: true},
		func(w http.ResponseWriter, r *http.Request) error {
			id, err := pathID(r, "id")
			if err != nil {
				return err
			}
			var in ActivityRequest
			if err := Decode(r, &in); err != nil {
				return err
			}
			act := customer.ActivityRecorded{Kind: customer.ActivityKind(in.Type), Title: in.Title, Description: in.Description, Channel: in.Channel, Complaint: in.Complaint}
			if in.OccurredAt != nil {
				act.OccurredAt = *in.OccurredAt
			}
			res, err := t.Record.Handle(r.Context(), actor(r), id, act)
			if err != nil {
				return staffError(err)
			}
			// The activity as the timeline will hold it.
			desc, _ := timeline.Describe(timeline.Event{Type: customer.TypeActivityRecorded, Data: &res.Activity, Actor: res.Activity.Actor}, timeline.State{}, timeline.Options{})
			writeWritten(w, http.StatusCreated, res.Position, activities.FromTimeline(desc, id, id, time.Now()))
			return nil
		})
}

// timelineFilter reads the timeline's filters from the query string.
func timelineFilter(r *http.Request) (activities.Filter, error) {
	v := r.URL.Query()
	var f activities.Filter
	var errs []FieldError
	list := func(name string, allowed []string) []string {
		var out []string
		for _, raw := range v[name] {
			for _, s := range strings.Split(raw, ",") {
				s = strings.ToUpper(strings.TrimSpace(s))
				if s == "" {
					continue
				}
				if !slices.Contains(allowed, s) {
					errs = append(errs, FieldError{Field: name, Reason: fmt.Sprintf("%q is not one of %s", s, strings.Join(allowed, ", "))})
					continue
				}
				if !slices.Contains(out, s) {
					out = append(out, s)
				}
			}
		}
		return out
	}
	f.Categories = list("category", categoryNames)
	f.Types = list("type", typeNames)
	var err error
	if f.From, err = instant(v.Get("from"), false); err != nil {
		errs = append(errs, FieldError{Field: "from", Reason: err.Error()})
	}
	if f.To, err = instant(v.Get("to"), true); err != nil {
		errs = append(errs, FieldError{Field: "to", Reason: err.Error()})
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		errs = append(errs, FieldError{Field: "to", Reason: "must be after from"})
	}
	f.Q = strings.TrimSpace(v.Get("q"))
	if len(f.Q) > maxSearchLength {
		errs = append(errs, FieldError{Field: "q", Reason: fmt.Sprintf("must be at most %d characters", maxSearchLength)})
	}
	if len(errs) > 0 {
		return activities.Filter{}, Invalid(errs...)
	}
	return f, nil
}

// instant reads an RFC 3339 instant or a date; a date as the end of a range
// (end) stands for the start of the next day, so the day is included.
func instant(s string, end bool) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, errors.New("must be an RFC 3339 date-time, like 2026-03-14T07:30:00Z, or a date, like 2026-03-14")
	}
	if end {
		d = d.AddDate(0, 0, 1)
	}
	return d, nil
}

// staffError maps the errors of note, tag and activity commands.
func staffError(err error) error {
	switch {
	case errors.Is(err, customer.ErrForbidden):
		return NewProblem(http.StatusForbidden, "forbidden", "", "only the note's author or an administrator (crm:admin) may change or delete it")
	case errors.Is(err, customer.ErrNoteNotFound):
		return NotFound("note")
	}
	return commandError(err)
}

// noteID reads the note id of a path.
func noteID(r *http.Request) (uuid.UUID, error) {
	id, err := pathID(r, "noteId")
	if err != nil {
		return uuid.Nil, NotFound("note")
	}
	return id, nil
}
