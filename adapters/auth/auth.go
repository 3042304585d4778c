// Package auth verifies and mints the bearer tokens of the HTTP API.
//
// Two kinds of key are supported and each accepts only its own algorithms:
// an HMAC secret (HS256 only) for development tokens minted with [Mint], and
// the identity provider's JWK Set (RS256, RS384, RS512, ES256, ES384, PS256),
// fetched over HTTP, cached and refreshed. Every verification failure wraps
// [ErrUnauthenticated] and carries a short reason that is safe to show a
// client; errors never contain the token or key material.
package auth

import (
	"context"
	"errors"
	"slices"
)

// Roles of the specification plus crm:ingest for upstream services.
const (
	RoleRead      = "crm:read"
	RoleWrite     = "crm:write"
	RoleCampaigns = "crm:campaigns"
	RoleSocial    = "crm:social"
	RoleAdmin     = "crm:admin"
	RoleIngest    = "crm:ingest"
)

// PlatformTenant is the tenant_id of platform tokens held by upstream
// services, which may post events for any tenant. It is never a real tenant:
// callers must not use it to scope reads or writes of tenant data.
const PlatformTenant = "*"

// Roles lists every role this service knows; other role strings in a token
// are ignored.
var Roles = []string{RoleRead, RoleWrite, RoleCampaigns, RoleSocial, RoleAdmin, RoleIngest}

// ErrUnauthenticated is wrapped by every error [Verifier.Verify] returns. The
// error's message is "unauthenticated: <reason>", where the reason is short
// and safe to show to the client (for example "token expired").
var ErrUnauthenticated = errors.New("unauthenticated")

// Principal is the authenticated caller of a request.
type Principal struct {
	Subject string   `json:"sub"`
	Tenant  string   `json:"tenantId"`
	Roles   []string `json:"roles"`
}

// Has reports whether the principal holds role exactly; no role implies
// another.
func (p Principal) Has(role string) bool {
	return slices.Contains(p.Roles, role)
}

type principalKey struct{}

// WithPrincipal returns a copy of ctx that carries p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal WithPrincipal stored in ctx, if any.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// knownRole reports whether r is one of the six roles (independently of the
// exported, mutable Roles slice).
func knownRole(r string) bool {
	switch r {
	case RoleRead, RoleWrite, RoleCampaigns, RoleSocial, RoleAdmin, RoleIngest:
		return true
	}
	return false
}
