// Package customers is the customer profile read model: the customers and
// duplicate_candidates tables, the projector that keeps them from the
// customer-* streams, and the queries the HTTP API serves from them.
//
// Every query runs through postgres.ReadInTenant, so row-level security
// confines it to the caller's tenant even where a statement forgets to
// filter.
package customers

import (
	"time"

	"github.com/google/uuid"

	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/domain/identity"
)

// ExternalIDs are the profile's identifiers in systems the club is
// migrating from.
type ExternalIDs struct {
	McaV1ZaID *string `json:"mcaV1ZaId" doc:"MCA v1 South Africa id"`
	McaV1UkID *string `json:"mcaV1UkId" doc:"MCA v1 United Kingdom id"`
	GolfRsaID *string `json:"golfRsaId" doc:"GolfRSA id"`
}

// Alias is a secondary email address or phone number of the profile.
type Alias struct {
	Kind  string `json:"kind" enum:"email,phoneNumber"`
	Value string `json:"value" doc:"normalised: a lower-case address or an E.164 number"`
}

// Customer is the API's representation of a CustomerProfile (specification
// section 4). Absent optional values are null rather than missing, so every
// response has the same shape.
type Customer struct {
	ID       uuid.UUID `json:"id" doc:"the CRM's own id of the profile"`
	TenantID string    `json:"tenantId"`

	AuthUserID  *string `json:"authUserId" doc:"identity provider user id, the strongest link"`
	Email       *string `json:"email" doc:"primary email, normalised"`
	PhoneNumber *string `json:"phoneNumber" doc:"primary phone, E.164 when it could be read as a number"`

	SCLMemberID        *int64  `json:"sclMemberId" doc:"SCL Member.id"`
	TeeTimePlayerID    *string `json:"teetimePlayerId" doc:"TeeTime Player.id"`
	MessagingContactID *string `json:"messagingContactId" doc:"Messaging Contact.id"`

	ExternalIDs ExternalIDs `json:"externalIds"`

	FirstName   *string `json:"firstName"`
	LastName    *string `json:"lastName"`
	DisplayName *string `json:"displayName"`

	Status         string   `json:"status" enum:"ACTIVE,ARCHIVED,MERGED"`
	LifecycleStage string   `json:"lifecycleStage" enum:"GUEST,PROSPECT,MEMBER,LAPSED,CHURNED"`
	Tags           []string `json:"tags"`

	// Computed by the scoring and activity read models; null and 0 until
	// they exist.
	EngagementScore *float64 `json:"engagementScore" doc:"0-100"`
	ChurnRiskScore  *float64 `json:"churnRiskScore" doc:"0-100"`
	LifetimeValue   *int64   `json:"lifetimeValue" doc:"payments received, in minor units (cents) of lifetimeValueCurrency; 0 when none, null until computed"`
	// LifetimeValueCurrency is the tenant's main currency, the one most
	// payments were made in (see readmodels/metrics).
	LifetimeValueCurrency *string    `json:"lifetimeValueCurrency" doc:"ISO 4217 code of lifetimeValue: the tenant's main currency"`
	LastActivityAt        *time.Time `json:"lastActivityAt"`
	ActivityCount30d      int        `json:"activityCount30d"`
	BookingCount30d       int        `json:"bookingCount30d"`

	Handicap   *float64 `json:"handicap" doc:"from TeeTime"`
	HomeClubID *string  `json:"homeClubId"`

	MembershipTier   *string `json:"membershipTier" doc:"from SCL"`
	MembershipStatus *string `json:"membershipStatus" doc:"from SCL, upper-case"`

	EmailOptIn    bool `json:"emailOptIn" doc:"synced from Messaging, read only"`
	SMSOptIn      bool `json:"smsOptIn" doc:"synced from Messaging, read only"`
	PushOptIn     bool `json:"pushOptIn" doc:"synced from Messaging, read only"`
	WhatsAppOptIn bool `json:"whatsappOptIn" doc:"synced from Messaging, read only"`

	Aliases    []Alias    `json:"aliases" doc:"secondary emails and phone numbers"`
	Version    uint64     `json:"version" doc:"the number of events the profile's stream held when this was read"`
	CreatedAt  time.Time  `json:"createdAt"`
	UpdatedAt  time.Time  `json:"updatedAt"`
	MergedInto *uuid.UUID `json:"mergedInto" doc:"the surviving profile, when status is MERGED"`
}

// FromProfile answers the representation of a folded profile.
func FromProfile(p *customer.Profile) Customer {
	c := Customer{
		ID:                 p.ID,
		TenantID:           p.TenantID,
		AuthUserID:         optional(p.AuthUserID),
		Email:              optional(p.Email),
		PhoneNumber:        optional(p.PhoneNumber),
		TeeTimePlayerID:    optional(p.TeeTimePlayerID),
		MessagingContactID: optional(p.MessagingContactID),
		ExternalIDs:        externalIDs(p.ExternalIDs),
		FirstName:          optional(p.FirstName),
		LastName:           optional(p.LastName),
		DisplayName:        optional(p.DisplayName),
		Status:             string(p.Status),
		LifecycleStage:     string(p.LifecycleStage),
		Tags:               append([]string{}, p.Tags...),
		HomeClubID:         optional(p.HomeClubID),
		MembershipTier:     optional(p.MembershipTier),
		MembershipStatus:   optional(p.MembershipStatus),
		EmailOptIn:         p.EmailOptIn,
		SMSOptIn:           p.SMSOptIn,
		PushOptIn:          p.PushOptIn,
		WhatsAppOptIn:      p.WhatsAppOptIn,
		Aliases:            aliases(p.Aliases),
		Version:            p.Version,
		// UTC, so a profile folded from the store and one read from the
		// table compare equal whatever zone the drivers answered in.
		CreatedAt: p.CreatedAt.UTC(),
		UpdatedAt: p.UpdatedAt.UTC(),
	}
	if p.SCLMemberID != nil {
		n := *p.SCLMemberID
		c.SCLMemberID = &n
	}
	if p.Handicap != nil {
		h := *p.Handicap
		c.Handicap = &h
	}
	if p.MergedInto != nil {
		id := *p.MergedInto
		c.MergedInto = &id
	}
	return c
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func externalIDs(x customer.ExternalIDs) ExternalIDs {
	return ExternalIDs{McaV1ZaID: optional(x.McaV1ZaID), McaV1UkID: optional(x.McaV1UkID), GolfRsaID: optional(x.GolfRsaID)}
}

func aliases(keys []identity.Key) []Alias {
	out := make([]Alias, 0, len(keys))
	for _, k := range keys {
		out = append(out, Alias{Kind: string(k.Kind), Value: k.Value})
	}
	return out
}
