package commands

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/clubcrm/crm/domain/customer"
)

// Envelope is an upstream event as SCL, TeeTime and Messaging publish it.
type Envelope struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	Source     string          `json:"source,omitempty"`
	TenantID   string          `json:"tenantId"`
	OccurredAt time.Time       `json:"occurredAt,omitzero"`
	Data       json.RawMessage `json:"data"`
}

// TypeCompetitionPublished concerns no person: it is kept in a stream of
// its own for the promotion work.
const TypeCompetitionPublished = "competition.published"

// CompetitionCategory is the stream category of published competitions.
const CompetitionCategory = "competition"

// Competition is the data of competition.published.
type Competition struct {
	CompetitionID string `json:"competitionId"`
	ClubID        string `json:"clubId"`
	Name          string `json:"name"`
	StartsAt      string `json:"startsAt"`
	Description   string `json:"description"`
}

// ErrInvalidEnvelope wraps every reason an envelope is refused.
var ErrInvalidEnvelope = errors.New("invalid upstream event")

// ParseEnvelope decodes and checks one envelope.
func ParseEnvelope(b []byte) (Envelope, error) {
	var e Envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return e, fmt.Errorf("%w: envelope is not JSON of the contract's shape: %v", ErrInvalidEnvelope, err)
	}
	return e, e.Validate()
}

// KnownType reports whether the contract defines typ.
func KnownType(typ string) bool {
	return customer.IsUpstreamType(typ) || typ == TypeCompetitionPublished
}

// SourceOf answers the service that publishes typ.
func SourceOf(typ string) string {
	if typ == TypeCompetitionPublished {
		return "teetime"
	}
	return customer.SourceOf(typ)
}

// Validate checks the envelope and its data against the contract.
func (e *Envelope) Validate() error {
	var problems []string
	if strings.TrimSpace(e.ID) == "" {
		problems = append(problems, "id: missing")
	} else if len(e.ID) > 200 {
		problems = append(problems, "id: longer than 200 characters")
	}
	if strings.TrimSpace(e.TenantID) == "" {
		problems = append(problems, "tenantId: missing")
	}
	switch {
	case e.Type == "":
		problems = append(problems, "type: missing")
	case !KnownType(e.Type):
		problems = append(problems, fmt.Sprintf("type: %q is not an event of the contract", e.Type))
	case e.Source != "" && e.Source != SourceOf(e.Type):
		problems = append(problems, fmt.Sprintf("source: %q does not publish %s (%s does)", e.Source, e.Type, SourceOf(e.Type)))
	default:
		if err := e.validateData(); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidEnvelope, strings.Join(problems, "; "))
	}
	if e.Source == "" {
		e.Source = SourceOf(e.Type)
	}
	return nil
}

func (e *Envelope) validateData() error {
	if e.Type == TypeCompetitionPublished {
		var c Competition
		if err := json.Unmarshal(e.Data, &c); err != nil || len(e.Data) == 0 {
			return fmt.Errorf("data: must be an object with competitionId, clubId, name, startsAt, description")
		}
		if strings.TrimSpace(c.CompetitionID) == "" {
			return errors.New("data.competitionId: missing")
		}
		return nil
	}
	v, err := customer.ParseUpstream(e.Type, e.Data)
	if err != nil {
		return err
	}
	p := customer.PersonOf(v)
	if p.AuthUserID == "" && p.SCLMemberID == "" && p.TeeTimePlayerID == "" && p.MessagingContactID == "" && p.Email == "" && p.Phone == "" {
		return fmt.Errorf("data: names nobody (no memberId, playerId, contactId, authUserId, email or phoneNumber)")
	}
	return nil
}
