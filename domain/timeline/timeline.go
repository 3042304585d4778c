// Package timeline turns the events of a customer's stream into the
// activities of their timeline (specification sections 4, 6 and 13): what
// kind of thing happened, in which category and channel, a title and
// description a club's staff would write, the details, where it came from
// and when it happened. It is pure: no I/O, no clock; the projector in
// readmodels/activities stores what it answers.
package timeline

import (
	"time"

	"github.com/google/uuid"
)

// Category groups activities for filtering (specification section 6).
type Category string

// Categories.
const (
	Membership    Category = "MEMBERSHIP"    // tier changes, signup, cancellation
	Booking       Category = "BOOKING"       // tee times, facility bookings
	Communication Category = "COMMUNICATION" // messages sent and received
	Engagement    Category = "ENGAGEMENT"    // opens, clicks, visits
	Financial     Category = "FINANCIAL"     // payments
	Golf          Category = "GOLF"          // handicap, competitions
	Marketing     Category = "MARKETING"     // campaign interactions
	Support       Category = "SUPPORT"       // notes
	Social        Category = "SOCIAL"        // social media interactions
	System        Category = "SYSTEM"        // merges, tags, profiles entered by staff
)

// Categories lists every category.
var Categories = []Category{Membership, Booking, Communication, Engagement, Financial, Golf, Marketing, Support, Social, System}

// Type is what kind of activity happened.
type Type string

// Activity types. Upstream events map one to one onto the first fifteen;
// the CRM's own decisions onto the next; staff record the manual kinds.
const (
	MemberCreated            Type = "MEMBER_CREATED"
	MemberUpdated            Type = "MEMBER_UPDATED"
	TierChanged              Type = "TIER_CHANGED"
	PaymentReceived          Type = "PAYMENT_RECEIVED"
	PaymentFailed            Type = "PAYMENT_FAILED"
	PlayerCreated            Type = "PLAYER_CREATED"
	TeeTimeBooked            Type = "TEETIME_BOOKED"
	TeeTimeCompleted         Type = "TEETIME_COMPLETED"
	HandicapUpdated          Type = "HANDICAP_UPDATED"
	CompetitionEntered       Type = "COMPETITION_ENTERED"
	MessageSent              Type = "MESSAGE_SENT"
	MessageDelivered         Type = "MESSAGE_DELIVERED"
	EmailOpened              Type = "EMAIL_OPENED"
	EmailClicked             Type = "EMAIL_CLICKED"
	ContactPreferenceUpdated Type = "CONTACT_PREFERENCE_UPDATED"

	NoteAdded      Type = "NOTE_ADDED"
	TagChanged     Type = "TAG_CHANGED"
	ProfileMerged  Type = "PROFILE_MERGED"
	ProfileCreated Type = "PROFILE_CREATED" // a profile staff entered by hand
	CampaignSent   Type = "CAMPAIGN_SENT"   // reserved for the campaigns release

	// Scoring alerts (docs/scoring.md).
	ChurnRiskHigh     Type = "CHURN_RISK_HIGH"
	ChurnRiskCleared  Type = "CHURN_RISK_CLEARED"
	EngagementDropped Type = "ENGAGEMENT_DROPPED"

	Visit   Type = "VISIT"
	Call    Type = "CALL"
	Meeting Type = "MEETING"
	Other   Type = "OTHER"
)

// Types lists every activity type.
var Types = []Type{
	MemberCreated, MemberUpdated, TierChanged, PaymentReceived, PaymentFailed,
	PlayerCreated, TeeTimeBooked, TeeTimeCompleted, HandicapUpdated, CompetitionEntered,
	MessageSent, MessageDelivered, EmailOpened, EmailClicked, ContactPreferenceUpdated,
	NoteAdded, TagChanged, ProfileMerged, ProfileCreated, CampaignSent,
	ChurnRiskHigh, ChurnRiskCleared, EngagementDropped,
	Visit, Call, Meeting, Other,
}

// Activity is one entry of a customer's timeline.
type Activity struct {
	// ID is the stored event's id; for a note the note's id and for a
	// manual activity the activity's id, which commands answer at once.
	ID            uuid.UUID
	Type          Type
	Category      Category
	Channel       string // EMAIL, SMS, PUSH, WHATSAPP, IN_PERSON, PHONE...; "" where none applies
	Title         string
	Description   string
	Metadata      map[string]any
	SourceService string // scl, teetime, messaging or crm
	SourceID      string // the record in the source service: booking, payment, message...
	OccurredAt    time.Time
}

// Event is a stored event of a customer stream, decoded.
type Event struct {
	ID         uuid.UUID
	Type       string
	Data       any    // as customer.Decode answers it
	Actor      string // the event's metadata actor
	OccurredAt time.Time
}

// Options shape the text of activities.
type Options struct {
	// Location is the zone dates in titles are written in; UTC when nil.
	// Titles are written once, when an event is projected: a change of
	// zone shows in a rebuild of the timeline.
	Location *time.Location
}

func (o Options) loc() *time.Location {
	if o.Location == nil {
		return time.UTC
	}
	return o.Location
}

// Counts reports whether an activity is something the person did or took
// part in, and so counts towards lastActivityAt and activityCount30d. What
// the club or the CRM did on its own does not: messages sent to the person
// and their delivery, staff notes, tag changes, merges, profiles entered by
// staff, campaign sends.
func Counts(a Activity) bool {
	switch a.Type {
	case MessageSent, MessageDelivered, NoteAdded, TagChanged, ProfileMerged, ProfileCreated, CampaignSent,
		ChurnRiskHigh, ChurnRiskCleared, EngagementDropped:
		return false
	}
	return true
}

// IsBooking reports whether an activity counts towards bookingCount30d: a
// tee time booked (counted on the day it was booked, not the day played).
func IsBooking(a Activity) bool { return a.Type == TeeTimeBooked }
