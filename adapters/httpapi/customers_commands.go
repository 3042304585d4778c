package httpapi

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"github.com/segmentio/encoding/json"

	"github.com/clubcrm/crm/adapters/auth"
	"github.com/clubcrm/crm/commands"
	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/domain/identity"
	"github.com/clubcrm/crm/eventstore"
	"github.com/clubcrm/crm/projections"
	"github.com/clubcrm/crm/readmodels/customers"
)

// PositionHeader carries, on a command's response, where its events landed
// in the log; a query sent with it in WaitHeader answers only once the read
// model has caught up with it (read-your-writes).
const (
	PositionHeader = "X-CRM-Position"
	WaitHeader     = "X-CRM-Wait-For"
)

// CustomerCommands are the command handlers the customer endpoints use.
type CustomerCommands struct {
	Register  *commands.Register
	Edit      *commands.Edit
	Merge     *commands.Merge
	Resolve   *commands.ResolveDuplicate
	Settings  *commands.Settings
	Duplicate func(ctx context.Context, tenant string, id uuid.UUID) (customers.Duplicate, error)
	// Computed, when set, fills the computed fields (metrics, scores) of
	// the profiles commands answer from the read models.
	Computed func(ctx context.Context, tenant string, id uuid.UUID) (customers.Computed, error)
}

// present answers the representation of a profile a command left, with
// the computed fields the read models hold for it.
func (c CustomerCommands) present(r *http.Request, p *customer.Profile) (customers.Customer, error) {
	out := customers.FromProfile(p)
	if c.Computed != nil {
		x, err := c.Computed(r.Context(), Tenant(r), p.ID)
		if err != nil {
			return customers.Customer{}, err
		}
		out.SetComputed(x)
	}
	return out, nil
}

// RegisterRequest is the body of POST /customers.
type RegisterRequest struct {
	AuthUserID         string               `json:"authUserId,omitempty"`
	Email              string               `json:"email,omitempty"`
	PhoneNumber        string               `json:"phoneNumber,omitempty" doc:"E.164, or national format read in country"`
	Country            string               `json:"country,omitempty" doc:"ISO 3166 alpha-2 region for a national phone number"`
	SCLMemberID        *int64               `json:"sclMemberId,omitempty"`
	TeeTimePlayerID    string               `json:"teetimePlayerId,omitempty"`
	MessagingContactID string               `json:"messagingContactId,omitempty"`
	FirstName          string               `json:"firstName,omitempty"`
	LastName           string               `json:"lastName,omitempty"`
	DisplayName        string               `json:"displayName,omitempty"`
	ExternalIDs        customer.ExternalIDs `json:"externalIds,omitzero"`
}

// Validate checks field shapes; identity rules are the command's.
func (r RegisterRequest) Validate() []FieldError {
	var errs []FieldError
	if r.SCLMemberID != nil && *r.SCLMemberID <= 0 {
		errs = append(errs, FieldError{"sclMemberId", "must be a positive integer"})
	}
	if r.Country != "" && len(r.Country) != 2 {
		errs = append(errs, FieldError{"country", "must be an ISO 3166 alpha-2 code"})
	}
	for f, v := range map[string]string{"firstName": r.FirstName, "lastName": r.LastName, "displayName": r.DisplayName, "email": r.Email} {
		if len(v) > 200 {
			errs = append(errs, FieldError{f, "must be at most 200 characters"})
		}
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Field < errs[j].Field })
	return errs
}

// Resolved is a profile with how the request found it.
type Resolved struct {
	customers.Customer
	MatchedBy  string `json:"matchedBy" doc:"the key kind that found the profile, or new"`
	Confidence int    `json:"confidence,omitempty"`
}

// MergeRequest is the body of POST /customers/{id}/merge.
type MergeRequest struct {
	SourceID uuid.UUID `json:"sourceId" doc:"the profile to absorb; it is closed as MERGED"`
}

// DuplicateDecision is the body of POST /customers/duplicates/{id}/resolve.
type DuplicateDecision struct {
	Action string `json:"action" enum:"merge,dismiss"`
}

// Validate checks the action.
func (d DuplicateDecision) Validate() []FieldError {
	if d.Action != commands.ActionMerge && d.Action != commands.ActionDismiss {
		return []FieldError{{"action", "must be merge or dismiss"}}
	}
	return nil
}

// EditRequest documents PATCH /customers/{id}: the CRM-owned fields.
type EditRequest struct {
	DisplayName    *string               `json:"displayName,omitempty"`
	LifecycleStage *customer.Lifecycle   `json:"lifecycleStage,omitempty" enum:"GUEST,PROSPECT,MEMBER,LAPSED,CHURNED"`
	Status         *customer.Status      `json:"status,omitempty" enum:"ACTIVE,ARCHIVED"`
	ExternalIDs    *customer.ExternalIDs `json:"externalIds,omitempty"`
	Tags           *[]string             `json:"tags,omitempty" doc:"replaces the tag set (normalised: trimmed, lower-case)"`
}

