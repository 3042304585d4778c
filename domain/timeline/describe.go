package timeline

import (
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/encoding/json"

	"github.com/clubcrm/crm/domain/customer"
)

// State is what the timeline remembers of a customer between events, to
// describe a change against what was known before it ("Handicap 12.4 →
// 11.8"). A change is described against what the CRM had recorded when the
// event arrived, so an event that arrives late is described against the
// state of its arrival.
type State struct {
	Handicap         *float64 `json:"handicap,omitempty"`
	HomeClubID       string   `json:"homeClubId,omitempty"`
	MembershipTier   string   `json:"membershipTier,omitempty"`
	MembershipStatus string   `json:"membershipStatus,omitempty"`
	EmailOptIn       *bool    `json:"emailOptIn,omitempty"`
	SMSOptIn         *bool    `json:"smsOptIn,omitempty"`
	PushOptIn        *bool    `json:"pushOptIn,omitempty"`
	WhatsAppOptIn    *bool    `json:"whatsappOptIn,omitempty"`
	// MergedInto names the survivor once the profile was merged away.
	MergedInto *uuid.UUID `json:"mergedInto,omitempty"`
}

// Equal reports whether two states hold the same.
func (s State) Equal(o State) bool {
	return eqPtr(s.Handicap, o.Handicap) && s.HomeClubID == o.HomeClubID && s.MembershipTier == o.MembershipTier &&
		s.MembershipStatus == o.MembershipStatus && eqPtr(s.EmailOptIn, o.EmailOptIn) && eqPtr(s.SMSOptIn, o.SMSOptIn) &&
		eqPtr(s.PushOptIn, o.PushOptIn) && eqPtr(s.WhatsAppOptIn, o.WhatsAppOptIn) && eqPtr(s.MergedInto, o.MergedInto)
}

func eqPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// Changes reports whether an event of type typ may change a State: only
// those need Apply.
func Changes(typ string) bool {
	switch typ {
	case "member.created", "member.updated", "tier.changed", "player.created", "handicap.updated", "contactPreference.updated", customer.TypeMergedInto:
		return true
	}
	return false
}

// Apply folds e into the state. Call it after Describe.
func (s *State) Apply(e Event) {
	switch d := e.Data.(type) {
	case *customer.Recorded:
		v, err := d.Parse()
		if err != nil {
			return
		}
		switch u := v.(type) {
		case *customer.Member:
			setIf(&s.MembershipTier, u.MembershipTier)
			setIf(&s.HomeClubID, u.HomeClubID)
			setIf(&s.MembershipStatus, strings.ToUpper(u.MembershipStatus))
		case *customer.TierChange:
			setIf(&s.MembershipTier, u.ToTier)
		case *customer.Player:
			if u.Handicap != nil {
				h := *u.Handicap
				s.Handicap = &h
			}
			setIf(&s.HomeClubID, u.HomeClubID)
		case *customer.HandicapChange:
			if u.Handicap != nil {
				h := *u.Handicap
				s.Handicap = &h
			}
		case *customer.Preference:
			setBool(&s.EmailOptIn, u.EmailOptIn)
			setBool(&s.SMSOptIn, u.SMSOptIn)
			setBool(&s.PushOptIn, u.PushOptIn)
			setBool(&s.WhatsAppOptIn, u.WhatsAppOptIn)
		}
	case *customer.MergedInto:
		id := d.SurvivorID
		s.MergedInto = &id
	}
}

func setIf(dst *string, v string) {
	if v = strings.TrimSpace(v); v != "" {
		*dst = v
	}
}

func setBool(dst **bool, v *bool) {
	if v != nil {
		b := *v
		*dst = &b
	}
}

