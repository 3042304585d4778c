package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"github.com/nyaruka/phonenumbers"
	"github.com/segmentio/encoding/json"

	"github.com/clubcrm/crm/adapters/auth"
	"github.com/clubcrm/crm/adapters/postgres"
	"github.com/clubcrm/crm/commands"
	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/domain/identity"
	"github.com/clubcrm/crm/eventstore"
	"github.com/clubcrm/crm/readmodels/customers"
)

// CustomerQueries is what the customer query endpoints read.
type CustomerQueries struct {
	// DB is where the read model lives; every query runs in a tenant
	// transaction on it.
	DB postgres.Beginner
	// Store is the event log: history and asOf read profile streams from it.
	Store eventstore.Store
	// Settings answers a tenant's identity settings, whose default region
	// reads national phone numbers; nil means identity.DefaultSettings.
	Settings commands.SettingsSource
}

func (q CustomerQueries) settings(ctx context.Context, tenant string) (identity.Settings, error) {
	if q.Settings == nil {
		return identity.DefaultSettings(), nil
	}
	s, err := q.Settings.IdentitySettings(ctx, tenant)
	if err != nil {
		return identity.Settings{}, fmt.Errorf("identity settings of %s: %w", tenant, err)
	}
	return s, nil
}

// CustomerResponse is a profile answered for an id. When the id was merged
// into another profile, the survivor is answered and RequestedID names the
// id asked for.
type CustomerResponse struct {
	customers.Customer
	RequestedID *string `json:"requestedId,omitempty" doc:"the id asked for, present when it was merged into the profile answered"`
}

// ResolveResponse is the profile an identity resolves to.
type ResolveResponse struct {
	Customer   customers.Customer `json:"customer"`
	MatchedBy  string             `json:"matchedBy" doc:"the key kind(s) that decided, e.g. email or email+phoneNumber"`
	Confidence int                `json:"confidence" doc:"0-100, as the specification's match table gives it"`
}

// HistoryEvent is one event of a profile's stream, as recorded.
type HistoryEvent struct {
	ID         uuid.UUID           `json:"id"`
	Type       string              `json:"type" doc:"customer.* for the CRM's decisions, the upstream type for recorded upstream events"`
	Version    uint64              `json:"version" doc:"1 for the stream's first event"`
	Position   string              `json:"position" doc:"place in the global log (commit/prepare)"`
	OccurredAt time.Time           `json:"occurredAt"`
	RecordedAt time.Time           `json:"recordedAt"`
	Data       json.RawMessage     `json:"data"`
	Metadata   eventstore.Metadata `json:"metadata"`
}

// historyCursor is the version a history page starts at.
type historyCursor struct {
	Version uint64 `json:"v"`
}

// maxSearchLength bounds q: longer text is not a name, email or phone.
const maxSearchLength = 200

// maxMergeHops bounds how far asOf follows merges.
const maxMergeHops = 16

var (
	statusNames    = enumNames(customer.Statuses)
	lifecycleNames = enumNames(customer.Lifecycles)
)

