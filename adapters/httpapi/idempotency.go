package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
)

// IdempotencyStore keeps the first response to each Idempotency-Key.
type IdempotencyStore interface {
	// Lookup answers the stored response for key, if any.
	Lookup(ctx context.Context, tenant, key string) (hash string, status int, body []byte, found bool, err error)
	// Save stores a response; a key saved already is left as it was.
	Save(ctx context.Context, tenant, key, hash string, status int, body []byte) error
}

// IdempotencyKey answers the request's Idempotency-Key header, if valid.
func IdempotencyKey(r *http.Request) string {
	k := r.Header.Get("Idempotency-Key")
	if !validRequestID(k) {
		return ""
	}
	return k
}

// UseIdempotency makes routes marked Idempotent answer a repeated
// Idempotency-Key with the response the key first got.
func (a *API) UseIdempotency(s IdempotencyStore) { a.idem = s }

// buffered captures a response so it can be stored.
type buffered struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *buffered) Header() http.Header         { return b.header }
func (b *buffered) WriteHeader(code int)        { b.status = code }
func (b *buffered) Write(p []byte) (int, error) { return b.body.Write(p) }

// idempotent wraps a command handler. A key seen with another request body
// is refused: reusing a key for a different command is a client bug.
func (a *API) idempotent(h HandlerFunc) HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		key := IdempotencyKey(r)
		if a.idem == nil || key == "" {
			return h(w, r)
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return err
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		sum := sha256.Sum256(append([]byte(r.Method+" "+r.URL.Path+"\n"), body...))
		hash := hex.EncodeToString(sum[:])
		tenant := Tenant(r)
		prevHash, status, prevBody, found, err := a.idem.Lookup(r.Context(), tenant, key)
		if err != nil {
			return err
		}
		if found {
			if prevHash != hash {
				return Unprocessable("this Idempotency-Key was used for a different request", FieldError{Field: "Idempotency-Key", Reason: "already used for a different request"})
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Idempotent-Replayed", "true")
			w.WriteHeader(status)
			_, _ = w.Write(prevBody)
			return nil
		}
		buf := &buffered{header: w.Header(), status: http.StatusOK}
		if err := h(buf, r); err != nil {
			return err // problems are not stored: the client may fix and retry
		}
		if buf.status < 500 {
			if err := a.idem.Save(r.Context(), tenant, key, hash, buf.status, buf.body.Bytes()); err != nil {
				return err
			}
		}
		w.WriteHeader(buf.status)
		_, _ = w.Write(buf.body.Bytes())
		return nil
	}
}
