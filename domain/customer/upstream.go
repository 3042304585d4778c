package customer

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/segmentio/encoding/json"
)

// Upstream event types of the contract (docs/events.md), by source.
var upstreamTypes = map[string]string{
	"member.created":            "scl",
	"member.updated":            "scl",
	"tier.changed":              "scl",
	"payment.received":          "scl",
	"payment.failed":            "scl",
	"player.created":            "teetime",
	"teetime.booked":            "teetime",
	"teetime.completed":         "teetime",
	"handicap.updated":          "teetime",
	"competition.entered":       "teetime",
	"message.sent":              "messaging",
	"message.delivered":         "messaging",
	"email.opened":              "messaging",
	"email.clicked":             "messaging",
	"contactPreference.updated": "messaging",
}

// IsUpstreamType reports whether typ is a person's upstream event type.
func IsUpstreamType(typ string) bool { _, ok := upstreamTypes[typ]; return ok }

// SourceOf answers the service that publishes an upstream type.
func SourceOf(typ string) string { return upstreamTypes[typ] }

// UpstreamTypes answers every person-related upstream type.
func UpstreamTypes() []string {
	out := make([]string, 0, len(upstreamTypes))
	for t := range upstreamTypes {
		out = append(out, t)
	}
	return out
}

// MemberID is SCL's integer member id; upstream services sometimes send it
// as a string of digits, which is accepted.
type MemberID int64

// UnmarshalJSON accepts 42 and "42".
func (m *MemberID) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return fmt.Errorf("memberId: must be a positive integer, got %s", b)
	}
	*m = MemberID(n)
	return nil
}

// Member is the data of member.created and member.updated.
type Member struct {
	MemberID         *MemberID    `json:"memberId"`
	AuthUserID       string       `json:"authUserId"`
	Email            string       `json:"email"`
	PhoneNumber      string       `json:"phoneNumber"`
	Country          string       `json:"country"`
	FirstName        string       `json:"firstName"`
	LastName         string       `json:"lastName"`
	MembershipTier   string       `json:"membershipTier"`
	MembershipStatus string       `json:"membershipStatus"`
	HomeClubID       string       `json:"homeClubId"`
	ExternalIDs      *ExternalIDs `json:"externalIds"`
}

// TierChange is the data of tier.changed.
type TierChange struct {
	MemberID *MemberID `json:"memberId"`
	FromTier string    `json:"fromTier"`
	ToTier   string    `json:"toTier"`
}

// Payment is the data of payment.received and payment.failed.
type Payment struct {
	MemberID    *MemberID `json:"memberId"`
	PaymentID   string    `json:"paymentId"`
	AmountCents *int64    `json:"amountCents"`
	Currency    string    `json:"currency"`
	Reason      string    `json:"reason"`
}

// Player is the data of player.created.
type Player struct {
	PlayerID    string   `json:"playerId"`
	AuthUserID  string   `json:"authUserId"`
	Email       string   `json:"email"`
	PhoneNumber string   `json:"phoneNumber"`
	Country     string   `json:"country"`
	FirstName   string   `json:"firstName"`
	LastName    string   `json:"lastName"`
	Handicap    *float64 `json:"handicap"`
	HomeClubID  string   `json:"homeClubId"`
}

// Booking is the data of teetime.booked and teetime.completed.
type Booking struct {
	PlayerID  string `json:"playerId"`
	BookingID string `json:"bookingId"`
	ClubID    string `json:"clubId"`
	TeeTimeAt string `json:"teeTimeAt"`
}

// HandicapChange is the data of handicap.updated.
type HandicapChange struct {
	PlayerID string   `json:"playerId"`
	Handicap *float64 `json:"handicap"`
}

// CompetitionEntry is the data of competition.entered.
type CompetitionEntry struct {
	PlayerID        string `json:"playerId"`
	CompetitionID   string `json:"competitionId"`
	CompetitionName string `json:"competitionName"`
}

