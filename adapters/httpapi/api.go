package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/clubcrm/crm/adapters/auth"
)

// BasePath prefixes every authenticated route.
const BasePath = "/api/v1"

// Verifier checks bearer tokens.
type Verifier interface {
	Verify(token string) (auth.Principal, error)
}

// HandlerFunc is an endpoint. A returned error becomes a problem response:
// a *Problem as it is, an error matched by an ErrorMapping with its status,
// anything else a 500 that leaks nothing.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Param documents a query parameter.
type Param struct {
	Name        string
	Description string
	Type        string // string (default), integer, number, boolean
	Repeated    bool
	Required    bool
}

// Route describes an endpoint: the router serves it and the OpenAPI
// document describes it from this one value, so the two cannot drift.
type Route struct {
	Method  string
	Path    string // under BasePath unless Public; {name} for path parameters
	Summary string
	Tags    []string
	// Role the caller needs; empty means any authenticated caller.
	Role string
	// Public routes need no token and are not under BasePath.
	Public bool
	Query  []Param
	// Request and Response are zero values of the body types, for the
	// document's schemas; nil when there is no body.
	Request  any
	Response any
	// Status is the success status (200 when zero).
	Status int
	// BodyLimit overrides DefaultBodyLimit.
	BodyLimit int64
	// Errors lists the statuses the route answers with a problem, beyond
	// the ones every route may answer (400, 401, 403, 500).
	Errors []int
	// Idempotent commands accept an Idempotency-Key header: a retry with
	// the same key and body gets the first response again.
	Idempotent bool
}

// API is the HTTP surface of the service.
type API struct {
	root     *mux.Router
	v1       *mux.Router
	routes   []Route
	log      *slog.Logger
	verifier Verifier
	metrics  *metrics
	mappings []ErrorMapping
	handler  http.Handler
	idem     IdempotencyStore
	wait     func(ctx context.Context, token string) error
}

// UseConsistency lets queries sent with X-CRM-Wait-For (the X-CRM-Position
// a command answered) wait, boundedly, until the read models hold that
// command's writes. wait answers an error when they do not in time.
func (a *API) UseConsistency(wait func(ctx context.Context, token string) error) { a.wait = wait }

// New answers an API that verifies tokens with v and registers its metrics
// with reg. It serves /openapi.json itself.
func New(log *slog.Logger, v Verifier, reg prometheus.Registerer) *API {
	a := &API{root: mux.NewRouter(), log: log, verifier: v, metrics: newMetrics(reg)}
	a.root.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteProblem(w, r, NewProblem(http.StatusNotFound, "", "", "no route for "+r.URL.Path))
	})
	a.root.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteProblem(w, r, NewProblem(http.StatusMethodNotAllowed, "", "", r.Method+" is not allowed on "+r.URL.Path))
	})
	a.v1 = a.root.PathPrefix(BasePath).Subrouter()
	a.v1.Use(a.authenticate)
	a.v1.NotFoundHandler = a.root.NotFoundHandler
	a.v1.MethodNotAllowedHandler = a.root.MethodNotAllowedHandler
	a.handler = withRequestID(a.observe(a.recoverPanics(a.root)))
	a.Handle(Route{Method: http.MethodGet, Path: "/openapi.json", Public: true, Summary: "This document", Tags: []string{"meta"}},
		func(w http.ResponseWriter, r *http.Request) error {
			WriteJSON(w, http.StatusOK, a.OpenAPI())
			return nil
		})
	return a
}

// MapError makes handlers' errors that match target answer status.
func (a *API) MapError(target error, status int, kind string) {
	a.mappings = append(a.mappings, ErrorMapping{Target: target, Status: status, Kind: kind})
}

// ServeHTTP serves the API.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.handler.ServeHTTP(w, r) }

// Router exposes the underlying router for tests that walk it.
func (a *API) Router() *mux.Router { return a.root }