// Describe answers the activity an event stands for, and false for events
// that are no activity (identity links, duplicate review, edits, the
// closing half of a merge, note edits and deletions, which change the
// note's activity rather than add one). prior is the state before e.
func Describe(e Event, prior State, opt Options) (Activity, bool) {
	a := Activity{ID: e.ID, OccurredAt: e.OccurredAt.UTC(), SourceService: "crm"}
	switch d := e.Data.(type) {
	case *customer.Recorded:
		return describeUpstream(e, d, prior, opt)
	case *customer.NoteAdded:
		a.ID, a.Type, a.Category = d.NoteID, NoteAdded, Support
		a.Title = "Note by " + orSomeone(d.Author)
		a.Description = d.Body
		a.SourceID = d.NoteID.String()
		a.Metadata = map[string]any{"noteId": d.NoteID.String(), "author": d.Author, "pinned": d.Pinned}
		if d.Complaint {
			markComplaint(&a)
		}
	case *customer.TagsChanged:
		a.Type, a.Category = TagChanged, System
		a.Title = tagsTitle(d.Added, d.Removed)
		if d.Actor != "" {
			a.Description = "By " + d.Actor + "."
		}
		a.Metadata = map[string]any{"added": orEmpty(d.Added), "removed": orEmpty(d.Removed), "actor": d.Actor}
	case *customer.Merged:
		a.Type, a.Category = ProfileMerged, System
		name := profileName(d.Source)
		if name != "" {
			a.Title = "Merged with duplicate profile " + name
		} else {
			a.Title = "Merged with a duplicate profile"
		}
		a.Description = fmt.Sprintf("Profile %s was merged into this one", d.SourceID)
		if d.Actor != "" {
			a.Description += " by " + d.Actor
		}
		a.Description += "; its history shows here."
		a.SourceID = d.SourceID.String()
		a.Metadata = map[string]any{"sourceId": d.SourceID.String(), "actor": d.Actor, "movedKeys": len(d.Links)}
	case *customer.Created:
		if d.Source != "crm" {
			return Activity{}, false // the upstream event that opened it is the activity
		}
		a.Type, a.Category = ProfileCreated, System
		a.Title = "Profile entered by " + orSomeone(e.Actor)
		a.SourceID = d.CustomerID.String()
		a.Metadata = map[string]any{"lifecycleStage": string(d.LifecycleStage)}
	case *customer.ChurnRisk:
		a.Category, a.SourceService = System, "crm"
		if e.Type == customer.TypeChurnRiskCleared {
			a.Type = ChurnRiskCleared
			a.Title = fmt.Sprintf("Churn risk back down to %s", FormatScore(d.ChurnRiskScore))
			a.Description = fmt.Sprintf("Below the alert's clear threshold of %s; engagement %s.", FormatScore(d.Threshold), FormatScore(d.EngagementScore))
		} else {
			a.Type = ChurnRiskHigh
			a.Title = fmt.Sprintf("Churn risk high: %s", FormatScore(d.ChurnRiskScore))
			a.Description = fmt.Sprintf("Above the alert threshold of %s; engagement %s. See the score's explanation for why.", FormatScore(d.Threshold), FormatScore(d.EngagementScore))
		}
		a.Metadata = map[string]any{"churnRiskScore": d.ChurnRiskScore, "threshold": d.Threshold, "engagementScore": d.EngagementScore,
			"modelVersion": d.ModelVersion, "scoredOn": d.ScoredOn}
	case *customer.EngagementDropped:
		a.Type, a.Category = EngagementDropped, System
		a.Title = fmt.Sprintf("Engagement dropped from %s to %s", FormatScore(d.From), FormatScore(d.To))
		a.Description = fmt.Sprintf("A fall of %s points or more since its last high.", FormatScore(d.Drop))
		a.Metadata = map[string]any{"from": d.From, "to": d.To, "drop": d.Drop, "modelVersion": d.ModelVersion, "scoredOn": d.ScoredOn}
	case *customer.ActivityRecorded:
		a.ID, a.Type, a.Category = d.ActivityID, Type(d.Kind), ManualCategory(d.Kind)
		a.Channel, a.Title, a.Description = d.Channel, d.Title, d.Description
		a.OccurredAt = d.OccurredAt.UTC()
		a.Metadata = map[string]any{"recordedBy": d.Actor}
		if d.Complaint {
			markComplaint(&a)
		}
	default:
		return Activity{}, false
	}
	return a, true
}

// ComplaintPrefix starts the title of a complaint's activity (a note or a
// manual activity marked as a complaint), so staff see it at a glance and
// q=complaint finds it; its metadata carries "complaint": true. When a
// note is marked or unmarked later, the timeline projector adds or takes
// off both.
const ComplaintPrefix = "Complaint: "

func markComplaint(a *Activity) {
	a.Title = ComplaintPrefix + a.Title
	a.Metadata["complaint"] = true
}

// Classify answers what Describe would of e's type, category and time,
// without writing its text: for read models that count activities.
func Classify(e Event) (Type, Category, time.Time, bool) {
	switch d := e.Data.(type) {
	case *customer.Recorded:
		m, ok := upstreamTypes[d.Upstream.Type]
		if !ok {
			return "", "", time.Time{}, false
		}
		at := d.Upstream.OccurredAt
		if at.IsZero() {
			at = e.OccurredAt
		}
		return m.typ, m.cat, at.UTC(), true
	case *customer.ActivityRecorded:
		return Type(d.Kind), ManualCategory(d.Kind), d.OccurredAt.UTC(), true
	case *customer.NoteAdded, *customer.TagsChanged, *customer.Merged, *customer.Created:
		a, ok := Describe(e, State{}, Options{})
		return a.Type, a.Category, a.OccurredAt, ok
	}
	return "", "", time.Time{}, false
}

