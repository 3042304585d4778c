package httpapi

import (
	"net/http"
	"strconv"

	"github.com/google/uuid"

	"github.com/clubcrm/crm/adapters/auth"
	"github.com/clubcrm/crm/adapters/postgres"
	"github.com/clubcrm/crm/commands"
	"github.com/clubcrm/crm/readmodels/customers"
)

// TagEndpoints is what the tag endpoints use.
type TagEndpoints struct {
	DB   postgres.Beginner // the customers read model
	Tags *commands.Tags
}

// maxTagsPerRequest bounds each list of a tags request.
const maxTagsPerRequest = 50

// TagsRequest is the body of POST /customers/{id}/tags.
type TagsRequest struct {
	Add    []string `json:"add,omitempty" doc:"tags to add; adding one the profile has changes nothing"`
	Remove []string `json:"remove,omitempty" doc:"tags to remove; removing one it lacks changes nothing"`
}

// Validate checks the lists' sizes; the aggregate normalises and checks
// each tag.
func (t TagsRequest) Validate() []FieldError {
	var errs []FieldError
	if len(t.Add) == 0 && len(t.Remove) == 0 {
		errs = append(errs, FieldError{"", "give add, remove or both"})
	}
	if len(t.Add) > maxTagsPerRequest {
		errs = append(errs, FieldError{"add", "must hold at most " + strconv.Itoa(maxTagsPerRequest) + " tags"})
	}
	if len(t.Remove) > maxTagsPerRequest {
		errs = append(errs, FieldError{"remove", "must hold at most " + strconv.Itoa(maxTagsPerRequest) + " tags"})
	}
	return errs
}

// TagsResponse is a profile's tags after a change, with what changed.
type TagsResponse struct {
	CustomerID uuid.UUID `json:"customerId"`
	Tags       []string  `json:"tags" doc:"all the profile's tags now, normalised (trimmed, lower-case)"`
	Added      []string  `json:"added" doc:"tags this request added"`
	Removed    []string  `json:"removed" doc:"tags this request removed"`
}

// RegisterTags adds the tag endpoints.
func (a *API) RegisterTags(t TagEndpoints) {
	reader := customers.Reader{DB: t.DB}
	tags := []string{"tags"}
	a.Handle(Route{Method: http.MethodPost, Path: "/customers/{id}/tags", Summary: "Add and remove tags: idempotent, safe under concurrent edits", Tags: tags,
		Role: auth.RoleWrite, Request: TagsRequest{}, Response: TagsResponse{}, Errors: []int{http.StatusNotFound, http.StatusConflict}, Idempotent: true},
		func(w http.ResponseWriter, r *http.Request) error {
			id, err := pathID(r, "id")
			if err != nil {
				return err
			}
			var in TagsRequest
			if err := Decode(r, &in); err != nil {
				return err
			}
			res, err := t.Tags.Change(r.Context(), actor(r), id, in.Add, in.Remove)
			if err != nil {
				return staffError(err)
			}
			writeWritten(w, http.StatusOK, res.Position, TagsResponse{CustomerID: id, Tags: append([]string{}, res.Profile.Tags...), Added: res.Added, Removed: res.Removed})
			return nil
		})

	a.Handle(Route{Method: http.MethodGet, Path: "/tags", Summary: "The tenant's tags with how many profiles carry each, most used first", Tags: tags, Role: auth.RoleRead,
		Query: []Param{
			{Name: "limit", Type: "integer", Description: "page size, 1-" + strconv.Itoa(MaxLimit)},
			{Name: "cursor", Description: "nextCursor of the previous page"},
		},
		Response: List[customers.TagCount]{}},
		func(w http.ResponseWriter, r *http.Request) error {
			p, err := ParsePage(r)
			if err != nil {
				return err
			}
			var after *customers.TagCursor
			if p.Cursor != "" {
				after = &customers.TagCursor{}
				if err := DecodeCursor(p.Cursor, after); err != nil {
					return err
				}
			}
			items, next, err := reader.Tags(r.Context(), Tenant(r), p.Limit, after)
			if err != nil {
				return err
			}
			l := List[customers.TagCount]{Items: items}
			if l.Items == nil {
				l.Items = []customers.TagCount{}
			}
			if next != nil {
				l.NextCursor = EncodeCursor(next)
			}
			WriteJSON(w, http.StatusOK, l)
			return nil
		})
}