// upstreamOwned fields belong to SCL, TeeTime or Messaging, and computed
// ones to the CRM's projections: PATCH answers 422 naming them.
var (
	upstreamOwned = map[string]string{
		"authUserId": "identity", "email": "identity", "phoneNumber": "identity", "sclMemberId": "SCL", "teetimePlayerId": "TeeTime",
		"messagingContactId": "Messaging", "firstName": "SCL or TeeTime", "lastName": "SCL or TeeTime", "handicap": "TeeTime",
		"homeClubId": "SCL or TeeTime", "membershipTier": "SCL", "membershipStatus": "SCL", "emailOptIn": "Messaging (consent)",
		"smsOptIn": "Messaging (consent)", "pushOptIn": "Messaging (consent)", "whatsappOptIn": "Messaging (consent)",
		"engagementScore": "computed", "churnRiskScore": "computed", "lifetimeValue": "computed", "lastActivityAt": "computed",
		"activityCount30d": "computed", "bookingCount30d": "computed", "lifetimeValueCurrency": "computed", "id": "the CRM", "tenantId": "the token", "version": "the CRM",
		"createdAt": "the CRM", "updatedAt": "the CRM", "mergedInto": "merges", "aliases": "identity resolution",
	}
)

func actor(r *http.Request) commands.Actor {
	p, _ := auth.FromContext(r.Context())
	id := IdempotencyKey(r)
	if id == "" {
		id = uuid.NewString()
	}
	return commands.Actor{Tenant: p.Tenant, Subject: p.Subject, CommandID: "cmd:" + id}
}

func pathID(r *http.Request, name string) (uuid.UUID, error) {
	id, err := uuid.Parse(mux.Vars(r)[name])
	if err != nil {
		return uuid.Nil, NotFound("customer")
	}
	return id, nil
}

func writeWritten(w http.ResponseWriter, status int, pos eventstore.Position, v any) {
	if pos != (eventstore.Position{}) {
		w.Header().Set(PositionHeader, projections.EncodeToken(pos))
	}
	WriteJSON(w, status, v)
}

// commandError maps the command layer's errors to problems.
func commandError(err error) error {
	var bad commands.ErrInvalidSettings
	switch {
	case errors.As(err, &bad):
		return Invalid(problemFields(bad)...)
	case errors.Is(err, customer.ErrNotFound):
		return NotFound("customer")
	case errors.Is(err, customer.ErrSelfMerge):
		return Conflict("a profile cannot be merged into itself")
	case errors.Is(err, customer.ErrMerged), errors.Is(err, commands.ErrAlreadyMerged):
		return Conflict(err.Error())
	case errors.Is(err, commands.ErrNoIdentity):
		return Invalid(FieldError{"", err.Error()})
	case errors.Is(err, customer.ErrInvalid):
		field, reason, _ := strings.Cut(strings.TrimPrefix(err.Error(), customer.ErrInvalid.Error()+": "), ": ")
		return Invalid(FieldError{field, reason})
	case errors.Is(err, eventstore.ErrConflict):
		return Conflict("the profile changed while the command ran; retry it")
	}
	return err
}