// ManualCategory answers the category of a manual activity of kind.
func ManualCategory(k customer.ActivityKind) Category {
	switch k {
	case customer.KindVisit, customer.KindMeeting:
		return Engagement
	case customer.KindCall:
		return Communication
	}
	return Support
}

var upstreamTypes = map[string]struct {
	typ Type
	cat Category
}{
	"member.created":            {MemberCreated, Membership},
	"member.updated":            {MemberUpdated, Membership},
	"tier.changed":              {TierChanged, Membership},
	"payment.received":          {PaymentReceived, Financial},
	"payment.failed":            {PaymentFailed, Financial},
	"player.created":            {PlayerCreated, Golf},
	"teetime.booked":            {TeeTimeBooked, Booking},
	"teetime.completed":         {TeeTimeCompleted, Booking},
	"handicap.updated":          {HandicapUpdated, Golf},
	"competition.entered":       {CompetitionEntered, Golf},
	"message.sent":              {MessageSent, Communication},
	"message.delivered":         {MessageDelivered, Communication},
	"email.opened":              {EmailOpened, Engagement},
	"email.clicked":             {EmailClicked, Engagement},
	"contactPreference.updated": {ContactPreferenceUpdated, Communication},
}

// UpstreamType answers the activity type and category of an upstream
// event type.
func UpstreamType(upstream string) (Type, Category, bool) {
	m, ok := upstreamTypes[upstream]
	return m.typ, m.cat, ok
}

func describeUpstream(e Event, r *customer.Recorded, prior State, opt Options) (Activity, bool) {
	m, ok := upstreamTypes[r.Upstream.Type]
	if !ok {
		return Activity{}, false
	}
	a := Activity{ID: e.ID, Type: m.typ, Category: m.cat, OccurredAt: r.Upstream.OccurredAt.UTC(), SourceService: r.Upstream.Source}
	if a.OccurredAt.IsZero() {
		a.OccurredAt = e.OccurredAt.UTC()
	}
	if a.SourceService == "" {
		a.SourceService = customer.SourceOf(r.Upstream.Type)
	}
	a.Metadata = metadataOf(r)
	v, err := r.Parse()
	if err != nil {
		a.Title = genericTitles[m.typ]
		return a, true
	}
	loc := opt.loc()
	switch d := v.(type) {
	case *customer.Member:
		a.SourceID = memberID(d.MemberID)
		if m.typ == MemberCreated {
			describeJoined(&a, d)
		} else {
			describeMemberUpdate(&a, d, prior)
		}
	case *customer.TierChange:
		a.SourceID = memberID(d.MemberID)
		from := strings.TrimSpace(d.FromTier)
		if from == "" {
			from = prior.MembershipTier
		}
		a.Title = change("Membership tier", from, strings.TrimSpace(d.ToTier))
	case *customer.Payment:
		a.SourceID = d.PaymentID
		amount := "Payment"
		if d.AmountCents != nil {
			amount = "Payment of " + FormatMoney(*d.AmountCents, d.Currency)
		}
		reason := strings.TrimSpace(d.Reason)
		if m.typ == PaymentReceived {
			a.Title = amount + " received"
			a.Description = sentence(reason)
		} else {
			a.Title = amount + " failed"
			if reason != "" {
				a.Title += ": " + reason
			}
		}
	case *customer.Player:
		a.SourceID = d.PlayerID
		a.Title = "Registered with TeeTime"
		if d.Handicap != nil {
			a.Title += ", handicap " + FormatHandicap(*d.Handicap)
		}
		if c := strings.TrimSpace(d.HomeClubID); c != "" {
			a.Description = "Home club " + c + "."
		}
	case *customer.Booking:
		a.SourceID = d.BookingID
		when := FormatTeeTime(d.TeeTimeAt, a.OccurredAt, loc)
		if m.typ == TeeTimeBooked {
			a.Title = "Booked a tee time"
			if when != "" {
				a.Title += " for " + when
			}
		} else {
			a.Title = "Played a round"
			if when != "" {
				a.Title += " on " + when
			}
		}
		a.Description = joinNonEmpty(", ", prefixed("At ", d.ClubID), prefixed("booking ", d.BookingID))
		a.Description = sentence(a.Description)
	case *customer.HandicapChange:
		a.SourceID = d.PlayerID
		switch {
		case d.Handicap == nil:
			a.Title = "Handicap updated"
		case prior.Handicap == nil:
			a.Title = "Handicap set to " + FormatHandicap(*d.Handicap)
		case *prior.Handicap == *d.Handicap:
			a.Title = "Handicap unchanged at " + FormatHandicap(*d.Handicap)
		default:
			a.Title = "Handicap " + FormatHandicap(*prior.Handicap) + " → " + FormatHandicap(*d.Handicap)
		}
		if prior.Handicap != nil {
			a.Metadata["previousHandicap"] = *prior.Handicap
		}
	case *customer.CompetitionEntry:
		a.SourceID = d.CompetitionID
		switch {
		case strings.TrimSpace(d.CompetitionName) != "":
			a.Title = "Entered " + strings.TrimSpace(d.CompetitionName)
		case d.CompetitionID != "":
			a.Title = "Entered competition " + d.CompetitionID
		default:
			a.Title = "Entered a competition"
		}
	case *customer.Message:
		a.SourceID = d.MessageID
		switch m.typ {
		case MessageSent, MessageDelivered:
			a.Channel = strings.ToUpper(strings.TrimSpace(d.Channel))
			verb := " sent"
			if m.typ == MessageDelivered {
				verb = " delivered"
			}
			a.Title = channelNoun(a.Channel) + verb
			a.Description = sentence(prefixed("Campaign ", d.CampaignID))
		case EmailOpened:
			a.Channel, a.Title = "EMAIL", "Opened an email"
			a.Description = sentence(prefixed("Campaign ", d.CampaignID))
		case EmailClicked:
			a.Channel, a.Title = "EMAIL", "Clicked a link in an email"
			a.Description = joinNonEmpty(" ", strings.TrimSpace(d.URL), parenthesised(prefixed("campaign ", d.CampaignID)))
		}
	case *customer.Preference:
		a.SourceID = d.ContactID
		describePreferences(&a, d, prior)
	}
	if a.Title == "" {
		a.Title = genericTitles[m.typ]
	}
	return a, true
}