// Message is the data of message.sent, message.delivered, email.opened
// and email.clicked.
type Message struct {
	ContactID   string `json:"contactId"`
	MessageID   string `json:"messageId"`
	Channel     string `json:"channel"`
	CampaignID  string `json:"campaignId"`
	Email       string `json:"email"`
	PhoneNumber string `json:"phoneNumber"`
	URL         string `json:"url"`
}

// Preference is the data of contactPreference.updated.
type Preference struct {
	ContactID     string `json:"contactId"`
	Email         string `json:"email"`
	PhoneNumber   string `json:"phoneNumber"`
	EmailOptIn    *bool  `json:"emailOptIn"`
	SMSOptIn      *bool  `json:"smsOptIn"`
	PushOptIn     *bool  `json:"pushOptIn"`
	WhatsAppOptIn *bool  `json:"whatsappOptIn"`
}

// dataFor answers an empty value of the data type of an upstream type.
func dataFor(typ string) any {
	switch typ {
	case "member.created", "member.updated":
		return &Member{}
	case "tier.changed":
		return &TierChange{}
	case "payment.received", "payment.failed":
		return &Payment{}
	case "player.created":
		return &Player{}
	case "teetime.booked", "teetime.completed":
		return &Booking{}
	case "handicap.updated":
		return &HandicapChange{}
	case "competition.entered":
		return &CompetitionEntry{}
	case "message.sent", "message.delivered", "email.opened", "email.clicked":
		return &Message{}
	case "contactPreference.updated":
		return &Preference{}
	}
	return nil
}

// ParseUpstream decodes an upstream event's data into its type, rejecting
// fields of the wrong JSON type. Unknown fields are tolerated: upstream
// services add fields before the CRM learns of them.
func ParseUpstream(typ string, data json.RawMessage) (any, error) {
	v := dataFor(typ)
	if v == nil {
		return nil, fmt.Errorf("unknown upstream type %q", typ)
	}
	if len(data) == 0 || string(data) == "null" {
		return nil, fmt.Errorf("data: missing")
	}
	if err := json.Unmarshal(data, v); err != nil {
		var te *json.UnmarshalTypeError
		if ok := asTypeError(err, &te); ok {
			return nil, fmt.Errorf("data.%s: must be %s", te.Field, te.Type.String())
		}
		return nil, fmt.Errorf("data: %v", err)
	}
	return v, nil
}

func asTypeError(err error, te **json.UnmarshalTypeError) bool {
	t, ok := err.(*json.UnmarshalTypeError)
	if ok {
		*te = t
	}
	return ok
}

// Person is the identity and name an upstream event carries, if any.
type Person struct {
	AuthUserID, SCLMemberID, TeeTimePlayerID, MessagingContactID string
	Email, Phone, Country                                        string
	FirstName, LastName                                          string
}

// PersonOf answers who an upstream event's data is about.
func PersonOf(data any) Person {
	switch d := data.(type) {
	case *Member:
		return Person{AuthUserID: d.AuthUserID, SCLMemberID: memberKey(d.MemberID), Email: d.Email, Phone: d.PhoneNumber, Country: d.Country, FirstName: d.FirstName, LastName: d.LastName}
	case *TierChange:
		return Person{SCLMemberID: memberKey(d.MemberID)}
	case *Payment:
		return Person{SCLMemberID: memberKey(d.MemberID)}
	case *Player:
		return Person{AuthUserID: d.AuthUserID, TeeTimePlayerID: d.PlayerID, Email: d.Email, Phone: d.PhoneNumber, Country: d.Country, FirstName: d.FirstName, LastName: d.LastName}
	case *Booking:
		return Person{TeeTimePlayerID: d.PlayerID}
	case *HandicapChange:
		return Person{TeeTimePlayerID: d.PlayerID}
	case *CompetitionEntry:
		return Person{TeeTimePlayerID: d.PlayerID}
	case *Message:
		return Person{MessagingContactID: d.ContactID, Email: d.Email, Phone: d.PhoneNumber}
	case *Preference:
		return Person{MessagingContactID: d.ContactID, Email: d.Email, Phone: d.PhoneNumber}
	}
	return Person{}
}

func memberKey(m *MemberID) string {
	if m == nil {
		return ""
	}
	return strconv.FormatInt(int64(*m), 10)
}