// Handle registers an endpoint.
func (a *API) Handle(rt Route, h HandlerFunc) {
	if rt.Status == 0 {
		rt.Status = http.StatusOK
	}
	if rt.BodyLimit == 0 {
		rt.BodyLimit = DefaultBodyLimit
	}
	a.routes = append(a.routes, rt)
	router := a.v1
	if rt.Public {
		router = a.root
	}
	if rt.Idempotent {
		h = a.idempotent(h)
	}
	router.Handle(rt.Path, a.endpoint(rt, h)).Methods(rt.Method)
}

// Routes answers the registered routes with their full paths.
func (a *API) Routes() []Route {
	out := make([]Route, len(a.routes))
	for i, rt := range a.routes {
		rt.Path = FullPath(rt)
		out[i] = rt
	}
	return out
}

// FullPath answers the path a route is served at.
func FullPath(rt Route) string {
	if rt.Public {
		return rt.Path
	}
	return BasePath + rt.Path
}

func (a *API) endpoint(rt Route, h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := auth.FromContext(r.Context()); ok {
			if rt.Role != "" && !Allows(p, rt.Role) {
				WriteProblem(w, r, Forbidden(rt.Role))
				return
			}
			// A platform token names no tenant of its own: it may post
			// events for any tenant, and read nothing.
			if p.Tenant == auth.PlatformTenant && rt.Role != "" && rt.Role != auth.RoleIngest {
				WriteProblem(w, r, NewProblem(http.StatusForbidden, "forbidden", "", "a platform token (tenant_id *) may only post upstream events"))
				return
			}
		}
		if tok := r.Header.Get(WaitHeader); tok != "" && a.wait != nil && r.Method == http.MethodGet {
			if err := a.wait(r.Context(), tok); err != nil {
				WriteProblem(w, r, NewProblem(http.StatusServiceUnavailable, "not-caught-up", "Read model not caught up",
					"the read models have not yet reached "+WaitHeader+"; retry shortly").WithHeader("Retry-After", "1"))
				return
			}
		}
		r.Body = http.MaxBytesReader(w, r.Body, rt.BodyLimit)
		if err := h(w, r); err != nil {
			p, internal := asProblem(err, a.mappings)
			if internal {
				a.log.ErrorContext(r.Context(), "handler failed",
					slog.String("requestId", RequestID(r.Context())),
					slog.String("route", FullPath(rt)),
					slog.Any("error", err))
			}
			WriteProblem(w, r, p)
		}
	})
}

// authenticate admits requests that carry a valid bearer token and puts the
// principal in the request's context.
func (a *API) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		scheme, token, ok := strings.Cut(h, " ")
		if h == "" {
			WriteProblem(w, r, Unauthenticated("missing bearer token"))
			return
		}
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
			WriteProblem(w, r, Unauthenticated("authorization header must be 'Bearer <token>'"))
			return
		}
		p, err := a.verifier.Verify(strings.TrimSpace(token))
		if err != nil {
			reason := "token refused"
			if errors.Is(err, auth.ErrUnauthenticated) {
				reason = err.Error()
			}
			WriteProblem(w, r, Unauthenticated(reason))
			return
		}
		next.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
	})
}

// implied lists, for each role, the roles that also grant it: an
// administrator may do anything staff may, and anyone who may change
// customer data or run campaigns may read it. crm:ingest, held by upstream
// services, grants nothing else and is granted by nothing else.
var implied = map[string][]string{
	auth.RoleRead:      {auth.RoleWrite, auth.RoleCampaigns, auth.RoleSocial, auth.RoleAdmin},
	auth.RoleWrite:     {auth.RoleAdmin},
	auth.RoleCampaigns: {auth.RoleAdmin},
	auth.RoleSocial:    {auth.RoleAdmin},
}

// Allows reports whether p may act in role.
func Allows(p auth.Principal, role string) bool {
	if p.Has(role) {
		return true
	}
	for _, r := range implied[role] {
		if p.Has(r) {
			return true
		}
	}
	return false
}

// Tenant answers the tenant of the request's principal.
func Tenant(r *http.Request) string {
	p, _ := auth.FromContext(r.Context())
	return p.Tenant
}