// RegisterCustomerCommands adds the customer command endpoints and settings.
func (a *API) RegisterCustomerCommands(c CustomerCommands) {
	tags := []string{"customers"}
	a.Handle(Route{Method: http.MethodPost, Path: "/customers", Summary: "Find or create a profile: resolves the identity first", Tags: tags,
		Role: auth.RoleWrite, Request: RegisterRequest{}, Response: Resolved{}, Status: http.StatusCreated, Idempotent: true},
		func(w http.ResponseWriter, r *http.Request) error {
			var in RegisterRequest
			if err := Decode(r, &in); err != nil {
				return err
			}
			cmd := commands.RegisterCustomer{AuthUserID: in.AuthUserID, Email: in.Email, PhoneNumber: in.PhoneNumber, Country: in.Country,
				TeeTimePlayerID: in.TeeTimePlayerID, MessagingContactID: in.MessagingContactID, FirstName: in.FirstName, LastName: in.LastName,
				DisplayName: in.DisplayName, ExternalIDs: in.ExternalIDs}
			if in.SCLMemberID != nil {
				cmd.SCLMemberID = strconv.FormatInt(*in.SCLMemberID, 10)
			}
			res, err := c.Register.Handle(r.Context(), actor(r), cmd)
			if err != nil {
				return commandError(err)
			}
			status := http.StatusOK
			if res.Created {
				status = http.StatusCreated
			}
			out, err := c.present(r, res.Profile)
			if err != nil {
				return err
			}
			writeWritten(w, status, res.Position, Resolved{Customer: out, MatchedBy: res.MatchedBy, Confidence: res.Confidence})
			return nil
		})

	a.Handle(Route{Method: http.MethodPatch, Path: "/customers/{id}", Summary: "Change CRM-owned fields (displayName, lifecycleStage, status, externalIds)", Tags: tags,
		Role: auth.RoleWrite, Request: EditRequest{}, Response: customers.Customer{}, Errors: []int{http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity}, Idempotent: true},
		func(w http.ResponseWriter, r *http.Request) error {
			id, err := pathID(r, "id")
			if err != nil {
				return err
			}
			var raw map[string]json.RawMessage
			if err := Decode(r, &raw); err != nil {
				return err
			}
			var owned []FieldError
			for f := range raw {
				if who, ok := upstreamOwned[f]; ok {
					owned = append(owned, FieldError{f, "is owned by " + who + " and cannot be edited here"})
				}
			}
			if len(owned) > 0 {
				sort.Slice(owned, func(i, j int) bool { return owned[i].Field < owned[j].Field })
				return Unprocessable("only CRM-owned fields can be edited", owned...)
			}
			b, _ := json.Marshal(raw)
			var in EditRequest
			dec := json.NewDecoder(strings.NewReader(string(b)))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&in); err != nil {
				return decodeProblem(err)
			}
			var tags []string
			if in.Tags != nil {
				tags = append([]string{}, *in.Tags...)
			}
			wr, err := c.Edit.HandleWithTags(r.Context(), actor(r), id, commands.EditCustomer{DisplayName: in.DisplayName, LifecycleStage: in.LifecycleStage, Status: in.Status, ExternalIDs: in.ExternalIDs}, tags)
			if err != nil {
				return commandError(err)
			}
			out, err := c.present(r, wr.Profile)
			if err != nil {
				return err
			}
			writeWritten(w, http.StatusOK, wr.Position, out)
			return nil
		})

	a.Handle(Route{Method: http.MethodPost, Path: "/customers/{id}/merge", Summary: "Merge another profile into this one", Tags: tags,
		Role: auth.RoleAdmin, Request: MergeRequest{}, Response: customers.Customer{}, Errors: []int{http.StatusNotFound, http.StatusConflict}, Idempotent: true},
		func(w http.ResponseWriter, r *http.Request) error {
			id, err := pathID(r, "id")
			if err != nil {
				return err
			}
			var in MergeRequest
			if err := Decode(r, &in); err != nil {
				return err
			}
			if in.SourceID == uuid.Nil {
				return Invalid(FieldError{"sourceId", "is required"})
			}
			wr, err := c.Merge.Handle(r.Context(), actor(r), id, in.SourceID)
			if err != nil {
				return commandError(err)
			}
			out, err := c.present(r, wr.Profile)
			if err != nil {
				return err
			}
			writeWritten(w, http.StatusOK, wr.Position, out)
			return nil
		})

	a.Handle(Route{Method: http.MethodPost, Path: "/customers/duplicates/{id}/resolve", Summary: "Merge or dismiss a flagged pair", Tags: tags,
		Role: auth.RoleAdmin, Request: DuplicateDecision{}, Response: customers.Customer{}, Errors: []int{http.StatusNotFound, http.StatusConflict}, Idempotent: true},
		func(w http.ResponseWriter, r *http.Request) error {
			id, err := uuid.Parse(mux.Vars(r)["id"])
			if err != nil {
				return NotFound("duplicate candidate")
			}
			var in DuplicateDecision
			if err := Decode(r, &in); err != nil {
				return err
			}
			d, err := c.Duplicate(r.Context(), Tenant(r), id)
			if errors.Is(err, customers.ErrNotFound) {
				return NotFound("duplicate candidate")
			}
			if err != nil {
				return err
			}
			if d.Status != "OPEN" {
				return Conflict("the pair was already " + strings.ToLower(d.Status))
			}
			wr, err := c.Resolve.Handle(r.Context(), actor(r), d.CustomerA, d.CustomerB, in.Action)
			if err != nil {
				return commandError(err)
			}
			out, err := c.present(r, wr.Profile)
			if err != nil {
				return err
			}
			writeWritten(w, http.StatusOK, wr.Position, out)
			return nil
		})

	a.Handle(Route{Method: http.MethodGet, Path: "/settings", Summary: "The tenant's identity-resolution settings", Tags: []string{"settings"},
		Role: auth.RoleAdmin, Response: identity.Settings{}},
		func(w http.ResponseWriter, r *http.Request) error {
			s, err := c.Settings.IdentitySettings(r.Context(), Tenant(r))
			if err != nil {
				return err
			}
			WriteJSON(w, http.StatusOK, s)
			return nil
		})
	a.Handle(Route{Method: http.MethodPut, Path: "/settings", Summary: "Replace the tenant's identity-resolution settings", Tags: []string{"settings"},
		Role: auth.RoleAdmin, Request: identity.Settings{}, Response: identity.Settings{}, Idempotent: true},
		func(w http.ResponseWriter, r *http.Request) error {
			var in identity.Settings
			if err := Decode(r, &in); err != nil {
				return err
			}
			a := actor(r)
			s, err := c.Settings.Put(r.Context(), a.Tenant, a.Subject, a.CommandID, in)
			if err != nil {
				return commandError(err)
			}
			WriteJSON(w, http.StatusOK, s)
			return nil
		})
}
