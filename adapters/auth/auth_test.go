package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var testSecret = []byte("test-secret-0123456789abcdef")

// Keys are generated once and shared read-only by the parallel tests.
var (
	rsaKeyA = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA() })
	rsaKeyB = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA() })
	ecKeyA  = sync.OnceValue(func() *ecdsa.PrivateKey { return mustEC(elliptic.P256()) })
	ecKeyB  = sync.OnceValue(func() *ecdsa.PrivateKey { return mustEC(elliptic.P384()) })
)

func mustRSA() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}

func mustEC(c elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

// jwksServer serves a JWK Set that tests may replace (rotate) or break.
type jwksServer struct {
	*httptest.Server
	hits atomic.Int64

	mu     sync.Mutex
	keys   []jwkset.JWKMarshal
	status int
	raw    []byte // served verbatim when non-nil
}

func newJWKSServer(t *testing.T, keys ...jwkset.JWKMarshal) *jwksServer {
	t.Helper()
	s := &jwksServer{keys: keys, status: http.StatusOK}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		status, body, raw := s.status, jwkset.JWKSMarshal{Keys: s.keys}, s.raw
		s.mu.Unlock()
		if raw != nil {
			_, _ = w.Write(raw)
			return
		}
		if status != http.StatusOK {
			http.Error(w, "unavailable", status)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_ = json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(status int, keys ...jwkset.JWKMarshal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.keys, s.raw = status, keys, nil
}

func (s *jwksServer) setRaw(body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.raw = body
}

func otherSecret() []byte { return []byte("symmetric-key-in-the-jwks-0123456789") }

// jwk is the public JWK of key (or the symmetric JWK of a []byte).
func jwk(t *testing.T, key any, kid string, alg jwkset.ALG) jwkset.JWKMarshal {
	t.Helper()
	opts := jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid, ALG: alg, USE: jwkset.UseSig}}
	if _, ok := key.([]byte); ok {
		opts.Marshal.Private = true
	}
	j, err := jwkset.NewJWKFromKey(key, opts)
	require.NoError(t, err)
	return j.Marshal()
}

func claims(now time.Time, edits ...func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{
		"sub":       "user-1",
		"tenant_id": "club-1",
		"roles":     []string{RoleRead, RoleWrite},
		"iat":       now.Unix(),
		"nbf":       now.Unix(),
		"exp":       now.Add(time.Hour).Unix(),
	}
	for _, e := range edits {
		e(c)
	}
	return c
}

func sign(t *testing.T, m jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	require.NoError(t, err)
	return s
}

func mint(t *testing.T, p Principal, ttl time.Duration, now time.Time) string {
	t.Helper()
	s, err := Mint(testSecret, p, ttl, now)
	require.NoError(t, err)
	return s
}

func rawToken(header, payload string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc([]byte(payload)) + "."
}

// checkVerify asserts Verify's outcome: the principal when reason is
// empty, otherwise an ErrUnauthenticated error with that reason that does
// not leak the token.
func checkVerify(t *testing.T, v *Verifier, token string, want Principal, reason string) {
	t.Helper()
	got, err := v.Verify(token)
	if reason == "" {
		require.NoError(t, err)
		assert.Equal(t, want, got)
		return
	}
	require.ErrorIs(t, err, ErrUnauthenticated)
	assert.Equal(t, "unauthenticated: "+reason, err.Error())
	assert.Equal(t, Principal{}, got)
	if token != "" {
		assert.NotContains(t, err.Error(), token)
	}
}

func TestMintVerifyRoundTrip(t *testing.T) {
	t.Parallel()
	v, err := NewVerifier(t.Context(), Config{HMACSecret: testSecret})
	require.NoError(t, err)

	p := Principal{Subject: "user-1", Tenant: "club-1", Roles: []string{RoleRead, RoleCampaigns}}
	tok := mint(t, p, time.Hour, time.Now())
	checkVerify(t, v, tok, p, "")

	// The claims are the documented ones.
	var c map[string]any
	parts := strings.Split(tok, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(payload, &c))
	assert.ElementsMatch(t, []string{"sub", "tenant_id", "roles", "iat", "nbf", "exp"}, keys(c))
	assert.Equal(t, []any{RoleRead, RoleCampaigns}, c["roles"])

	// No roles still mints an array, and verifies to an empty (non-nil) list.
	none := mint(t, Principal{Subject: "svc", Tenant: PlatformTenant}, time.Minute, time.Now())
	checkVerify(t, v, none, Principal{Subject: "svc", Tenant: PlatformTenant, Roles: []string{}}, "")
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestVerifyHMAC(t *testing.T) {
	t.Parallel()
	v, err := NewVerifier(t.Context(), Config{HMACSecret: testSecret})
	require.NoError(t, err)
	now := time.Now()
	user := Principal{Subject: "user-1", Tenant: "club-1", Roles: []string{RoleRead, RoleWrite}}
	hs := func(edits ...func(jwt.MapClaims)) string {
		return sign(t, jwt.SigningMethodHS256, testSecret, "", claims(now, edits...))
	}
	without := func(name string) func(jwt.MapClaims) { return func(c jwt.MapClaims) { delete(c, name) } }
	with := func(name string, val any) func(jwt.MapClaims) { return func(c jwt.MapClaims) { c[name] = val } }

	valid := hs()
	parts := strings.Split(valid, ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(
		`{"sub":"user-1","tenant_id":"club-2","roles":["crm:admin"],"exp":`+
			strconv.FormatInt(now.Add(time.Hour).Unix(), 10)+`}`)) + "." + parts[2]
	noneSigned, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims(now)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	require.NoError(t, err)
	payload, err := json.Marshal(claims(now))
	require.NoError(t, err)

	tests := []struct {
		name   string
		token  string
		want   Principal
		reason string
	}{
		{"valid", valid, user, ""},
		{"minted", mint(t, user, time.Hour, now), user, ""},
		{"expired", mint(t, user, time.Hour, now.Add(-2*time.Hour)), Principal{}, "token expired"},
		{"expired within leeway", hs(with("exp", now.Add(-10*time.Second).Unix())), user, ""},
		{"not valid yet", mint(t, user, time.Hour, now.Add(time.Hour)), Principal{}, "token not valid yet"},
		{"nbf within leeway", hs(with("nbf", now.Add(10*time.Second).Unix())), user, ""},
		{"other secret", sign(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdef"), "", claims(now)), Principal{}, "bad signature"},
		{"tampered claims", tampered, Principal{}, "bad signature"},
		{"alg none", noneSigned, Principal{}, "unsupported signing algorithm"},
		{"alg none by hand", rawToken(`{"alg":"none","typ":"JWT"}`, string(payload)), Principal{}, "unsupported signing algorithm"},
		{"alg None", rawToken(`{"alg":"None"}`, string(payload)), Principal{}, "unsupported signing algorithm"},
		{"no alg", rawToken(`{"typ":"JWT"}`, string(payload)), Principal{}, "unsupported signing algorithm"},
		{"HS384 with the secret", sign(t, jwt.SigningMethodHS384, testSecret, "", claims(now)), Principal{}, "unsupported signing algorithm"},
		{"RS256 without JWKS", sign(t, jwt.SigningMethodRS256, rsaKeyA(), "k", claims(now)), Principal{}, "unsupported signing algorithm"},
		{"missing sub", hs(without("sub")), Principal{}, "missing claim sub"},
		{"empty sub", hs(with("sub", "")), Principal{}, "missing claim sub"},
		{"missing tenant_id", hs(without("tenant_id")), Principal{}, "missing claim tenant_id"},
		{"missing exp", hs(without("exp")), Principal{}, "missing claim exp"},
		{"scope instead of roles", hs(without("roles"), with("scope", "openid crm:read  crm:social profile")),
			Principal{Subject: "user-1", Tenant: "club-1", Roles: []string{RoleRead, RoleSocial}}, ""},
		{"scope as array", hs(without("roles"), with("scope", []string{"crm:admin"})),
			Principal{Subject: "user-1", Tenant: "club-1", Roles: []string{RoleAdmin}}, ""},
		{"roles and scope merged", hs(with("roles", []string{"crm:write", "billing:all", "crm:write"}), with("scope", "crm:read crm:write")),
			Principal{Subject: "user-1", Tenant: "club-1", Roles: []string{RoleWrite, RoleRead}}, ""},
		{"only unknown roles", hs(with("roles", []string{"admin", "CRM:READ"})),
			Principal{Subject: "user-1", Tenant: "club-1", Roles: []string{}}, ""},
		{"platform token", hs(with("tenant_id", PlatformTenant), with("roles", []string{RoleIngest})),
			Principal{Subject: "user-1", Tenant: PlatformTenant, Roles: []string{RoleIngest}}, ""},
		{"roles not an array", hs(with("roles", "crm:read")), Principal{}, "invalid claim roles"},
		{"roles not strings", hs(with("roles", []int{1})), Principal{}, "invalid claim roles"},
		{"scope not a string", hs(with("scope", 7)), Principal{}, "invalid claim scope"},
		{"tenant_id not a string", hs(with("tenant_id", 7)), Principal{}, "malformed token"},
		{"exp not a number", hs(with("exp", "tomorrow")), Principal{}, "malformed token"},
		{"garbage", "not-a-token", Principal{}, "malformed token"},
		{"bad base64", "a.b.c", Principal{}, "malformed token"},
		{"huge", strings.Repeat("a", maxTokenLen+1), Principal{}, "malformed token"},
		{"empty", "", Principal{}, "missing token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkVerify(t, v, tc.token, tc.want, tc.reason)
		})
	}
}

func TestVerifyJWKSRotation(t *testing.T) {
	t.Parallel()
	srv := newJWKSServer(t,
		jwk(t, &rsaKeyA().PublicKey, "rsa-a", jwkset.AlgRS256),
		jwk(t, &ecKeyA().PublicKey, "ec-a", jwkset.AlgES256),
	)
	v, err := NewVerifier(t.Context(), Config{JWKSURL: srv.URL})
	require.NoError(t, err)
	require.EqualValues(t, 1, srv.hits.Load(), "the key set is fetched at start")

	now := time.Now()
	user := Principal{Subject: "user-1", Tenant: "club-1", Roles: []string{RoleRead, RoleWrite}}
	signedA := sign(t, jwt.SigningMethodRS256, rsaKeyA(), "rsa-a", claims(now))
	checkVerify(t, v, signedA, user, "")
	checkVerify(t, v, sign(t, jwt.SigningMethodES256, ecKeyA(), "ec-a", claims(now)), user, "")
	checkVerify(t, v, sign(t, jwt.SigningMethodRS256, rsaKeyB(), "rsa-a", claims(now)), Principal{}, "bad signature")
	checkVerify(t, v, sign(t, jwt.SigningMethodRS256, rsaKeyA(), "rsa-a", claims(now.Add(-3*time.Hour))), Principal{}, "token expired")
	require.EqualValues(t, 1, srv.hits.Load(), "known keys are served from the cache")

	// The provider rotates: rsa-a is gone, rsa-b and a P-384 key are new.
	srv.set(http.StatusOK,
		jwk(t, &rsaKeyB().PublicKey, "rsa-b", jwkset.AlgRS256),
		jwk(t, &ecKeyA().PublicKey, "ec-a", jwkset.AlgES256),
		jwk(t, &ecKeyB().PublicKey, "ec-b", ""),
	)
	checkVerify(t, v, sign(t, jwt.SigningMethodRS256, rsaKeyB(), "rsa-b", claims(now)), user, "")
	require.EqualValues(t, 2, srv.hits.Load(), "an unknown kid refreshes the key set")
	checkVerify(t, v, sign(t, jwt.SigningMethodES384, ecKeyB(), "ec-b", claims(now)), user, "")
	checkVerify(t, v, signedA, Principal{}, "unknown signing key")
	checkVerify(t, v, sign(t, jwt.SigningMethodRS256, rsaKeyA(), "nobody", claims(now)), Principal{}, "unknown signing key")
	assert.EqualValues(t, 2, srv.hits.Load(), "unknown-kid refreshes are rate-limited")

	// Without kid every key of the token's kind is tried.
	checkVerify(t, v, sign(t, jwt.SigningMethodRS256, rsaKeyB(), "", claims(now)), user, "")
	checkVerify(t, v, sign(t, jwt.SigningMethodRS256, rsaKeyA(), "", claims(now)), Principal{}, "bad signature")
}

func TestVerifyAlgorithmConfusion(t *testing.T) {
	t.Parallel()
	srv := newJWKSServer(t,
		jwk(t, &rsaKeyA().PublicKey, "rsa-a", jwkset.AlgRS256),
		jwk(t, &rsaKeyB().PublicKey, "rsa-noalg", ""),
		jwk(t, &ecKeyA().PublicKey, "ec-a", jwkset.AlgES256),
		jwk(t, &ecKeyB().PublicKey, "ec-noalg", ""),
		jwk(t, otherSecret(), "oct", jwkset.AlgHS256),
	)
	jwksOnly, err := NewVerifier(t.Context(), Config{JWKSURL: srv.URL})
	require.NoError(t, err)
	both, err := NewVerifier(t.Context(), Config{JWKSURL: srv.URL, HMACSecret: testSecret})
	require.NoError(t, err)

	der, err := x509.MarshalPKIXPublicKey(&rsaKeyA().PublicKey)
	require.NoError(t, err)
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	now := time.Now()
	user := Principal{Subject: "user-1", Tenant: "club-1", Roles: []string{RoleRead, RoleWrite}}

	badKID := jwt.NewWithClaims(jwt.SigningMethodRS256, claims(now))
	badKID.Header["kid"] = 42
	badKIDToken, err := badKID.SignedString(rsaKeyA())
	require.NoError(t, err)

	tests := []struct {
		name     string
		token    string
		jwksOnly string // reason with the JWKS-only verifier, "" for success
		both     string // reason with the secret+JWKS verifier
	}{
		{"HS256 signed with the RSA public key PEM",
			sign(t, jwt.SigningMethodHS256, pemBytes, "rsa-a", claims(now)),
			"unsupported signing algorithm", "bad signature"},
		{"HS256 signed with the RSA public key DER",
			sign(t, jwt.SigningMethodHS256, der, "rsa-a", claims(now)),
			"unsupported signing algorithm", "bad signature"},
		{"HS256 signed with a symmetric key from the JWKS",
			sign(t, jwt.SigningMethodHS256, otherSecret(), "oct", claims(now)),
			"unsupported signing algorithm", "bad signature"},
		{"RS256 naming an EC key",
			sign(t, jwt.SigningMethodRS256, rsaKeyA(), "ec-a", claims(now)),
			"signing key does not match algorithm", "signing key does not match algorithm"},
		{"RS256 naming an EC key without alg",
			sign(t, jwt.SigningMethodRS256, rsaKeyA(), "ec-noalg", claims(now)),
			"signing key does not match algorithm", "signing key does not match algorithm"},
		{"ES256 naming an RSA key",
			sign(t, jwt.SigningMethodES256, ecKeyA(), "rsa-noalg", claims(now)),
			"signing key does not match algorithm", "signing key does not match algorithm"},
		{"ES256 naming a P-384 key",
			sign(t, jwt.SigningMethodES256, ecKeyA(), "ec-noalg", claims(now)),
			"signing key does not match algorithm", "signing key does not match algorithm"},
		{"PS256 naming a key published for RS256",
			sign(t, jwt.SigningMethodPS256, rsaKeyA(), "rsa-a", claims(now)),
			"signing key does not match algorithm", "signing key does not match algorithm"},
		{"PS256 naming a key without alg", sign(t, jwt.SigningMethodPS256, rsaKeyB(), "rsa-noalg", claims(now)), "", ""},
		{"RS512 naming a key without alg", sign(t, jwt.SigningMethodRS512, rsaKeyB(), "rsa-noalg", claims(now)), "", ""},
		{"ES512 is not accepted",
			sign(t, jwt.SigningMethodES512, mustEC(elliptic.P521()), "ec-a", claims(now)),
			"unsupported signing algorithm", "unsupported signing algorithm"},
		{"HS256 with the dev secret", sign(t, jwt.SigningMethodHS256, testSecret, "rsa-a", claims(now)),
			"unsupported signing algorithm", ""},
		{"non-string kid", badKIDToken, "malformed token", "malformed token"},
		{"empty kid", sign(t, jwt.SigningMethodRS256, rsaKeyA(), "", claims(now)), "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkVerify(t, jwksOnly, tc.token, user, tc.jwksOnly)
			checkVerify(t, both, tc.token, user, tc.both)
		})
	}
}

func TestVerifyIssuerAudience(t *testing.T) {
	t.Parallel()
	v, err := NewVerifier(t.Context(), Config{HMACSecret: testSecret, Issuer: "https://idp.example", Audience: "crm-api"})
	require.NoError(t, err)
	now := time.Now()
	user := Principal{Subject: "user-1", Tenant: "club-1", Roles: []string{RoleRead, RoleWrite}}
	tok := func(iss, aud any) string {
		return sign(t, jwt.SigningMethodHS256, testSecret, "", claims(now, func(c jwt.MapClaims) {
			if iss != nil {
				c["iss"] = iss
			}
			if aud != nil {
				c["aud"] = aud
			}
		}))
	}
	tests := []struct {
		name   string
		token  string
		reason string
	}{
		{"matching", tok("https://idp.example", "crm-api"), ""},
		{"audience among several", tok("https://idp.example", []string{"other", "crm-api"}), ""},
		{"wrong issuer", tok("https://evil.example", "crm-api"), "invalid issuer"},
		{"missing issuer", tok(nil, "crm-api"), "missing claim iss"},
		{"wrong audience", tok("https://idp.example", "other-api"), "invalid audience"},
		{"missing audience", tok("https://idp.example", nil), "missing claim aud"},
		{"minted tokens carry neither", mint(t, user, time.Hour, now), "missing claim iss"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkVerify(t, v, tc.token, user, tc.reason)
		})
	}

	// Without Issuer and Audience configured, iss and aud are not checked.
	plain, err := NewVerifier(t.Context(), Config{HMACSecret: testSecret})
	require.NoError(t, err)
	checkVerify(t, plain, tok("https://anyone.example", "anything"), user, "")
}

func TestJWKSUnreachableAtStart(t *testing.T) {
	t.Parallel()
	srv := newJWKSServer(t, jwk(t, &rsaKeyA().PublicKey, "rsa-a", jwkset.AlgRS256))
	srv.set(http.StatusServiceUnavailable)
	v, err := NewVerifier(t.Context(), Config{JWKSURL: srv.URL, HMACSecret: testSecret, HTTPClient: srv.Client()})
	require.NoError(t, err, "an unavailable identity provider must not stop the service")

	user := Principal{Subject: "user-1", Tenant: "club-1", Roles: []string{RoleRead, RoleWrite}}
	token := sign(t, jwt.SigningMethodRS256, rsaKeyA(), "rsa-a", claims(time.Now()))
	checkVerify(t, v, token, Principal{}, "unknown signing key")
	checkVerify(t, v, sign(t, jwt.SigningMethodRS256, rsaKeyA(), "", claims(time.Now())), Principal{}, "unknown signing key")
	checkVerify(t, v, mint(t, user, time.Hour, time.Now()), user, "")

	// The provider recovers; the background retry picks the keys up.
	srv.set(http.StatusOK, jwk(t, &rsaKeyA().PublicKey, "rsa-a", jwkset.AlgRS256))
	require.Eventually(t, func() bool {
		_, err := v.Verify(token)
		return err == nil
	}, 3*time.Second, 20*time.Millisecond)

	// Failed refreshes later keep the keys already held.
	srv.setRaw([]byte("<html>"))
	require.Error(t, v.jwks.refresh(t.Context()))
	srv.set(http.StatusOK, jwk(t, otherSecret(), "oct", jwkset.AlgHS256))
	require.Error(t, v.jwks.refresh(t.Context()), "a set without usable keys is refused")
	srv.set(http.StatusBadGateway)
	require.Error(t, v.jwks.refresh(t.Context()))
	checkVerify(t, v, token, user, "")

	// An empty set, though, is the provider's word: all keys are revoked.
	srv.set(http.StatusOK)
	require.NoError(t, v.jwks.refresh(t.Context()))
	checkVerify(t, v, token, Principal{}, "unknown signing key")
}

func TestJWKSRefreshStopsWithContext(t *testing.T) {
	t.Parallel()
	srv := newJWKSServer(t)
	srv.set(http.StatusInternalServerError)
	ctx, cancel := context.WithCancel(t.Context())
	_, err := NewVerifier(ctx, Config{JWKSURL: srv.URL})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return srv.hits.Load() >= 2 }, 2*time.Second, 10*time.Millisecond,
		"a failed start is retried")
	cancel()
	time.Sleep(50 * time.Millisecond) // let an in-flight fetch land
	hits := srv.hits.Load()
	time.Sleep(700 * time.Millisecond) // longer than the next backoff steps
	assert.Equal(t, hits, srv.hits.Load(), "no fetch after the context ended")
}

func TestNewVerifierConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
	}{
		{"nothing configured", Config{}},
		{"relative JWKS URL", Config{JWKSURL: "/jwks.json"}},
		{"JWKS URL of another scheme", Config{JWKSURL: "file:///etc/jwks.json"}},
		{"negative leeway", Config{HMACSecret: testSecret, Leeway: -time.Second}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v, err := NewVerifier(t.Context(), tc.cfg)
			assert.Error(t, err)
			assert.Nil(t, v)
		})
	}

	// The secret is copied: changing the caller's slice changes nothing.
	secret := []byte(string(testSecret))
	v, err := NewVerifier(t.Context(), Config{HMACSecret: secret, Leeway: time.Second})
	require.NoError(t, err)
	tok := mint(t, Principal{Subject: "s", Tenant: "t"}, time.Minute, time.Now())
	secret[0] ^= 0xff
	_, err = v.Verify(tok)
	assert.NoError(t, err)
}

func TestMintRejects(t *testing.T) {
	t.Parallel()
	p := Principal{Subject: "user-1", Tenant: "club-1", Roles: []string{RoleRead}}
	now := time.Now()
	tests := []struct {
		name   string
		secret []byte
		p      Principal
		ttl    time.Duration
	}{
		{"empty secret", nil, p, time.Hour},
		{"zero ttl", testSecret, p, 0},
		{"negative ttl", testSecret, p, -time.Hour},
		{"no subject", testSecret, Principal{Tenant: "club-1"}, time.Hour},
		{"no tenant", testSecret, Principal{Subject: "user-1"}, time.Hour},
		{"unknown role", testSecret, Principal{Subject: "user-1", Tenant: "club-1", Roles: []string{"crm:reed"}}, time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tok, err := Mint(tc.secret, tc.p, tc.ttl, now)
			assert.Error(t, err)
			assert.Empty(t, tok)
		})
	}
}

func TestPrincipal(t *testing.T) {
	t.Parallel()
	p := Principal{Subject: "user-1", Tenant: "club-1", Roles: []string{RoleRead, RoleSocial}}
	assert.True(t, p.Has(RoleRead))
	assert.True(t, p.Has(RoleSocial))
	assert.False(t, p.Has(RoleAdmin))
	assert.False(t, Principal{}.Has(RoleRead))

	_, ok := FromContext(context.Background())
	assert.False(t, ok)
	got, ok := FromContext(WithPrincipal(context.Background(), p))
	assert.True(t, ok)
	assert.Equal(t, p, got)

	b, err := json.Marshal(p)
	require.NoError(t, err)
	assert.JSONEq(t, `{"sub":"user-1","tenantId":"club-1","roles":["crm:read","crm:social"]}`, string(b))
	assert.Len(t, Roles, 6)
}
