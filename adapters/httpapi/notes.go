package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/clubcrm/crm/adapters/auth"
	"github.com/clubcrm/crm/adapters/postgres"
	"github.com/clubcrm/crm/commands"
	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/eventstore"
	"github.com/clubcrm/crm/projections"
	"github.com/clubcrm/crm/readmodels/activities"
)

// NoteEndpoints is what the notes endpoints use.
type NoteEndpoints struct {
	DB    postgres.Beginner // the notes read model
	Notes *commands.Notes
}

// NoteRequest is the body of POST /customers/{id}/notes.
type NoteRequest struct {
	Body      string `json:"body" doc:"the note, at most 10,000 characters"`
	Pinned    bool   `json:"pinned,omitempty" doc:"pinned notes are listed first"`
	Complaint bool   `json:"complaint,omitempty" doc:"true marks the note as a complaint (churn scoring counts complaints of the last 180 days)"`
}

// Validate checks the body is there.
func (n NoteRequest) Validate() []FieldError {
	if strings.TrimSpace(n.Body) == "" {
		return []FieldError{{"body", "is required"}}
	}
	return nil
}

// NoteEdit is the body of PATCH /customers/{id}/notes/{noteId}: the fields
// to change.
type NoteEdit struct {
	Body      *string `json:"body,omitempty"`
	Pinned    *bool   `json:"pinned,omitempty"`
	Complaint *bool   `json:"complaint,omitempty" doc:"true marks the note as a complaint, false unmarks it (it then stops counting for churn scoring)"`
}

// Validate checks something is asked for.
func (n NoteEdit) Validate() []FieldError {
	if n.Body == nil && n.Pinned == nil && n.Complaint == nil {
		return []FieldError{{"", "give at least one of body, pinned, complaint"}}
	}
	return nil
}

// RegisterNotes adds the staff notes endpoints. A note's author, or an
// administrator, may edit or delete it; every edit and deletion stays in
// the profile's history.
func (a *API) RegisterNotes(n NoteEndpoints) {
	reader := activities.Reader{DB: n.DB}
	tags := []string{"notes"}
	a.Handle(Route{Method: http.MethodGet, Path: "/customers/{id}/notes", Summary: "A customer's notes: pinned first, then newest first", Tags: tags, Role: auth.RoleRead,
		Query: []Param{
			{Name: "deleted", Type: "boolean", Description: "true lists the deleted notes instead (crm:admin)"},
			{Name: "complaint", Type: "boolean", Description: "true lists only complaints, false only the other notes"},
			{Name: "limit", Type: "integer", Description: "page size, 1-" + strconv.Itoa(MaxLimit)},
			{Name: "cursor", Description: "nextCursor of the previous page"},
		},
		Response: List[activities.Note]{}, Errors: []int{http.StatusNotFound}},
		func(w http.ResponseWriter, r *http.Request) error {
			id, err := pathID(r, "id")
			if err != nil {
				return err
			}
			deleted := false
			if s := r.URL.Query().Get("deleted"); s != "" {
				if deleted, err = strconv.ParseBool(s); err != nil {
					return Invalid(FieldError{"deleted", "must be true or false"})
				}
			}
			var complaint *bool
			if s := r.URL.Query().Get("complaint"); s != "" {
				c, err := strconv.ParseBool(s)
				if err != nil {
					return Invalid(FieldError{"complaint", "must be true or false"})
				}
				complaint = &c
			}
			if p, _ := auth.FromContext(r.Context()); deleted && !Allows(p, auth.RoleAdmin) {
				return Forbidden(auth.RoleAdmin)
			}
			p, err := ParsePage(r)
			if err != nil {
				return err
			}
			var after *activities.NoteCursor
			if p.Cursor != "" {
				after = &activities.NoteCursor{}
				if err := DecodeCursor(p.Cursor, after); err != nil {
					return err
				}
			}
			_, items, next, err := reader.Notes(r.Context(), Tenant(r), id, activities.NoteFilter{Deleted: deleted, Complaint: complaint}, p.Limit, after)
			if errors.Is(err, activities.ErrNotFound) {
				return NotFound("customer")
			}
			if err != nil {
				return err
			}
			l := List[activities.Note]{Items: items}
			if l.Items == nil {
				l.Items = []activities.Note{}
			}
			if next != nil {
				l.NextCursor = EncodeCursor(next)
			}
			WriteJSON(w, http.StatusOK, l)
			return nil
		})

	a.Handle(Route{Method: http.MethodPost, Path: "/customers/{id}/notes", Summary: "Add a note; its author is the token's subject", Tags: tags, Role: auth.RoleWrite,
		Request: NoteRequest{}, Response: activities.Note{}, Status: http.StatusCreated, Errors: []int{http.StatusNotFound, http.StatusConflict}, Idempotent: true},
		func(w http.ResponseWriter, r *http.Request) error {
			id, err := pathID(r, "id")
			if err != nil {
				return err
			}
			var in NoteRequest
			if err := Decode(r, &in); err != nil {
				return err
			}
			res, err := n.Notes.Add(r.Context(), actor(r), id, customer.NoteAdded{Body: in.Body, Pinned: in.Pinned, Complaint: in.Complaint})
			if err != nil {
				return staffError(err)
			}
			writeWritten(w, http.StatusCreated, res.Position, activities.NoteFrom(res.Note, id))
			return nil
		})

	a.Handle(Route{Method: http.MethodPatch, Path: "/customers/{id}/notes/{noteId}", Summary: "Edit, pin or mark a note as a complaint (its author or crm:admin)", Tags: tags, Role: auth.RoleWrite,
		Request: NoteEdit{}, Response: activities.Note{}, Errors: []int{http.StatusNotFound, http.StatusConflict}, Idempotent: true},
		func(w http.ResponseWriter, r *http.Request) error {
			id, err := pathID(r, "id")
			if err != nil {
				return err
			}
			nid, err := noteID(r)
			if err != nil {
				return err
			}
			var in NoteEdit
			if err := Decode(r, &in); err != nil {
				return err
			}
			p, _ := auth.FromContext(r.Context())
			res, err := n.Notes.Edit(r.Context(), actor(r), Allows(p, auth.RoleAdmin), id, nid,
				customer.NoteEdited{Body: in.Body, Pinned: in.Pinned, Complaint: in.Complaint})
			if err != nil {
				return staffError(err)
			}
			writeWritten(w, http.StatusOK, res.Position, activities.NoteFrom(res.Note, id))
			return nil
		})

	a.Handle(Route{Method: http.MethodDelete, Path: "/customers/{id}/notes/{noteId}", Summary: "Delete a note (its author or crm:admin); the history keeps it", Tags: tags,
		Role: auth.RoleWrite, Status: http.StatusNoContent, Errors: []int{http.StatusNotFound, http.StatusConflict}, Idempotent: true},
		func(w http.ResponseWriter, r *http.Request) error {
			id, err := pathID(r, "id")
			if err != nil {
				return err
			}
			nid, err := noteID(r)
			if err != nil {
				return err
			}
			p, _ := auth.FromContext(r.Context())
			res, err := n.Notes.Delete(r.Context(), actor(r), Allows(p, auth.RoleAdmin), id, nid)
			if err != nil {
				return staffError(err)
			}
			if res.Position != (eventstore.Position{}) {
				w.Header().Set(PositionHeader, projections.EncodeToken(res.Position))
			}
			w.WriteHeader(http.StatusNoContent)
			return nil
		})
}
