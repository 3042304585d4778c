// Package outbox forwards the CRM's own events to other services: a
// projector over the event log (where each event was recorded together with
// the domain change it describes) publishes them to the Redis stream
// crm.events. Delivery is at least once: a batch is published before its
// checkpoint commits, so a crash in between publishes it again, with the same
// message ids (the event ids) for consumers to deduplicate on.
package outbox

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/segmentio/encoding/json"

	"github.com/clubcrm/crm/commands"
	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/eventstore"
	"github.com/clubcrm/crm/projections"
)

// Topic is the stream produced events go to.
const Topic = "crm.events"

// Produced event types.
const (
	ProfileCreated = "crm.profile.created"
	ProfileMerged  = "crm.profile.merged"
	ChurnRiskHigh  = "crm.churn.risk.high"
)

// Envelope is the shape of every produced event: the upstream contract's
// envelope, with source "crm".
type Envelope = commands.Envelope

// ProfileCreatedData is the data of crm.profile.created.
type ProfileCreatedData struct {
	CustomerID         string `json:"customerId"`
	Source             string `json:"source"`
	LifecycleStage     string `json:"lifecycleStage"`
	AuthUserID         string `json:"authUserId,omitempty"`
	Email              string `json:"email,omitempty"`
	PhoneNumber        string `json:"phoneNumber,omitempty"`
	SCLMemberID        string `json:"sclMemberId,omitempty"`
	TeeTimePlayerID    string `json:"teetimePlayerId,omitempty"`
	MessagingContactID string `json:"messagingContactId,omitempty"`
}

// ProfileMergedData is the data of crm.profile.merged: Messaging updates
// its contacts from it.
type ProfileMergedData struct {
	SurvivorID string `json:"survivorId"`
	MergedID   string `json:"mergedId"`
	// The identifiers that moved to the survivor.
	MovedKeys []customer.Link `json:"movedKeys"`
	Actor     string          `json:"actor"`
}

// ChurnRiskHighData is the data of crm.churn.risk.high: a profile's churn
// risk crossed above the tenant's alert threshold (once per crossing).
type ChurnRiskHighData struct {
	CustomerID      string  `json:"customerId"`
	ChurnRiskScore  float64 `json:"churnRiskScore"`
	Threshold       float64 `json:"threshold"`
	EngagementScore float64 `json:"engagementScore"`
	ModelVersion    int     `json:"modelVersion"`
	ScoredOn        string  `json:"scoredOn"`
}

// Projector publishes produced events. It owns no tables: its checkpoint is
// how far it has published.
type Projector struct {
	Publisher message.Publisher
	// Topic overrides the stream published to (tests); Topic when empty.
	Topic string
}

var _ projections.Projector = (*Projector)(nil)

// Name implements projections.Projector.
func (p *Projector) Name() string { return "outbox" }

// Tables implements projections.Projector.
func (p *Projector) Tables() []string { return nil }

// Filter implements projections.Projector.
func (p *Projector) Filter() eventstore.Filter {
	return eventstore.Filter{Categories: []string{customer.Category}, Types: []string{customer.TypeCreated, customer.TypeMerged, customer.TypeChurnRiskRaised}}
}

// Apply implements projections.Projector: it publishes, and the runtime
// commits the checkpoint after.
func (p *Projector) Apply(ctx context.Context, _ pgx.Tx, _ projections.Tables, events []eventstore.Event) error {
	msgs := make([]*message.Message, 0, len(events))
	for _, e := range events {
		env, err := Translate(e)
		if err != nil {
			return err
		}
		b, err := json.Marshal(env)
		if err != nil {
			return err
		}
		m := message.NewMessage(env.ID, b)
		m.Metadata.Set("type", env.Type)
		m.Metadata.Set("tenantId", env.TenantID)
		m.SetContext(ctx)
		msgs = append(msgs, m)
	}
	if len(msgs) == 0 {
		return nil
	}
	topic := p.Topic
	if topic == "" {
		topic = Topic
	}
	if err := p.Publisher.Publish(topic, msgs...); err != nil {
		return fmt.Errorf("publish to %s: %w", topic, err)
	}
	return nil
}

// Translate answers the produced event for a domain event.
func Translate(e eventstore.Event) (Envelope, error) {
	v, err := projections.Decode(e, customer.Decode)
	if err != nil {
		return Envelope{}, err
	}
	env := Envelope{ID: e.ID.String(), Source: "crm", TenantID: e.Metadata.TenantID, OccurredAt: e.RecordedAt.UTC()}
	var data any
	switch d := v.(type) {
	case *customer.Created:
		env.Type = ProfileCreated
		var p customer.Profile
		p.Apply(d, e.RecordedAt)
		out := ProfileCreatedData{CustomerID: d.CustomerID.String(), Source: d.Source, LifecycleStage: string(d.LifecycleStage),
			AuthUserID: p.AuthUserID, Email: p.Email, PhoneNumber: p.PhoneNumber, TeeTimePlayerID: p.TeeTimePlayerID, MessagingContactID: p.MessagingContactID}
		if p.SCLMemberID != nil {
			out.SCLMemberID = fmt.Sprint(*p.SCLMemberID)
		}
		data = out
	case *customer.Merged:
		env.Type = ProfileMerged
		moved := d.Links
		if moved == nil {
			moved = []customer.Link{}
		}
		data = ProfileMergedData{SurvivorID: streamID(e.Stream), MergedID: d.SourceID.String(), MovedKeys: moved, Actor: d.Actor}
	case *customer.ChurnRisk:
		if e.Type != customer.TypeChurnRiskRaised {
			return Envelope{}, fmt.Errorf("outbox: %s is not a produced event", e.Type)
		}
		env.Type = ChurnRiskHigh
		data = ChurnRiskHighData{CustomerID: streamID(e.Stream), ChurnRiskScore: d.ChurnRiskScore, Threshold: d.Threshold,
			EngagementScore: d.EngagementScore, ModelVersion: d.ModelVersion, ScoredOn: d.ScoredOn}
	default:
		return Envelope{}, fmt.Errorf("outbox: %s is not a produced event", e.Type)
	}
	b, err := json.Marshal(data)
	if err != nil {
		return Envelope{}, err
	}
	env.Data = b
	return env, nil
}

func streamID(stream string) string {
	return stream[len(eventstore.Category(stream))+1:]
}
