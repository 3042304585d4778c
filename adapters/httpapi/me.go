package httpapi

import (
	"net/http"

	"github.com/clubcrm/crm/adapters/auth"
)

// Me is the caller as its token describes it.
type Me struct {
	Subject  string   `json:"subject"`
	TenantID string   `json:"tenantId"`
	Roles    []string `json:"roles"`
}

// RegisterMe adds GET /api/v1/me, which answers the token's subject, tenant
// and roles: the first call a new integration makes.
func (a *API) RegisterMe() {
	a.Handle(Route{Method: http.MethodGet, Path: "/me", Summary: "The caller's subject, tenant and roles", Tags: []string{"meta"}, Response: Me{}},
		func(w http.ResponseWriter, r *http.Request) error {
			p, _ := auth.FromContext(r.Context())
			roles := p.Roles
			if roles == nil {
				roles = []string{}
			}
			WriteJSON(w, http.StatusOK, Me{Subject: p.Subject, TenantID: p.Tenant, Roles: roles})
			return nil
		})
}
