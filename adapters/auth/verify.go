package auth

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/segmentio/encoding/json"
)

// Config configures a Verifier. At least one of HMACSecret and JWKSURL must
// be set.
type Config struct {
	// HMACSecret is the HS256 key for development tokens (CRM_JWT_SECRET).
	// It may be empty when JWKSURL is set; then HS256 tokens are refused.
	HMACSecret []byte
	// JWKSURL is the identity provider's JWK Set (CRM_JWKS_URL). When set,
	// RS256/RS384/RS512/ES256/ES384/PS256 tokens verify against its keys,
	// which are cached, refreshed periodically and refreshed (rate-limited)
	// when a token names an unknown kid.
	JWKSURL string
	// Issuer and Audience are checked when non-empty.
	Issuer, Audience string
	// Leeway is the clock skew allowed for exp and nbf; zero means 30s.
	Leeway time.Duration
	// HTTPClient fetches the JWK Set; nil means a client with a 10s timeout.
	HTTPClient *http.Client
}

const (
	defaultLeeway = 30 * time.Second
	// maxTokenLen bounds the work spent on a token; real ones are < 4 KiB.
	maxTokenLen = 16 << 10

	algHS256 = "HS256"
)

// jwksAlgs are the algorithms accepted with keys from the JWK Set, and only
// with them.
var jwksAlgs = []string{"RS256", "RS384", "RS512", "ES256", "ES384", "PS256"}

// Verifier verifies bearer tokens. It is safe for concurrent use.
type Verifier struct {
	secret  []byte     // nil when no HMAC secret is configured
	jwks    *jwksCache // nil when no JWKS URL is configured
	methods []string   // algorithms accepted at all
	parser  *jwt.Parser
	iss     string
	aud     string
}

// NewVerifier returns a Verifier for cfg. It fails when neither an HMAC
// secret nor a JWKS URL is configured, or when the configuration is invalid.
//
// With a JWKS URL, NewVerifier tries to fetch the key set once (for at most
// a few seconds) and then keeps it fresh from a goroutine that ends with
// ctx. An unreachable identity provider is not an error: it is logged and
// retried with backoff, and until keys arrive RS/ES/PS tokens fail with
// "unknown signing key".
func NewVerifier(ctx context.Context, cfg Config) (*Verifier, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if len(cfg.HMACSecret) == 0 && cfg.JWKSURL == "" {
		return nil, errors.New("auth: neither an HMAC secret nor a JWKS URL is configured")
	}
	leeway := cfg.Leeway
	switch {
	case leeway == 0:
		leeway = defaultLeeway
	case leeway < 0:
		return nil, errors.New("auth: leeway must not be negative")
	}

	v := &Verifier{iss: cfg.Issuer, aud: cfg.Audience}
	if len(cfg.HMACSecret) > 0 {
		v.secret = bytes.Clone(cfg.HMACSecret)
		v.methods = append(v.methods, algHS256)
	}
	if cfg.JWKSURL != "" {
		c, err := newJWKSCache(ctx, cfg.JWKSURL, cfg.HTTPClient)
		if err != nil {
			return nil, err
		}
		v.jwks = c
		v.methods = append(v.methods, jwksAlgs...)
	}

	opts := []jwt.ParserOption{
		jwt.WithValidMethods(v.methods),
		jwt.WithLeeway(leeway),
		jwt.WithExpirationRequired(),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// Verify checks token's signature and claims and returns its principal.
// Every error wraps ErrUnauthenticated and reads "unauthenticated: <reason>".
func (v *Verifier) Verify(token string) (Principal, error) {
	if token == "" {
		return Principal{}, unauthenticated("missing token")
	}
	if len(token) > maxTokenLen {
		return Principal{}, unauthenticated("malformed token")
	}
	var c tokenClaims
	if t, err := v.parser.ParseWithClaims(token, &c, v.key); err != nil {
		alg := ""
		if t != nil && t.Method != nil {
			alg = t.Method.Alg()
		}
		return Principal{}, unauthenticated(v.reason(err, alg, &c))
	}
	if c.Subject == "" {
		return Principal{}, unauthenticated("missing claim sub")
	}
	if c.TenantID == "" {
		return Principal{}, unauthenticated("missing claim tenant_id")
	}
	return Principal{
		Subject: c.Subject,
		Tenant:  c.TenantID,
		Roles:   mergeRoles(c.Roles, c.Scope),
	}, nil
}

// Verification failures of the key lookup, told apart in reason.
var (
	errUnsupportedAlg = errors.New("unsupported signing algorithm")
	errUnknownKey     = errors.New("unknown signing key")
	errKeyMismatch    = errors.New("signing key does not match algorithm")
	errBadKID         = errors.New("malformed kid")
	errInvalidRoles   = errors.New("roles is not an array of strings")
	errInvalidScope   = errors.New("scope is not a string")
)

func unauthenticated(reason string) error {
	return fmt.Errorf("%w: %s", ErrUnauthenticated, reason)
}

// key is the jwt.Keyfunc: it picks the key by the token's algorithm, so an
// algorithm can only ever be checked with its own kind of key.
func (v *Verifier) key(t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	switch {
	case alg == algHS256:
		if _, ok := t.Method.(*jwt.SigningMethodHMAC); !ok || v.secret == nil {
			return nil, errUnsupportedAlg
		}
		return v.secret, nil
	case slices.Contains(jwksAlgs, alg):
		if v.jwks == nil {
			return nil, errUnsupportedAlg
		}
		return v.jwks.key(t)
	}
	return nil, errUnsupportedAlg
}

// keyFits reports whether key is a public key of the kind alg needs.
func keyFits(alg string, key any) bool {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return k.Curve != nil && k.Curve.Params().Name == "P-256"
		case "ES384":
			return k.Curve != nil && k.Curve.Params().Name == "P-384"
		}
	}
	return false
}

