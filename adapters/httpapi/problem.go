// Package httpapi holds the HTTP conventions every endpoint follows: RFC 9457
// problem responses, strict JSON decoding, cursor paging, request ids,
// authentication and role checks, metrics, and the OpenAPI document built
// from the same route table the router serves.
package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/segmentio/encoding/json"
)

// FieldError names one field of a request and what is wrong with it.
type FieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// Problem is an RFC 9457 problem detail, and the error handlers return to
// answer with one.
type Problem struct {
	Type      string       `json:"type"`
	Title     string       `json:"title"`
	Status    int          `json:"status"`
	Detail    string       `json:"detail,omitempty"`
	Instance  string       `json:"instance,omitempty"`
	RequestID string       `json:"requestId,omitempty"`
	Errors    []FieldError `json:"errors,omitempty"`

	headers http.Header
}

func (p *Problem) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s", p.Status, p.Title)
	if p.Detail != "" {
		b.WriteString(": " + p.Detail)
	}
	for _, e := range p.Errors {
		fmt.Fprintf(&b, "; %s: %s", e.Field, e.Reason)
	}
	return b.String()
}

// WithHeader adds a response header to the problem (WWW-Authenticate, Allow).
func (p *Problem) WithHeader(key, value string) *Problem {
	if p.headers == nil {
		p.headers = http.Header{}
	}
	p.headers.Add(key, value)
	return p
}

// problemType answers the type URI of a problem kind; problems that say no
// more than their status use about:blank, as RFC 9457 asks.
func problemType(kind string) string {
	if kind == "" {
		return "about:blank"
	}
	return "urn:crm:problem:" + kind
}

// NewProblem answers a problem of the given status and kind ("" for a plain
// HTTP status), titled by the status text unless title is given.
func NewProblem(status int, kind, title, detail string) *Problem {
	if title == "" {
		title = http.StatusText(status)
	}
	return &Problem{Type: problemType(kind), Title: title, Status: status, Detail: detail}
}

// Invalid answers a 400 naming each field at fault.
func Invalid(errs ...FieldError) *Problem {
	p := NewProblem(http.StatusBadRequest, "validation", "Request is not valid", "")
	p.Errors = errs
	if len(errs) == 1 {
		p.Detail = errs[0].Field + ": " + errs[0].Reason
	} else {
		p.Detail = fmt.Sprintf("%d fields are not valid", len(errs))
	}
	return p
}

// Unprocessable answers a 422: the request is well formed but asks for
// something the resource does not allow.
func Unprocessable(detail string, errs ...FieldError) *Problem {
	p := NewProblem(http.StatusUnprocessableEntity, "unprocessable", "Request cannot be applied", detail)
	p.Errors = errs
	return p
}

// NotFound answers a 404 for a resource kind.
func NotFound(what string) *Problem {
	return NewProblem(http.StatusNotFound, "not-found", "", what+" not found")
}

// Conflict answers a 409.
func Conflict(detail string) *Problem {
	return NewProblem(http.StatusConflict, "conflict", "", detail)
}

// Unauthenticated answers a 401 with the reason the token was refused.
func Unauthenticated(reason string) *Problem {
	p := NewProblem(http.StatusUnauthorized, "unauthenticated", "", reason)
	return p.WithHeader("WWW-Authenticate", fmt.Sprintf(`Bearer error="invalid_token", error_description=%q`, reason))
}

// Forbidden answers a 403 naming the role the caller lacks.
func Forbidden(role string) *Problem {
	p := NewProblem(http.StatusForbidden, "forbidden", "", "this operation needs the role "+role)
	return p.WithHeader("WWW-Authenticate", fmt.Sprintf(`Bearer error="insufficient_scope", scope=%q`, role))
}

// ErrorMapping translates errors from the domain and application layers
// (which know nothing of HTTP) into problems.
type ErrorMapping struct {
	Target error
	Status int
	Kind   string
}

// WriteProblem writes p as application/problem+json.
func WriteProblem(w http.ResponseWriter, r *http.Request, p *Problem) {
	if p.RequestID == "" {
		p.RequestID = RequestID(r.Context())
	}
	if p.Instance == "" && r != nil {
		p.Instance = r.URL.Path
	}
	for k, vs := range p.headers {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// WriteJSON writes v as JSON with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// asProblem answers the problem err stands for, mapping known errors and
// hiding everything else behind a 500 whose detail leaks nothing.
func asProblem(err error, mappings []ErrorMapping) (p *Problem, internal bool) {
	if errors.As(err, &p) {
		return p, false
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return tooLarge(mbe.Limit), false
	}
	for _, m := range mappings {
		if errors.Is(err, m.Target) {
			return NewProblem(m.Status, m.Kind, "", err.Error()), false
		}
	}
	return NewProblem(http.StatusInternalServerError, "", "", "the server failed to answer; quote the request id when reporting it"), true
}

func tooLarge(limit int64) *Problem {
	return NewProblem(http.StatusRequestEntityTooLarge, "too-large", "", fmt.Sprintf("request body exceeds %d bytes", limit))
}
