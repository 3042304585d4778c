package auth

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// mintClaims are the claims Mint writes.
type mintClaims struct {
	jwt.RegisteredClaims
	TenantID string   `json:"tenant_id"`
	Roles    []string `json:"roles"`
}

// Mint returns an HS256 token for p, valid from now for ttl, with the claims
// sub, tenant_id, roles (a JSON array), iat, nbf and exp. It is meant for
// development and tests; the identity provider issues production tokens.
// Times are whole seconds, as JWT numeric dates are. Unknown roles are
// refused, since Verify would silently drop them.
func Mint(secret []byte, p Principal, ttl time.Duration, now time.Time) (string, error) {
	switch {
	case len(secret) == 0:
		return "", errors.New("auth: mint: empty secret")
	case ttl <= 0:
		return "", errors.New("auth: mint: ttl must be positive")
	case p.Subject == "":
		return "", errors.New("auth: mint: principal has no subject")
	case p.Tenant == "":
		return "", errors.New("auth: mint: principal has no tenant")
	}
	roles := make([]string, 0, len(p.Roles))
	for _, r := range p.Roles {
		if !knownRole(r) {
			return "", fmt.Errorf("auth: mint: unknown role %q", r)
		}
		roles = append(roles, r)
	}
	c := mintClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   p.Subject,
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		TenantID: p.Tenant,
		Roles:    roles,
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("auth: mint: %w", err)
	}
	return s, nil
}