var genericTitles = map[Type]string{
	MemberCreated: "Joined as a member", MemberUpdated: "Membership details updated", TierChanged: "Membership tier changed",
	PaymentReceived: "Payment received", PaymentFailed: "Payment failed", PlayerCreated: "Registered with TeeTime",
	TeeTimeBooked: "Booked a tee time", TeeTimeCompleted: "Played a round", HandicapUpdated: "Handicap updated",
	CompetitionEntered: "Entered a competition", MessageSent: "Message sent", MessageDelivered: "Message delivered",
	EmailOpened: "Opened an email", EmailClicked: "Clicked a link in an email", ContactPreferenceUpdated: "Contact preferences updated",
}

func describeJoined(a *Activity, d *customer.Member) {
	tier := strings.TrimSpace(d.MembershipTier)
	status := strings.ToUpper(strings.TrimSpace(d.MembershipStatus))
	if status == "" || customer.StageForMembership(status, "") == customer.LifecycleMember {
		if tier != "" {
			a.Title = "Joined as " + article(tier) + " " + tier + " member"
		} else {
			a.Title = "Joined as a member"
		}
	} else {
		a.Title = "Membership created (" + Label(status) + ")"
	}
	a.Description = sentence(joinNonEmpty(", ", prefixed("Tier ", tier), prefixed("status ", Label(status)), prefixed("home club ", d.HomeClubID)))
}

func describeMemberUpdate(a *Activity, d *customer.Member, prior State) {
	status := strings.ToUpper(strings.TrimSpace(d.MembershipStatus))
	tier := strings.TrimSpace(d.MembershipTier)
	club := strings.TrimSpace(d.HomeClubID)
	var changes []string
	statusChanged := status != "" && status != prior.MembershipStatus
	tierChanged := tier != "" && tier != prior.MembershipTier
	if statusChanged {
		changes = append(changes, change("Membership status", Label(prior.MembershipStatus), Label(status)))
	}
	if tierChanged {
		changes = append(changes, change("Membership tier", prior.MembershipTier, tier))
	}
	if club != "" && club != prior.HomeClubID {
		changes = append(changes, change("Home club", prior.HomeClubID, club))
	}
	if statusChanged || tierChanged {
		a.Title = changes[0]
		changes = changes[1:]
	} else {
		a.Title = "Membership details updated"
	}
	for i := range changes {
		changes[i] = lowerFirst(changes[i])
	}
	a.Description = sentence(strings.Join(changes, "; "))
}

