package customer

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// ActivityKind is the kind of a manual activity staff record.
type ActivityKind string

// Manual activity kinds.
const (
	KindVisit   ActivityKind = "VISIT"   // the person came in: the clubhouse, the pro shop
	KindCall    ActivityKind = "CALL"    // a phone call either way
	KindMeeting ActivityKind = "MEETING" // a planned meeting
	KindOther   ActivityKind = "OTHER"
)

// ActivityKinds lists every manual activity kind.
var ActivityKinds = []ActivityKind{KindVisit, KindCall, KindMeeting, KindOther}

// Channels a manual activity may name.
var ActivityChannels = []string{"IN_PERSON", "PHONE", "VIDEO", "EMAIL", "SMS", "WHATSAPP", "PUSH", "SOCIAL", "OTHER"}

// Limits on a manual activity's text.
const (
	MaxActivityTitle       = 200
	MaxActivityDescription = 4_000
	// MaxActivityLead is how far in the future a manual activity may be
	// dated (clock skew between staff devices and the server).
	MaxActivityLead = 5 * time.Minute
)

// ActivityRecorded records an interaction staff entered by hand: an
// in-person visit, a phone call. OccurredAt is when it happened, which may
// be well before it was recorded. Complaint marks it as a complaint
// (absent in events written before complaints: false).
type ActivityRecorded struct {
	ActivityID  uuid.UUID    `json:"activityId"`
	Kind        ActivityKind `json:"kind"`
	Title       string       `json:"title"`
	Description string       `json:"description,omitempty"`
	Channel     string       `json:"channel,omitempty"`
	OccurredAt  time.Time    `json:"occurredAt"`
	Actor       string       `json:"actor"`
	Complaint   bool         `json:"complaint,omitempty"`
}

// RecordActivity validates a manual activity (now bounds how far ahead it
// may be dated) and answers its event. The channel defaults by kind.
func (p *Profile) RecordActivity(a ActivityRecorded, now time.Time) ([]Event, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	a.Kind = ActivityKind(strings.ToUpper(strings.TrimSpace(string(a.Kind))))
	a.Title = strings.TrimSpace(a.Title)
	a.Description = strings.TrimSpace(a.Description)
	a.Channel = strings.ToUpper(strings.TrimSpace(a.Channel))
	switch {
	case !slices.Contains(ActivityKinds, a.Kind):
		return nil, fmt.Errorf("%w: kind: must be one of %v", ErrInvalid, ActivityKinds)
	case a.Title == "":
		return nil, fmt.Errorf("%w: title: must not be empty", ErrInvalid)
	case utf8.RuneCountInString(a.Title) > MaxActivityTitle:
		return nil, fmt.Errorf("%w: title: must be at most %d characters", ErrInvalid, MaxActivityTitle)
	case utf8.RuneCountInString(a.Description) > MaxActivityDescription:
		return nil, fmt.Errorf("%w: description: must be at most %d characters", ErrInvalid, MaxActivityDescription)
	case a.Channel != "" && !slices.Contains(ActivityChannels, a.Channel):
		return nil, fmt.Errorf("%w: channel: must be one of %v", ErrInvalid, ActivityChannels)
	case a.OccurredAt.IsZero():
		return nil, fmt.Errorf("%w: occurredAt: missing", ErrInvalid)
	case a.OccurredAt.After(now.Add(MaxActivityLead)):
		return nil, fmt.Errorf("%w: occurredAt: must not be in the future", ErrInvalid)
	case a.OccurredAt.Year() < 1900:
		return nil, fmt.Errorf("%w: occurredAt: must be after 1900", ErrInvalid)
	}
	if a.Channel == "" {
		a.Channel = DefaultChannel(a.Kind)
	}
	// Stored times keep microseconds, as PostgreSQL does.
	a.OccurredAt = a.OccurredAt.UTC().Truncate(time.Microsecond)
	return []Event{{TypeActivityRecorded, &a}}, nil
}

// DefaultChannel answers the channel of a manual activity of kind when
// staff name none.
func DefaultChannel(k ActivityKind) string {
	switch k {
	case KindVisit, KindMeeting:
		return "IN_PERSON"
	case KindCall:
		return "PHONE"
	}
	return ""
}
