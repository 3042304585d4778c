package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/segmentio/encoding/json"
	"golang.org/x/time/rate"
)

// Timing of the JWK Set cache.
const (
	jwksStartTimeout  = 5 * time.Second  // first fetch, inside NewVerifier
	jwksFetchTimeout  = 10 * time.Second // every later fetch
	jwksRefreshEvery  = 15 * time.Minute // while fetches succeed
	jwksRetryMin      = 250 * time.Millisecond
	jwksRetryMax      = 30 * time.Second // backoff cap while fetches fail
	jwksUnknownKIDGap = 30 * time.Second // at most one refresh per gap for unknown kids
	jwksMaxBody       = 1 << 20
)

// jwksCache holds the identity provider's signing keys. A goroutine refreshes
// them every jwksRefreshEvery, or with backoff while fetches fail; a token
// naming an unknown kid triggers an immediate refresh, at most one per
// jwksUnknownKIDGap. A failed fetch keeps the keys already held.
type jwksCache struct {
	ctx    context.Context
	url    string
	logURL string // without credentials or query, for logs
	client *http.Client
	store  *jwkset.MemoryJWKSet
	kf     keyfunc.Keyfunc

	mu      sync.Mutex // serialises fetches; guards failing
	failing bool       // the last fetch failed
	limiter *rate.Limiter
}

func newJWKSCache(ctx context.Context, rawURL string, client *http.Client) (*jwksCache, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// The URL itself is not repeated: it might carry credentials.
		return nil, errors.New("auth: JWKS URL must be an absolute http or https URL")
	}
	if client == nil {
		client = &http.Client{Timeout: jwksFetchTimeout}
	}
	shown := *u
	shown.User, shown.RawQuery, shown.Fragment = nil, "", ""
	c := &jwksCache{
		ctx:     ctx,
		url:     rawURL,
		logURL:  shown.String(),
		client:  client,
		store:   jwkset.NewMemoryStorage(),
		limiter: rate.NewLimiter(rate.Every(jwksUnknownKIDGap), 1),
	}
	c.kf, err = keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: refreshingStorage{Storage: c.store, c: c}})
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}

	startCtx, cancel := context.WithTimeout(ctx, jwksStartTimeout)
	ok := c.refresh(startCtx) == nil
	cancel()
	go c.run(ok)
	return c, nil
}

// run keeps the keys fresh until c.ctx ends.
func (c *jwksCache) run(ok bool) {
	backoff := jwksRetryMin
	for {
		wait := jwksRefreshEvery
		if !ok {
			wait = backoff
			backoff = min(2*backoff, jwksRetryMax)
		} else {
			backoff = jwksRetryMin
		}
		timer := time.NewTimer(wait)
		select {
		case <-c.ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		ok = c.refresh(c.ctx) == nil
	}
}

// refresh fetches the key set and replaces the cached keys, logging failure.
func (c *jwksCache) refresh(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refreshLocked(ctx)
}

func (c *jwksCache) refreshLocked(ctx context.Context) error {
	n, err := c.fetch(ctx)
	if err != nil {
		c.failing = true
		if c.ctx.Err() == nil { // not shutting down
			slog.Default().WarnContext(ctx, "auth: fetching the JWK Set failed; keeping the keys held, will retry",
				"url", c.logURL, "error", err)
		}
		return err
	}
	level := slog.LevelDebug
	if c.failing {
		level = slog.LevelInfo
	}
	c.failing = false
	slog.Default().Log(ctx, level, "auth: JWK Set loaded", "url", c.logURL, "keys", n)
	return nil
}

// fetch loads the key set into the store and returns how many keys it holds.
// Only RSA and EC keys meant for signatures are kept: a symmetric key in
// the set must never verify tokens, nor can private key material be loaded.
func (c *jwksCache) fetch(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, jwksFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return 0, errors.New("cannot build request")
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which may carry credentials
		}
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, jwksMaxBody))
		return 0, fmt.Errorf("HTTP status %d", resp.StatusCode)
	}
	var set jwkset.JWKSMarshal
	if err := json.NewDecoder(io.LimitReader(resp.Body, jwksMaxBody)).Decode(&set); err != nil {
		return 0, errors.New("response is not a JWK Set")
	}
	keys := make([]jwkset.JWK, 0, len(set.Keys))
	for _, m := range set.Keys {
		if m.KTY != jwkset.KtyRSA && m.KTY != jwkset.KtyEC {
			continue
		}
		if m.USE != "" && m.USE != jwkset.UseSig {
			continue
		}
		// Public only: private parameters, if any, are ignored.
		jwk, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if err != nil {
			continue
		}
		keys = append(keys, jwk)
	}
	if len(keys) == 0 && len(set.Keys) > 0 {
		return 0, errors.New("JWK Set holds no usable signing key")
	}
	if err := c.store.KeyReplaceAll(ctx, keys); err != nil {
		return 0, err
	}
	return len(keys), nil
}

// refreshForMiss refreshes the keys because a token needs a key the cache
// lacks (kid, or any key when kid is empty), unless another caller did so
// meanwhile or the unknown-kid rate limit is spent. It reports whether the
// lookup is worth retrying.
func (c *jwksCache) refreshForMiss(ctx context.Context, kid string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if kid != "" {
		if _, err := c.store.KeyRead(ctx, kid); err == nil {
			return true
		}
	} else if keys, err := c.store.KeyReadAll(ctx); err == nil && len(keys) > 0 {
		return true
	}
	if !c.limiter.Allow() {
		return false
	}
	return c.refreshLocked(ctx) == nil
}

// key finds the key for a token signed with one of jwksAlgs.
func (c *jwksCache) key(t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	if kid, ok := t.Header[jwkset.HeaderKID]; ok {
		if s, ok := kid.(string); !ok || s == "" {
			return nil, errBadKID
		}
	}
	got, err := c.kf.KeyfuncCtx(c.ctx)(t)
	if err != nil {
		if errors.Is(err, jwkset.ErrKeyNotFound) {
			return nil, errUnknownKey
		}
		// keyfunc refuses a key whose JWK "alg" differs from the token's.
		return nil, errKeyMismatch
	}
	if set, ok := got.(jwt.VerificationKeySet); ok {
		// No kid in the token: try every key of the fitting kind.
		var fit jwt.VerificationKeySet
		for _, k := range set.Keys {
			if keyFits(alg, k) {
				fit.Keys = append(fit.Keys, k)
			}
		}
		if len(fit.Keys) == 0 {
			return nil, errUnknownKey
		}
		return fit, nil
	}
	if !keyFits(alg, got) {
		return nil, errKeyMismatch
	}
	return got, nil
}

// refreshingStorage is the key store keyfunc reads, refreshing the cache
// when a key is missing.
type refreshingStorage struct {
	jwkset.Storage
	c *jwksCache
}

func (s refreshingStorage) KeyRead(ctx context.Context, kid string) (jwkset.JWK, error) {
	jwk, err := s.Storage.KeyRead(ctx, kid)
	if errors.Is(err, jwkset.ErrKeyNotFound) && s.c.refreshForMiss(ctx, kid) {
		return s.Storage.KeyRead(ctx, kid)
	}
	return jwk, err
}

func (s refreshingStorage) KeyReadAll(ctx context.Context) ([]jwkset.JWK, error) {
	keys, err := s.Storage.KeyReadAll(ctx)
	if err == nil && len(keys) == 0 && s.c.refreshForMiss(ctx, "") {
		return s.Storage.KeyReadAll(ctx)
	}
	return keys, err
}
