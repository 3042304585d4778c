// Package customer holds the CustomerProfile aggregate: one person across
// SCL, TeeTime and Messaging, event-sourced in the stream customer-<uuid>.
// Its methods decide which events a command yields; Apply folds events into
// state. It knows nothing of storage, transport or HTTP.
package customer

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/clubcrm/crm/domain/identity"
)

// Category is the stream category of profiles.
const Category = "customer"

// StreamID answers the profile id a stream of the category names
// (customer-<uuid>), and false for any other stream.
func StreamID(stream string) (uuid.UUID, bool) {
	rest, ok := strings.CutPrefix(stream, Category+"-")
	if !ok {
		return uuid.Nil, false
	}
	id, err := uuid.Parse(rest)
	return id, err == nil
}

// Stream answers the stream of a profile.
func Stream(id uuid.UUID) string { return Category + "-" + id.String() }

// Status is the state of the profile record itself.
type Status string

// Statuses.
const (
	// StatusActive: the profile is in use.
	StatusActive Status = "ACTIVE"
	// StatusArchived: staff set the profile aside (it stays searchable and
	// keeps receiving upstream events).
	StatusArchived Status = "ARCHIVED"
	// StatusMerged: closed by a merge; MergedInto names the survivor.
	StatusMerged Status = "MERGED"
)

// Lifecycle is where a person stands in their relationship with the club.
type Lifecycle string

// Lifecycle stages, in the order a person usually moves through them.
const (
	// GUEST: known from golf only (a TeeTime player, a visitor's booking).
	LifecycleGuest Lifecycle = "GUEST"
	// PROSPECT: known as a contact or entered by staff, not a member.
	LifecycleProspect Lifecycle = "PROSPECT"
	// MEMBER: holds a membership SCL reports as active.
	LifecycleMember Lifecycle = "MEMBER"
	// LAPSED: membership suspended, lapsed or in arrears.
	LifecycleLapsed Lifecycle = "LAPSED"
	// CHURNED: membership cancelled, resigned or terminated.
	LifecycleChurned Lifecycle = "CHURNED"
)

// Lifecycles lists every stage.
var Lifecycles = []Lifecycle{LifecycleGuest, LifecycleProspect, LifecycleMember, LifecycleLapsed, LifecycleChurned}

// Statuses lists every status.
var Statuses = []Status{StatusActive, StatusArchived, StatusMerged}

// ExternalIDs are identifiers in systems the club is migrating from.
type ExternalIDs struct {
	McaV1ZaID string `json:"mcaV1ZaId,omitempty"`
	McaV1UkID string `json:"mcaV1UkId,omitempty"`
	GolfRsaID string `json:"golfRsaId,omitempty"`
}

// Link records how a key came to belong to the profile.
type Link struct {
	Key        identity.Key `json:"key"`
	Indexed    bool         `json:"indexed"`          // used for matching
	Reason     string       `json:"reason,omitempty"` // why not, when not
	MatchedBy  string       `json:"matchedBy"`
	Confidence int          `json:"confidence"`
	CausedBy   string       `json:"causedBy"` // upstream event or command id
	LinkedAt   time.Time    `json:"linkedAt"`
}

// FoldVersion names how a stream folds into a Profile: Apply, and the
// Profile's JSON form. A fold kept outside the stream (the customers read
// model's state) records it, and the command side starts loading from one
// only when it was folded the way this build folds. Raise it with any
// change that makes a kept fold differ from a fresh fold of the same
// events; until the customers read model is rebuilt, profiles are then
// read from their whole streams, as if no fold were kept.
const FoldVersion = 1

// Profile is the CustomerProfile aggregate's state.
type Profile struct {
	ID       uuid.UUID
	TenantID string
	Version  uint64

	AuthUserID         string
	Email              string
	PhoneNumber        string
	SCLMemberID        *int64
	TeeTimePlayerID    string
	MessagingContactID string
	ExternalIDs        ExternalIDs
	Aliases            []identity.Key // secondary emails and phones
	Links              []Link

	FirstName   string
	LastName    string
	DisplayName string

	Status         Status
	LifecycleStage Lifecycle
	// LifecycleByStaff is set when staff chose the stage; the next
	// membership status change derives it again.
	LifecycleByStaff bool
	Tags             []string
	// Notes are the staff notes on the profile that are not deleted, in
	// the order they were added (a merge brings the absorbed profile's).
	Notes []Note

	Handicap         *float64
	HomeClubID       string
	MembershipTier   string
	MembershipStatus string

	EmailOptIn    bool
	SMSOptIn      bool
	PushOptIn     bool
	WhatsAppOptIn bool

	MergedInto *uuid.UUID
	MergedFrom []uuid.UUID

	CreatedAt time.Time
	UpdatedAt time.Time
}

// Errors the aggregate answers.
var (
	ErrMerged      = errors.New("profile is merged into another")
	ErrSelfMerge   = errors.New("a profile cannot be merged into itself")
	ErrNotFound    = errors.New("customer not found")
	ErrNotEditable = errors.New("field is not editable")
	ErrInvalid     = errors.New("invalid")
	// ErrNoteNotFound answers a note the profile does not hold (never
	// added, or deleted).
	ErrNoteNotFound = errors.New("note not found")
	// ErrForbidden answers a staff member changing a note that is not
	// theirs without being an administrator.
	ErrForbidden = errors.New("forbidden")
)

// Exists reports whether the profile has been created.
func (p *Profile) Exists() bool { return p.Version > 0 }

// Holds reports whether the profile holds key (primary, alias or link).
func (p *Profile) Holds(k identity.Key) bool {
	for _, l := range p.Links {
		if l.Key == k {
			return true
		}
	}
	return false
}

// IndexedKeys answers the keys the identity index links to the profile.
func (p *Profile) IndexedKeys() []identity.Key {
	var out []identity.Key
	for _, l := range p.Links {
		if l.Indexed {
			out = append(out, l.Key)
		}
	}
	return out
}

// Name answers the best name to show staff.
func (p *Profile) Name() string {
	switch {
	case p.DisplayName != "":
		return p.DisplayName
	case p.FirstName != "" || p.LastName != "":
		return joinName(p.FirstName, p.LastName)
	case p.Email != "":
		return p.Email
	}
	return p.PhoneNumber
}

func joinName(first, last string) string {
	switch {
	case first == "":
		return last
	case last == "":
		return first
	}
	return first + " " + last
}

func (p *Profile) checkOpen() error {
	if !p.Exists() {
		return fmt.Errorf("%w: %s", ErrNotFound, p.ID)
	}
	if p.Status == StatusMerged {
		return fmt.Errorf("%w: %s is merged into %s", ErrMerged, p.ID, p.MergedInto)
	}
	return nil
}
