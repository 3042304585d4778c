package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/google/uuid"
	"github.com/segmentio/encoding/json"

	"github.com/clubcrm/crm/adapters/auth"
	"github.com/clubcrm/crm/commands"
)

// Limits of POST /api/v1/events.
const (
	MaxEventsPerRequest = 1000
	// EventsBodyLimit leaves each of MaxEventsPerRequest envelopes about
	// 8 KiB, several times the largest the contract defines.
	EventsBodyLimit = 8 << 20
)

// Ingester processes upstream events; *commands.Ingest is one. It answers
// a result per envelope, in order; an error means nothing of the batch may
// be taken as done.
type Ingester interface {
	Handle(ctx context.Context, batch []commands.Envelope) ([]commands.Result, error)
}

// EventResult is what became of one posted event.
type EventResult struct {
	ID         string     `json:"id" doc:"The envelope's id (empty when the element was not an object with a string id)"`
	Status     string     `json:"status" enum:"recorded,duplicate,invalid" doc:"recorded: turned into domain events now; duplicate: processed before, nothing changed; invalid: refused, see error"`
	CustomerID *uuid.UUID `json:"customerId,omitempty" doc:"The profile the event was recorded on (events about a person)"`
	MatchedBy  string     `json:"matchedBy,omitempty" doc:"How the person was recognised: the identifier that matched, or new"`
	Confidence int        `json:"confidence,omitempty" doc:"Confidence of the match, 0 to 100"`
	Stream     string     `json:"stream,omitempty" doc:"The event stream the event was recorded on"`
	Error      string     `json:"error,omitempty" doc:"Why the event was refused"`
}

// EventsResponse answers POST /api/v1/events: one result per posted
// envelope, in the order posted.
type EventsResponse struct {
	Results []EventResult `json:"results"`
}

// errOtherTenant refuses an envelope of a tenant the token does not hold.
const errOtherTenant = "tenantId: does not match the token's tenant"

// RegisterEvents adds POST /api/v1/events, through which upstream services
// (role crm:ingest) post up to MaxEventsPerRequest envelopes at once, as an
// alternative to the Redis streams. Each envelope is judged on its own: one
// that is malformed, invalid or of another tenant is answered invalid and
// the rest are processed. A tenant's token may post only its own tenant's
// events; a platform token (tenant_id "*") may post any tenant's.
//
// If processing fails (the database is down), the answer is a 503 and
// nothing of the batch may be taken as done: posting it again is safe, as
// processing is idempotent by envelope id.
func (a *API) RegisterEvents(h Ingester) {
	a.Handle(Route{
		Method: http.MethodPost, Path: "/events",
		Summary: "Post upstream events (up to 1,000 envelopes); each is answered recorded, duplicate or invalid, in order",
		Tags:    []string{"ingest"}, Role: auth.RoleIngest,
		Request: []commands.Envelope{}, Response: EventsResponse{},
		BodyLimit: EventsBodyLimit,
		Errors:    []int{http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType, http.StatusServiceUnavailable},
	}, func(w http.ResponseWriter, r *http.Request) error {
		// Elements are decoded one by one below, so that a malformed
		// one spoils only itself.
		var raw []json.RawMessage
		if err := Decode(r, &raw); err != nil {
			return err
		}
		switch {
		case len(raw) == 0:
			return Invalid(FieldError{Field: "(body)", Reason: "must be an array of at least one event"})
		case len(raw) > MaxEventsPerRequest:
			return Invalid(FieldError{Field: "(body)", Reason: fmt.Sprintf("must hold at most %d events, not %d", MaxEventsPerRequest, len(raw))})
		}

		tenant := Tenant(r)
		results := make([]EventResult, len(raw))
		var batch []commands.Envelope
		var at []int // index in raw of each envelope of batch
		for i, b := range raw {
			env, reason := parseEvent(b, tenant)
			if reason != "" {
				results[i] = EventResult{ID: env.ID, Status: string(commands.Invalid), Error: reason}
				continue
			}
			batch = append(batch, env)
			at = append(at, i)
		}
		if len(batch) > 0 {
			res, err := h.Handle(r.Context(), batch)
			if err == nil && len(res) != len(batch) {
				err = fmt.Errorf("ingest answered %d results for %d events", len(res), len(batch))
			}
			if err != nil {
				a.log.ErrorContext(r.Context(), "ingest failed",
					slog.String("requestId", RequestID(r.Context())), slog.Int("events", len(batch)), slog.Any("error", err))
				return NewProblem(http.StatusServiceUnavailable, "unavailable", "",
					"the events could not be processed now; post the whole batch again (processing is idempotent by id)").
					WithHeader("Retry-After", "5")
			}
			for n, x := range res {
				results[at[n]] = EventResult{ID: x.ID, Status: string(x.Status), CustomerID: x.CustomerID,
					MatchedBy: x.MatchedBy, Confidence: x.Confidence, Stream: x.Stream, Error: x.Error}
			}
		}
		WriteJSON(w, http.StatusOK, EventsResponse{Results: results})
		return nil
	})
}

// parseEvent decodes and checks one posted element, answering why it is
// refused, if it is.
func parseEvent(b json.RawMessage, tenant string) (commands.Envelope, string) {
	if t := bytes.TrimSpace(b); len(t) == 0 || t[0] != '{' {
		return commands.Envelope{}, "envelope: must be a JSON object"
	}
	env, err := commands.ParseEnvelope(b)
	if err != nil {
		if env.ID == "" {
			env.ID = idOf(b)
		}
		return env, err.Error()
	}
	if tenant != auth.PlatformTenant && env.TenantID != tenant {
		return env, errOtherTenant
	}
	return env, ""
}

// idOf answers an element's id when the whole cannot be decoded, so the
// caller can tell which event a refusal is about.
func idOf(b json.RawMessage) string {
	var v struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(b, &v) != nil {
		return ""
	}
	var id string
	if json.Unmarshal(v.ID, &id) != nil {
		return ""
	}
	return id
}