func enumNames[T ~string](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

// RegisterCustomerQueries adds the customer read endpoints. The fixed paths
// (resolve, duplicates) are registered before /customers/{id}, which would
// otherwise take them for ids.
func (a *API) RegisterCustomerQueries(q CustomerQueries) {
	reader := customers.Reader{DB: q.DB}
	tags := []string{"customers"}

	a.Handle(Route{Method: http.MethodGet, Path: "/customers/resolve", Summary: "Find the profile an identity belongs to", Tags: tags, Role: auth.RoleRead,
		Query: []Param{
			{Name: "email", Description: "an email address, any case"},
			{Name: "phoneNumber", Description: "a phone number, E.164 or national (read in country, else the tenant's default region)"},
			{Name: "country", Description: "ISO 3166 alpha-2 region reading a national phoneNumber"},
			{Name: "authUserId", Description: "identity provider user id"},
			{Name: "sclMemberId", Description: "SCL member id", Type: "integer"},
			{Name: "teetimePlayerId", Description: "TeeTime player id"},
			{Name: "messagingContactId", Description: "Messaging contact id"},
		},
		Response: ResolveResponse{}, Errors: []int{http.StatusNotFound}},
		func(w http.ResponseWriter, r *http.Request) error {
			tenant := Tenant(r)
			s, err := q.settings(r.Context(), tenant)
			if err != nil {
				return err
			}
			keys, err := resolveKeys(r, s)
			if err != nil {
				return err
			}
			res, err := reader.Resolve(r.Context(), tenant, keys, s)
			if errors.Is(err, customers.ErrNotFound) {
				return NotFound("customer")
			}
			if err != nil {
				return err
			}
			WriteJSON(w, http.StatusOK, ResolveResponse{Customer: res.Customer, MatchedBy: res.MatchedBy, Confidence: res.Confidence})
			return nil
		})

	a.Handle(Route{Method: http.MethodGet, Path: "/customers/duplicates", Summary: "List pairs of profiles that may be one person", Tags: tags, Role: auth.RoleAdmin,
		Query: []Param{
			{Name: "status", Description: "OPEN (the default), MERGED, DISMISSED or ALL"},
			{Name: "limit", Type: "integer", Description: "page size, 1-" + strconv.Itoa(MaxLimit)},
			{Name: "cursor", Description: "nextCursor of the previous page"},
		},
		Response: List[customers.Duplicate]{}},
		func(w http.ResponseWriter, r *http.Request) error {
			status := strings.ToUpper(strings.TrimSpace(r.URL.Query().Get("status")))
			switch {
			case status == "":
				status = customers.DuplicateOpen
			case status == "ALL":
				status = ""
			case !slices.Contains(customers.DuplicateStatuses, status):
				return Invalid(FieldError{Field: "status", Reason: "must be one of OPEN, MERGED, DISMISSED, ALL"})
			}
			page, err := readPage(r)
			if err != nil {
				return err
			}
			items, next, err := reader.Duplicates(r.Context(), Tenant(r), status, page)
			if err != nil {
				return err
			}
			WriteJSON(w, http.StatusOK, listOf(items, next))
			return nil
		})

	a.Handle(Route{Method: http.MethodGet, Path: "/customers/duplicates/{id}", Summary: "Get a pair of profiles that may be one person", Tags: tags, Role: auth.RoleAdmin,
		Response: customers.Duplicate{}, Errors: []int{http.StatusNotFound}},
		func(w http.ResponseWriter, r *http.Request) error {
			id, err := uuid.Parse(mux.Vars(r)["id"])
			if err != nil {
				return NotFound("duplicate candidate")
			}
			d, err := reader.DuplicateByID(r.Context(), Tenant(r), id)
			if errors.Is(err, customers.ErrNotFound) {
				return NotFound("duplicate candidate")
			}
			if err != nil {
				return err
			}
			WriteJSON(w, http.StatusOK, d)
			return nil
		})

	a.Handle(Route{Method: http.MethodGet, Path: "/customers", Summary: "List and search customer profiles, newest first", Tags: tags, Role: auth.RoleRead,
		Query: []Param{
			{Name: "q", Description: "words that start the profile's names, email or phone (all must match), or a phone number"},
			{Name: "status", Description: strings.Join(statusNames, ", ") + "; without it, merged-away profiles are left out"},
			{Name: "lifecycleStage", Description: strings.Join(lifecycleNames, ", ")},
			{Name: "tag", Description: "profiles carrying this tag"},
			{Name: "membershipTier", Description: "SCL membership tier, exactly"},
			{Name: "homeClubId", Description: "home club id, exactly"},
			{Name: "limit", Type: "integer", Description: "page size, 1-" + strconv.Itoa(MaxLimit)},
			{Name: "cursor", Description: "nextCursor of the previous page"},
		},
		Response: List[customers.Customer]{}},
		func(w http.ResponseWriter, r *http.Request) error {
			f, err := customerFilter(r)
			if err != nil {
				return err
			}
			page, err := readPage(r)
			if err != nil {
				return err
			}
			tenant := Tenant(r)
			if f.Q != "" {
				s, err := q.settings(r.Context(), tenant)
				if err != nil {
					return err
				}
				f.Region = s.DefaultRegion
			}
			items, next, err := reader.List(r.Context(), tenant, f, page)
			if err != nil {
				return err
			}
			WriteJSON(w, http.StatusOK, listOf(items, next))
			return nil
		})

	a.Handle(Route{Method: http.MethodGet, Path: "/customers/{id}", Summary: "Get a customer profile, now or as it stood at an instant", Tags: tags, Role: auth.RoleRead,
		Query: []Param{
			{Name: "asOf", Description: "RFC 3339 instant: the profile folded from the events recorded up to it"},
		},
		Response: CustomerResponse{}, Errors: []int{http.StatusNotFound}},
		func(w http.ResponseWriter, r *http.Request) error {
			id, err := uuid.Parse(mux.Vars(r)["id"])
			if err != nil {
				return NotFound("customer")
			}
			tenant := Tenant(r)
			var c customers.Customer
			if s := r.URL.Query().Get("asOf"); s != "" {
				at, err := time.Parse(time.RFC3339, s)
				if err != nil {
					return Invalid(FieldError{Field: "asOf", Reason: "must be an RFC 3339 date-time, like 2026-03-14T07:30:00Z"})
				}
				if c, err = profileAsOf(r.Context(), q.Store, tenant, id, at); err != nil {
					return err
				}
			} else {
				c, err = reader.Current(r.Context(), tenant, id)
				if errors.Is(err, customers.ErrNotFound) {
					return NotFound("customer")
				}
				if err != nil {
					return err
				}
			}
			resp := CustomerResponse{Customer: c}
			if c.ID != id {
				asked := id.String()
				resp.RequestedID = &asked
				// The representation is the survivor's, which lives at its own URL.
				w.Header().Set("Content-Location", BasePath+"/customers/"+c.ID.String())
			}
			WriteJSON(w, http.StatusOK, resp)
			return nil
		})

	a.Handle(Route{Method: http.MethodGet, Path: "/customers/{id}/history", Summary: "Every event of a customer profile's stream, oldest first", Tags: tags, Role: auth.RoleRead,
		Query: []Param{
			{Name: "limit", Type: "integer", Description: "page size, 1-" + strconv.Itoa(MaxLimit)},
			{Name: "cursor", Description: "nextCursor of the previous page"},
		},
		Response: List[HistoryEvent]{}, Errors: []int{http.StatusNotFound}},
		func(w http.ResponseWriter, r *http.Request) error {
			id, err := uuid.Parse(mux.Vars(r)["id"])
			if err != nil {
				return NotFound("customer")
			}
			page, err := ParsePage(r)
			if err != nil {
				return err
			}
			from := historyCursor{Version: 1}
			if page.Cursor != "" {
				if err := DecodeCursor(page.Cursor, &from); err != nil {
					return err
				}
			}
			items, err := history(r.Context(), q.Store, Tenant(r), id, max(from.Version, 1), page.Limit)
			if err != nil {
				return err
			}
			WriteJSON(w, http.StatusOK, NewList(items, page.Limit, func(last HistoryEvent) any { return historyCursor{Version: last.Version + 1} }))
			return nil
		})
}

// resolveKeys reads the identity a resolve request gives and normalises it
// as ingestion does. A malformed value is a 400 naming it; a value that is
// well formed but never matched (a blocked address, a placeholder number)
// is left out, so it finds nobody.
func resolveKeys(r *http.Request, s identity.Settings) ([]identity.Key, error) {
	v := r.URL.Query()
	raw := identity.Raw{
		AuthUserID:         strings.TrimSpace(v.Get("authUserId")),
		TeeTimePlayerID:    strings.TrimSpace(v.Get("teetimePlayerId")),
		MessagingContactID: strings.TrimSpace(v.Get("messagingContactId")),
		Email:              strings.TrimSpace(v.Get("email")),
		Phone:              strings.TrimSpace(v.Get("phoneNumber")),
		Country:            strings.ToUpper(strings.TrimSpace(v.Get("country"))),
	}
	var errs []FieldError
	if m := strings.TrimSpace(v.Get("sclMemberId")); m != "" {
		n, err := strconv.ParseInt(m, 10, 64)
		if err != nil || n <= 0 {
			errs = append(errs, FieldError{Field: "sclMemberId", Reason: "must be a positive integer"})
		} else {
			raw.SCLMemberID = strconv.FormatInt(n, 10) // as ingestion keys it: no leading zeros
		}
	}
	if raw.Email != "" {
		if _, ok := identity.NormalizeEmail(raw.Email); !ok {
			errs = append(errs, FieldError{Field: "email", Reason: "is not an email address"})
		}
	}
	if raw.Country != "" && (len(raw.Country) != 2 || phonenumbers.GetCountryCodeForRegion(raw.Country) == 0) {
		errs = append(errs, FieldError{Field: "country", Reason: "must be an ISO 3166 alpha-2 region with a telephone country code, like ZA or GB"})
	}
	if raw.Phone != "" && len(errs) == 0 {
		region := raw.Country
		if region == "" {
			region = s.DefaultRegion
		}
		if _, ok := identity.NormalizePhone(raw.Phone, region); !ok {
			errs = append(errs, FieldError{Field: "phoneNumber", Reason: "is not a valid phone number for " + strings.ToUpper(region)})
		}
	}
	if len(errs) > 0 {
		return nil, Invalid(errs...)
	}
	if raw == (identity.Raw{Country: raw.Country}) {
		return nil, Invalid(FieldError{Field: "query", Reason: "give at least one of email, phoneNumber, authUserId, sclMemberId, teetimePlayerId, messagingContactId"})
	}
	return identity.Extract(raw, s).Keys, nil
}

func customerFilter(r *http.Request) (customers.Filter, error) {
	v := r.URL.Query()
	f := customers.Filter{
		Q:              strings.TrimSpace(v.Get("q")),
		Status:         strings.ToUpper(strings.TrimSpace(v.Get("status"))),
		LifecycleStage: strings.ToUpper(strings.TrimSpace(v.Get("lifecycleStage"))),
		Tag:            strings.TrimSpace(v.Get("tag")),
		MembershipTier: strings.TrimSpace(v.Get("membershipTier")),
		HomeClubID:     strings.TrimSpace(v.Get("homeClubId")),
	}
	var errs []FieldError
	if len(f.Q) > maxSearchLength {
		errs = append(errs, FieldError{Field: "q", Reason: fmt.Sprintf("must be at most %d characters", maxSearchLength)})
	}
	if f.Status != "" && !slices.Contains(statusNames, f.Status) {
		errs = append(errs, FieldError{Field: "status", Reason: "must be one of " + strings.Join(statusNames, ", ")})
	}
	if f.LifecycleStage != "" && !slices.Contains(lifecycleNames, f.LifecycleStage) {
		errs = append(errs, FieldError{Field: "lifecycleStage", Reason: "must be one of " + strings.Join(lifecycleNames, ", ")})
	}
	if f.Tag != "" {
		// Tags are stored normalised: find "VIP " as vip.
		t, err := customer.NormalizeTag(f.Tag)
		if err != nil {
			errs = append(errs, FieldError{Field: "tag", Reason: err.Error()})
		}
		f.Tag = t
	}
	if len(errs) > 0 {
		return customers.Filter{}, Invalid(errs...)
	}
	return f, nil
}

// readPage reads limit and a keyset cursor the read model issued.
func readPage(r *http.Request) (customers.Page, error) {
	p, err := ParsePage(r)
	if err != nil {
		return customers.Page{}, err
	}
	page := customers.Page{Limit: p.Limit}
	if p.Cursor != "" {
		var c customers.Cursor
		if err := DecodeCursor(p.Cursor, &c); err != nil {
			return customers.Page{}, err
		}
		page.After = &c
	}
	return page, nil
}

func listOf[T any](items []T, next *customers.Cursor) List[T] {
	if items == nil {
		items = []T{}
	}
	l := List[T]{Items: items}
	if next != nil {
		l.NextCursor = EncodeCursor(next)
	}
	return l
}

// profileAsOf folds the profile as it stood at an instant, following the
// merges it had undergone by then, as the current read does.
func profileAsOf(ctx context.Context, store eventstore.Store, tenant string, id uuid.UUID, at time.Time) (customers.Customer, error) {
	for hop := 0; ; hop++ {
		p, err := commands.LoadProfileAsOf(ctx, store, tenant, id, at)
		if err != nil {
			return customers.Customer{}, err
		}
		if !p.Exists() {
			if hop == 0 {
				return customers.Customer{}, NotFound("customer")
			}
			return customers.Customer{}, fmt.Errorf("profile %s: merged into a profile that did not exist at %s", p.ID, at.Format(time.RFC3339))
		}
		if p.Status != customer.StatusMerged || p.MergedInto == nil || hop == maxMergeHops {
			return customers.FromProfile(p), nil
		}
		id = *p.MergedInto
	}
}

// history answers up to limit+1 events of the profile's stream from version
// from on (the extra one tells NewList another page follows). The event log
// is not under row-level security, so the tenant is checked here: another
// tenant's stream answers 404, exactly like a stream that does not exist.
func history(ctx context.Context, store eventstore.Store, tenant string, id uuid.UUID, from uint64, limit int) ([]HistoryEvent, error) {
	stream := customer.Stream(id)
	evs, err := store.ReadStream(ctx, stream, from, limit+1)
	if err == nil && len(evs) == 0 {
		// Past the end: check the stream is the tenant's before saying so.
		evs, err = store.ReadStream(ctx, stream, 1, 1)
		if err == nil && len(evs) > 0 && evs[0].Metadata.TenantID == tenant {
			return []HistoryEvent{}, nil
		}
	}
	if errors.Is(err, eventstore.ErrStreamNotFound) {
		return nil, NotFound("customer")
	}
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", stream, err)
	}
	out := make([]HistoryEvent, 0, len(evs))
	for _, e := range evs {
		if e.Metadata.TenantID != tenant {
			return nil, NotFound("customer")
		}
		data := e.Data
		if len(data) == 0 {
			data = json.RawMessage("null")
		}
		out = append(out, HistoryEvent{
			ID: e.ID, Type: e.Type, Version: e.Version, Position: e.Position.String(),
			OccurredAt: e.OccurredAt.UTC(), RecordedAt: e.RecordedAt.UTC(), Data: data, Metadata: e.Metadata,
		})
	}
	return out, nil
}
