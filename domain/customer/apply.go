package customer

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/clubcrm/crm/domain/identity"
)

// Apply folds one event into the profile. at is when it was recorded.
func (p *Profile) Apply(data any, at time.Time) {
	switch e := data.(type) {
	case *Created:
		p.ID, p.TenantID = e.CustomerID, e.TenantID
		p.FirstName, p.LastName, p.DisplayName = e.FirstName, e.LastName, e.DisplayName
		p.Status, p.LifecycleStage = StatusActive, e.LifecycleStage
		p.ExternalIDs = e.ExternalIDs
		p.CreatedAt = at
		p.link(e.Links)
	case *IdentityLinked:
		p.link(e.Links)
	case *DuplicateFlagged, *DuplicateCleared:
		// Review state lives in the duplicates read model.
	case *Edited:
		if e.DisplayName != nil {
			p.DisplayName = *e.DisplayName
		}
		if e.LifecycleStage != nil {
			p.LifecycleStage, p.LifecycleByStaff = *e.LifecycleStage, true
		}
		if e.Status != nil {
			p.Status = *e.Status
		}
		if e.ExternalIDs != nil {
			p.ExternalIDs = mergeExternal(p.ExternalIDs, *e.ExternalIDs)
		}
	case *Merged:
		p.link(e.Links)
		for _, t := range e.Tags {
			if !slices.Contains(p.Tags, t) {
				p.Tags = append(p.Tags, t)
			}
		}
		var src struct {
			FirstName, LastName string
			Notes               []Note
		}
		_ = json.Unmarshal(e.Source, &src)
		if p.FirstName == "" && p.LastName == "" {
			p.FirstName, p.LastName = src.FirstName, src.LastName
		}
		// The absorbed profile's notes are the survivor's now: their
		// authors (or an administrator) edit them through it.
		for _, n := range src.Notes {
			if _, ok := p.noteIndex(n.ID); !ok {
				p.Notes = append(p.Notes, n)
			}
		}
		p.MergedFrom = append(p.MergedFrom, e.SourceID)
	case *MergedInto:
		id := e.SurvivorID
		p.Status, p.MergedInto = StatusMerged, &id
	case *Recorded:
		if v, err := e.Parse(); err == nil {
			p.applyUpstream(v)
		}
	case *NoteAdded, *NoteEdited, *NoteDeleted:
		p.applyNote(e, at)
	case *TagsChanged:
		p.Tags = slices.DeleteFunc(p.Tags, func(t string) bool { return slices.Contains(e.Removed, t) })
		for _, t := range e.Added {
			if !slices.Contains(p.Tags, t) {
				p.Tags = append(p.Tags, t)
			}
		}
	case *ActivityRecorded:
		// Kept for the timeline; the profile's own fields do not change.
	}
	p.Version++
	p.UpdatedAt = at
}

// link adds keys to the profile: the first email and phone become the
// primary ones, later ones aliases; service ids fill their fields.
func (p *Profile) link(links []Link) {
	for _, l := range links {
		if p.Holds(l.Key) {
			continue
		}
		p.Links = append(p.Links, l)
		switch l.Key.Kind {
		case identity.AuthUser:
			if p.AuthUserID == "" {
				p.AuthUserID = l.Key.Value
			}
		case identity.SCLMember:
			if n, err := strconv.ParseInt(l.Key.Value, 10, 64); err == nil && p.SCLMemberID == nil {
				p.SCLMemberID = &n
			}
		case identity.TeeTimePlayer:
			if p.TeeTimePlayerID == "" {
				p.TeeTimePlayerID = l.Key.Value
			}
		case identity.MessagingContact:
			if p.MessagingContactID == "" {
				p.MessagingContactID = l.Key.Value
			}
		case identity.Email:
			if p.Email == "" {
				p.Email = l.Key.Value
			} else {
				p.Aliases = append(p.Aliases, l.Key)
			}
		case identity.Phone:
			if p.PhoneNumber == "" {
				p.PhoneNumber = l.Key.Value
			} else {
				p.Aliases = append(p.Aliases, l.Key)
			}
		}
	}
}