func describePreferences(a *Activity, d *customer.Preference, prior State) {
	type pref struct {
		name        string
		now, before *bool
	}
	prefs := []pref{{"email", d.EmailOptIn, prior.EmailOptIn}, {"SMS", d.SMSOptIn, prior.SMSOptIn}, {"push", d.PushOptIn, prior.PushOptIn}, {"WhatsApp", d.WhatsAppOptIn, prior.WhatsAppOptIn}}
	var in, out, state []string
	for _, p := range prefs {
		if p.now == nil {
			continue
		}
		was := p.before != nil && *p.before // the profile's flags start off
		switch {
		case *p.now && !was:
			in = append(in, p.name)
		case !*p.now && was:
			out = append(out, p.name)
		}
		onOff := "off"
		if *p.now {
			onOff = "on"
		}
		state = append(state, p.name+" "+onOff)
	}
	var parts []string
	if len(in) > 0 {
		parts = append(parts, "opted in to "+andList(in))
	}
	if len(out) > 0 {
		parts = append(parts, "opted out of "+andList(out))
	}
	if len(parts) == 0 {
		a.Title = "Contact preferences updated (no change)"
	} else {
		a.Title = upperFirst(strings.Join(parts, "; "))
	}
	a.Description = sentence(upperFirst(strings.Join(state, ", ")))
}

func tagsTitle(added, removed []string) string {
	var parts []string
	if len(added) > 0 {
		parts = append(parts, "tagged "+strings.Join(added, ", "))
	}
	if len(removed) > 0 {
		parts = append(parts, "untagged "+strings.Join(removed, ", "))
	}
	if len(parts) == 0 {
		return "Tags changed"
	}
	return upperFirst(strings.Join(parts, "; "))
}

// metadataOf answers the upstream data as an object, with the upstream
// event's id, for the activity's details.
func metadataOf(r *customer.Recorded) map[string]any {
	out := map[string]any{}
	// Numbers stay json.Number, so amounts and ids stay exact. Parse, not
	// a Decoder: that allocates a 32 KiB buffer for each value.
	_, _ = json.Parse(r.Data, &out, json.UseNumber)
	if out == nil {
		out = map[string]any{}
	}
	out["upstreamEventId"] = r.Upstream.ID
	return out
}

func profileName(source json.RawMessage) string {
	var p customer.Profile
	if err := json.Unmarshal(source, &p); err != nil {
		return ""
	}
	return p.Name()
}

func memberID(m *customer.MemberID) string {
	if m == nil {
		return ""
	}
	return fmt.Sprint(int64(*m))
}

func channelNoun(ch string) string {
	switch ch {
	case "EMAIL":
		return "Email"
	case "SMS":
		return "SMS"
	case "PUSH":
		return "Push notification"
	case "WHATSAPP":
		return "WhatsApp message"
	}
	return "Message"
}

// change writes "what from → to", or "what set to to" when from is not
// known.
func change(what, from, to string) string {
	switch {
	case to == "":
		return what + " changed"
	case from == "" || from == to:
		return what + " set to " + to
	}
	return what + " " + from + " → " + to
}

// Label writes an upstream code for people: ACTIVE → Active,
// PENDING_RENEWAL → Pending renewal.
func Label(code string) string {
	code = strings.TrimSpace(code)
	if code == "" {
		return ""
	}
	s := strings.ToLower(strings.ReplaceAll(code, "_", " "))
	return upperFirst(s)
}

func article(word string) string {
	if word != "" && strings.ContainsRune("AEIOUaeiou", rune(word[0])) {
		return "an"
	}
	return "a"
}

func andList(items []string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

func prefixed(prefix, v string) string {
	if v = strings.TrimSpace(v); v == "" {
		return ""
	}
	return prefix + v
}

func parenthesised(v string) string {
	if v == "" {
		return ""
	}
	return "(" + v + ")"
}

func joinNonEmpty(sep string, parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, sep)
}

// sentence capitalises s and ends it with a full stop, unless it is empty.
func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	s = upperFirst(s)
	if !strings.HasSuffix(s, ".") && !strings.HasSuffix(s, "!") && !strings.HasSuffix(s, "?") {
		s += "."
	}
	return s
}

func upperFirst(s string) string {
	for i, r := range s {
		return strings.ToUpper(string(r)) + s[i+len(string(r)):]
	}
	return s
}

func lowerFirst(s string) string {
	for i, r := range s {
		return strings.ToLower(string(r)) + s[i+len(string(r)):]
	}
	return s
}

func orSomeone(s string) string {
	if strings.TrimSpace(s) == "" {
		return "a staff member"
	}
	return s
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