// reason maps a parse error to the short reason shown to clients.
func (v *Verifier) reason(err error, alg string, c *tokenClaims) string {
	switch {
	case errors.Is(err, errInvalidRoles):
		return "invalid claim roles"
	case errors.Is(err, errInvalidScope):
		return "invalid claim scope"
	case errors.Is(err, errBadKID), errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed token"
	case errors.Is(err, errUnsupportedAlg):
		return "unsupported signing algorithm"
	case errors.Is(err, errUnknownKey):
		return "unknown signing key"
	case errors.Is(err, errKeyMismatch):
		return "signing key does not match algorithm"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// alg missing or not implemented by the jwt package.
		return "unsupported signing algorithm"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		// Also returned for an algorithm outside the accepted set (alg none).
		if slices.Contains(v.methods, alg) {
			return "bad signature"
		}
		return "unsupported signing algorithm"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "token not valid yet"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		switch {
		case c.ExpiresAt == nil:
			return "missing claim exp"
		case v.iss != "" && c.Issuer == "":
			return "missing claim iss"
		case v.aud != "" && len(c.Audience) == 0:
			return "missing claim aud"
		}
		return "missing claim"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "invalid issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "invalid audience"
	case errors.Is(err, jwt.ErrInvalidType):
		return "malformed token"
	}
	return "invalid token"
}

// tokenClaims are the claims Verify reads.
type tokenClaims struct {
	jwt.RegisteredClaims
	TenantID string     `json:"tenant_id"`
	Roles    rolesClaim `json:"roles"`
	Scope    scopeClaim `json:"scope"`
}

// rolesClaim is the roles claim: a JSON array of strings (or null).
type rolesClaim []string

func (r *rolesClaim) UnmarshalJSON(b []byte) error {
	var v []string
	if err := json.Unmarshal(b, &v); err != nil {
		return errInvalidRoles
	}
	*r = v
	return nil
}

// scopeClaim is the OAuth scope claim: a space-separated string. A JSON
// array of strings, which some providers send, is accepted too.
type scopeClaim []string

func (s *scopeClaim) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		*s = strings.Fields(str)
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return errInvalidScope
	}
	*s = list
	return nil
}

// mergeRoles returns the known roles among roles and scopes, each once, in
// order of first appearance; never nil.
func mergeRoles(roles, scopes []string) []string {
	out := []string{}
	for _, r := range slices.Concat(roles, scopes) {
		if knownRole(r) && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}
