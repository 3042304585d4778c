package customer

import (
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/encoding/json"

	"github.com/clubcrm/crm/domain/identity"
)

// Event types the CRM decides. Upstream events recorded on a profile keep
// their upstream type (member.created, teetime.booked, ...).
const (
	TypeCreated          = "customer.created"
	TypeIdentityLinked   = "customer.identity.linked"
	TypeDuplicateFlagged = "customer.duplicate.flagged"
	TypeDuplicateCleared = "customer.duplicate.cleared"
	TypeEdited           = "customer.edited"
	TypeMerged           = "customer.merged"
	TypeMergedInto       = "customer.merged.into"
	TypeNoteAdded        = "customer.note.added"
	TypeNoteEdited       = "customer.note.edited"
	TypeNoteDeleted      = "customer.note.deleted"
	TypeTagsChanged      = "customer.tags.changed"
	TypeActivityRecorded = "customer.activity.recorded"

	// Scoring alerts (domain/scoring.Decide): a churn-risk crossing and an
	// engagement drop, which journeys use as triggers.
	TypeChurnRiskRaised   = "customer.churn.risk.raised"
	TypeChurnRiskCleared  = "customer.churn.risk.cleared"
	TypeEngagementDropped = "customer.engagement.dropped"
)

// Event is a domain event: its type and its payload.
type Event struct {
	Type string
	Data any
}

// Created opens a profile.
type Created struct {
	CustomerID     uuid.UUID   `json:"customerId"`
	TenantID       string      `json:"tenantId"`
	Source         string      `json:"source"` // scl, teetime, messaging or crm
	CausedBy       string      `json:"causedBy"`
	FirstName      string      `json:"firstName,omitempty"`
	LastName       string      `json:"lastName,omitempty"`
	DisplayName    string      `json:"displayName,omitempty"`
	LifecycleStage Lifecycle   `json:"lifecycleStage"`
	ExternalIDs    ExternalIDs `json:"externalIds,omitzero"`
	Links          []Link      `json:"links"`
}

// IdentityLinked adds keys to a profile.
type IdentityLinked struct {
	Links []Link `json:"links"`
}

// DuplicateFlagged records profiles that may be the same person, for staff
// to merge or dismiss.
type DuplicateFlagged struct {
	Candidates []identity.Conflict `json:"candidates"`
	CausedBy   string              `json:"causedBy"`
}

// DuplicateCleared records staff deciding a flagged pair.
type DuplicateCleared struct {
	Other  uuid.UUID `json:"other"`
	Action string    `json:"action"` // merged or dismissed
	Actor  string    `json:"actor"`
}

// Edited records staff changing CRM-owned fields.
type Edited struct {
	DisplayName    *string      `json:"displayName,omitempty"`
	LifecycleStage *Lifecycle   `json:"lifecycleStage,omitempty"`
	Status         *Status      `json:"status,omitempty"`
	ExternalIDs    *ExternalIDs `json:"externalIds,omitempty"`
	Actor          string       `json:"actor"`
}

// Merged records a survivor absorbing another profile. Source is the
// absorbed profile's state at the merge, so the merge can be reversed
// without loss.
type Merged struct {
	SourceID uuid.UUID       `json:"sourceId"`
	Source   json.RawMessage `json:"source"`
	Links    []Link          `json:"links"` // the keys that moved
	Tags     []string        `json:"tags,omitempty"`
	Actor    string          `json:"actor"`
	CausedBy string          `json:"causedBy"`
}

// MergedInto closes a profile absorbed by another.
type MergedInto struct {
	SurvivorID uuid.UUID `json:"survivorId"`
	Actor      string    `json:"actor"`
	CausedBy   string    `json:"causedBy"`
}

// Upstream names the upstream event a recorded event came from.
type Upstream struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	Source     string    `json:"source"`
	OccurredAt time.Time `json:"occurredAt"`
}

// Recorded is an upstream event kept on the person's stream, whatever its
// type, so that every later read model can be projected from history.
type Recorded struct {
	Upstream Upstream        `json:"upstream"`
	Data     json.RawMessage `json:"data"`

	parsed *parsedData // set by Decode: Data parsed once for every reader
}

type parsedData struct {
	once sync.Once
	v    any
	err  error
}

// Parse answers ParseUpstream of the recorded data. A Recorded that Decode
// made parses it once for all its readers: the projectors of a process
// share decoded events (projections.Decode), and each read the data of
// every upstream event again, five parses an event. Data must not change
// once a Recorded has been decoded; the parsed value is shared and is
// read-only.
func (r *Recorded) Parse() (any, error) {
	if r.parsed == nil {
		return ParseUpstream(r.Upstream.Type, r.Data)
	}
	r.parsed.once.Do(func() { r.parsed.v, r.parsed.err = ParseUpstream(r.Upstream.Type, r.Data) })
	return r.parsed.v, r.parsed.err
}

// ChurnRisk records churn risk crossing a threshold: above ChurnHigh
// (raised) or back below ChurnClear (cleared).
type ChurnRisk struct {
	ChurnRiskScore  float64 `json:"churnRiskScore"`
	Threshold       float64 `json:"threshold"`
	EngagementScore float64 `json:"engagementScore"`
	ModelVersion    int     `json:"modelVersion"`
	ScoredOn        string  `json:"scoredOn"` // the day the scores were computed for
	Seq             int     `json:"seq"`      // the profile's crossings so far, this one included
}

// EngagementDropped records engagement falling at least Drop points below
// its highest since the last drop.
type EngagementDropped struct {
	From         float64 `json:"from"`
	To           float64 `json:"to"`
	Drop         float64 `json:"drop"` // the model's threshold
	ModelVersion int     `json:"modelVersion"`
	ScoredOn     string  `json:"scoredOn"`
	Seq          int     `json:"seq"`
}

// Decode reads a stored event's payload into its type.
func Decode(typ string, data []byte) (any, error) {
	var v any
	switch typ {
	case TypeCreated:
		v = &Created{}
	case TypeIdentityLinked:
		v = &IdentityLinked{}
	case TypeDuplicateFlagged:
		v = &DuplicateFlagged{}
	case TypeDuplicateCleared:
		v = &DuplicateCleared{}
	case TypeEdited:
		v = &Edited{}
	case TypeMerged:
		v = &Merged{}
	case TypeMergedInto:
		v = &MergedInto{}
	case TypeNoteAdded:
		v = &NoteAdded{}
	case TypeNoteEdited:
		v = &NoteEdited{}
	case TypeNoteDeleted:
		v = &NoteDeleted{}
	case TypeTagsChanged:
		v = &TagsChanged{}
	case TypeActivityRecorded:
		v = &ActivityRecorded{}
	case TypeChurnRiskRaised, TypeChurnRiskCleared:
		v = &ChurnRisk{}
	case TypeEngagementDropped:
		v = &EngagementDropped{}
	default:
		if !IsUpstreamType(typ) {
			return nil, fmt.Errorf("customer event %q: unknown type", typ)
		}
		v = &Recorded{parsed: &parsedData{}}
	}
	if err := json.Unmarshal(data, v); err != nil {
		return nil, fmt.Errorf("decode %s: %w", typ, err)
	}
	return v, nil
}