// applyUpstream copies the fields an upstream service owns. SCL owns names
// and membership; TeeTime owns golf data and fills names SCL has not given;
// Messaging owns consent. The rest (bookings, payments, messages,
// competition entries) is activity: it moves no field of the profile.
func (p *Profile) applyUpstream(v any) {
	if f, ok := v.(fieldSource); ok {
		f.fill(p)
	}
}

// fieldSource is upstream data that sets a profile's own fields.
type fieldSource interface{ fill(p *Profile) }

func (d *Member) fill(p *Profile) {
	setIf(&p.FirstName, d.FirstName)
	setIf(&p.LastName, d.LastName)
	setIf(&p.MembershipTier, d.MembershipTier)
	setIf(&p.HomeClubID, d.HomeClubID)
	if d.ExternalIDs != nil {
		p.ExternalIDs = mergeExternal(p.ExternalIDs, *d.ExternalIDs)
	}
	if d.MembershipStatus != "" {
		p.MembershipStatus = strings.ToUpper(d.MembershipStatus)
		p.LifecycleStage, p.LifecycleByStaff = StageForMembership(p.MembershipStatus, p.LifecycleStage), false
	} else if p.LifecycleStage == LifecycleGuest || p.LifecycleStage == LifecycleProspect {
		// A membership record with no status is taken as a current one.
		p.LifecycleStage = LifecycleMember
	}
}

func (d *TierChange) fill(p *Profile) { setIf(&p.MembershipTier, d.ToTier) }

func (d *Player) fill(p *Profile) {
	if p.FirstName == "" && p.LastName == "" {
		p.FirstName, p.LastName = d.FirstName, d.LastName
	}
	if d.Handicap != nil {
		h := *d.Handicap
		p.Handicap = &h
	}
	setIf(&p.HomeClubID, d.HomeClubID)
}

func (d *HandicapChange) fill(p *Profile) {
	if d.Handicap != nil {
		h := *d.Handicap
		p.Handicap = &h
	}
}

func (d *Preference) fill(p *Profile) {
	setBool(&p.EmailOptIn, d.EmailOptIn)
	setBool(&p.SMSOptIn, d.SMSOptIn)
	setBool(&p.PushOptIn, d.PushOptIn)
	setBool(&p.WhatsAppOptIn, d.WhatsAppOptIn)
}

// MovesFields reports whether an event of type typ can change a profile's
// own fields beyond the version and updatedAt every event moves. Activity
// (an upstream booking, payment, message or competition entry, or one staff
// logged), notes and scoring alerts do not: they move what is computed from
// the timeline (metrics, scores), not the profile. Readers that follow the
// profile's fields (segment membership) skip the rest.
func MovesFields(typ string) bool {
	switch typ {
	case TypeActivityRecorded, TypeNoteAdded, TypeNoteEdited, TypeNoteDeleted,
		TypeChurnRiskRaised, TypeChurnRiskCleared, TypeEngagementDropped:
		return false
	}
	if IsUpstreamType(typ) {
		_, ok := dataFor(typ).(fieldSource)
		return ok
	}
	return true
}

// StageForMembership derives the lifecycle stage from an SCL membership
// status; a status it does not know keeps the current stage.
func StageForMembership(status string, current Lifecycle) Lifecycle {
	switch strings.ToUpper(status) {
	case "ACTIVE", "CURRENT", "PENDING_RENEWAL", "HONORARY", "LIFE":
		return LifecycleMember
	case "SUSPENDED", "LAPSED", "ARREARS", "OVERDUE", "EXPIRED", "FROZEN":
		return LifecycleLapsed
	case "CANCELLED", "CANCELED", "RESIGNED", "TERMINATED", "DECEASED", "INACTIVE":
		return LifecycleChurned
	}
	return current
}

func setIf(dst *string, v string) {
	if v = strings.TrimSpace(v); v != "" {
		*dst = v
	}
}

func setBool(dst *bool, v *bool) {
	if v != nil {
		*dst = *v
	}
}

func mergeExternal(a, b ExternalIDs) ExternalIDs {
	setIf(&a.McaV1ZaID, b.McaV1ZaID)
	setIf(&a.McaV1UkID, b.McaV1UkID)
	setIf(&a.GolfRsaID, b.GolfRsaID)
	return a
}
