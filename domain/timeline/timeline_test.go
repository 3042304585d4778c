package timeline_test

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/domain/timeline"
)

var (
	occurred = time.Date(2026, 3, 14, 7, 30, 0, 0, time.UTC)
	eventID  = uuid.MustParse("7d7c9c3e-6f0e-5d36-9a4b-0c1f5c7e2a11")
)

func ptr[T any](v T) *T { return &v }

// upstream answers an upstream event as the store hands it back: the
// Recorded wrapper, decoded from JSON.
func upstream(t *testing.T, typ, data string) timeline.Event {
	t.Helper()
	return stored(t, typ, customer.Recorded{
		Upstream: customer.Upstream{ID: "up-1", Type: typ, Source: customer.SourceOf(typ), OccurredAt: occurred},
		Data:     json.RawMessage(data),
	})
}

func stored(t *testing.T, typ string, data any) timeline.Event {
	t.Helper()
	b, err := json.Marshal(data)
	require.NoError(t, err)
	v, err := customer.Decode(typ, b)
	require.NoError(t, err)
	return timeline.Event{ID: eventID, Type: typ, Data: v, Actor: "staff-17", OccurredAt: occurred.Add(time.Hour)}
}

// One fixture per upstream type of the contract (docs/events.md) and the
// activity it yields.
func TestUpstreamActivities(t *testing.T) {
	prior := timeline.State{Handicap: ptr(12.4), MembershipTier: "Gold", MembershipStatus: "ACTIVE", HomeClubID: "club-1",
		EmailOptIn: ptr(false), SMSOptIn: ptr(true)}
	cases := []struct {
		typ, data   string
		want        timeline.Type
		category    timeline.Category
		channel     string
		title, desc string
		sourceID    string
	}{
		{"member.created", `{"memberId": 42, "email": "jane@mail.com", "membershipTier": "Gold", "membershipStatus": "ACTIVE", "homeClubId": "club-1"}`,
			timeline.MemberCreated, timeline.Membership, "", "Joined as a Gold member", "Tier Gold, status Active, home club club-1.", "42"},
		{"member.updated", `{"memberId": "42", "membershipStatus": "SUSPENDED", "homeClubId": "club-2"}`,
			timeline.MemberUpdated, timeline.Membership, "", "Membership status Active → Suspended", "Home club club-1 → club-2.", "42"},
		{"tier.changed", `{"memberId": 42, "fromTier": "Gold", "toTier": "Platinum"}`,
			timeline.TierChanged, timeline.Membership, "", "Membership tier Gold → Platinum", "", "42"},
		{"payment.received", `{"memberId": 42, "paymentId": "pay-1", "amountCents": 125000, "currency": "ZAR", "reason": "annual subscription"}`,
			timeline.PaymentReceived, timeline.Financial, "", "Payment of R 1 250.00 received", "Annual subscription.", "pay-1"},
		{"payment.failed", `{"memberId": 42, "paymentId": "pay-2", "amountCents": 125000, "currency": "ZAR", "reason": "card expired"}`,
			timeline.PaymentFailed, timeline.Financial, "", "Payment of R 1 250.00 failed: card expired", "", "pay-2"},
		{"player.created", `{"playerId": "p-7", "email": "jane@mail.com", "handicap": 12.4, "homeClubId": "club-1"}`,
			timeline.PlayerCreated, timeline.Golf, "", "Registered with TeeTime, handicap 12.4", "Home club club-1.", "p-7"},
		{"teetime.booked", `{"playerId": "p-7", "bookingId": "b-1", "clubId": "club-1", "teeTimeAt": "2026-03-21T07:30:00Z"}`,
			timeline.TeeTimeBooked, timeline.Booking, "", "Booked a tee time for 21 Mar, 07:30", "At club-1, booking b-1.", "b-1"},
		{"teetime.completed", `{"playerId": "p-7", "bookingId": "b-1", "clubId": "club-1", "teeTimeAt": "2027-01-02T06:10:00Z"}`,
			timeline.TeeTimeCompleted, timeline.Booking, "", "Played a round on 2 Jan 2027, 06:10", "At club-1, booking b-1.", "b-1"},
		{"handicap.updated", `{"playerId": "p-7", "handicap": 11.8}`,
			timeline.HandicapUpdated, timeline.Golf, "", "Handicap 12.4 → 11.8", "", "p-7"},
		{"competition.entered", `{"playerId": "p-7", "competitionId": "comp-9", "competitionName": "Club Championship"}`,
			timeline.CompetitionEntered, timeline.Golf, "", "Entered Club Championship", "", "comp-9"},
		{"message.sent", `{"contactId": "c-3", "messageId": "m-1", "channel": "sms", "campaignId": "camp-1"}`,
			timeline.MessageSent, timeline.Communication, "SMS", "SMS sent", "Campaign camp-1.", "m-1"},
		{"message.delivered", `{"contactId": "c-3", "messageId": "m-1", "channel": "EMAIL"}`,
			timeline.MessageDelivered, timeline.Communication, "EMAIL", "Email delivered", "", "m-1"},
		{"email.opened", `{"contactId": "c-3", "messageId": "m-1", "campaignId": "camp-1"}`,
			timeline.EmailOpened, timeline.Engagement, "EMAIL", "Opened an email", "Campaign camp-1.", "m-1"},
		{"email.clicked", `{"contactId": "c-3", "messageId": "m-1", "campaignId": "camp-1", "url": "https://club.example/entry"}`,
			timeline.EmailClicked, timeline.Engagement, "EMAIL", "Clicked a link in an email", "https://club.example/entry (campaign camp-1)", "m-1"},
		{"contactPreference.updated", `{"contactId": "c-3", "emailOptIn": true, "smsOptIn": false, "pushOptIn": true}`,
			timeline.ContactPreferenceUpdated, timeline.Communication, "", "Opted in to email and push; opted out of SMS", "Email on, SMS off, push on.", "c-3"},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		t.Run(c.typ, func(t *testing.T) {
			seen[c.typ] = true
			ev := upstream(t, c.typ, c.data)
			a, ok := timeline.Describe(ev, prior, timeline.Options{})
			require.True(t, ok)
			typ, cat, at, ok := timeline.Classify(ev)
			assert.True(t, ok)
			assert.Equal(t, []any{a.Type, a.Category, a.OccurredAt}, []any{typ, cat, at}, "Classify agrees with Describe")
			assert.Equal(t, eventID, a.ID)
			assert.Equal(t, c.want, a.Type)
			assert.Equal(t, c.category, a.Category)
			assert.Equal(t, c.channel, a.Channel)
			assert.Equal(t, c.title, a.Title)
			assert.Equal(t, c.desc, a.Description)
			assert.Equal(t, customer.SourceOf(c.typ), a.SourceService)
			assert.Equal(t, c.sourceID, a.SourceID)
			assert.Equal(t, occurred, a.OccurredAt, "the upstream occurredAt, not when it was stored")
			assert.Equal(t, "up-1", a.Metadata["upstreamEventId"])
			assert.Contains(t, timeline.Types, a.Type)
			assert.Contains(t, timeline.Categories, a.Category)
		})
	}
	for _, typ := range customer.UpstreamTypes() {
		assert.True(t, seen[typ], "no fixture for %s", typ)
	}
	// competition.published concerns nobody: it is on no person's stream.
	_, ok := timeline.Describe(timeline.Event{Type: "competition.published", Data: &customer.Recorded{Upstream: customer.Upstream{Type: "competition.published"}}}, prior, timeline.Options{})
	assert.False(t, ok)
}

func TestDescribeWithoutPriorKnowledge(t *testing.T) {
	none := timeline.State{}
	for _, c := range []struct{ typ, data, title, desc string }{
		{"handicap.updated", `{"playerId": "p-7", "handicap": -2.5}`, "Handicap set to +2.5", ""},
		{"handicap.updated", `{"playerId": "p-7"}`, "Handicap updated", ""},
		{"member.created", `{"memberId": 42, "membershipStatus": "lapsed"}`, "Membership created (Lapsed)", "Status Lapsed."},
		{"member.created", `{"memberId": 42, "membershipTier": "Associate"}`, "Joined as an Associate member", "Tier Associate."},
		{"member.updated", `{"memberId": 42, "firstName": "Janet"}`, "Membership details updated", ""},
		{"tier.changed", `{"memberId": 42, "toTier": "Platinum"}`, "Membership tier set to Platinum", ""},
		{"payment.received", `{"memberId": 42, "paymentId": "p", "amountCents": 99, "currency": "gbp"}`, "Payment of £0.99 received", ""},
		{"payment.failed", `{"memberId": 42, "paymentId": "p"}`, "Payment failed", ""},
		{"teetime.booked", `{"playerId": "p-7", "teeTimeAt": "2026-03-21 07:30"}`, "Booked a tee time for 21 Mar, 07:30", ""},
		{"teetime.booked", `{"playerId": "p-7", "teeTimeAt": "next Tuesday"}`, "Booked a tee time for next Tuesday", ""},
		{"message.sent", `{"contactId": "c", "channel": "WHATSAPP"}`, "WhatsApp message sent", ""},
		{"message.sent", `{"contactId": "c"}`, "Message sent", ""},
		{"competition.entered", `{"playerId": "p-7", "competitionId": "comp-9"}`, "Entered competition comp-9", ""},
		{"contactPreference.updated", `{"contactId": "c", "smsOptIn": false}`, "Contact preferences updated (no change)", "SMS off."},
	} {
		a, ok := timeline.Describe(upstream(t, c.typ, c.data), none, timeline.Options{})
		require.True(t, ok, c.typ)
		assert.Equal(t, c.title, a.Title, c.data)
		assert.Equal(t, c.desc, a.Description, c.data)
	}
}

func TestTenantZone(t *testing.T) {
	jhb, err := time.LoadLocation("Africa/Johannesburg")
	if err != nil {
		t.Skip("no zone database")
	}
	a, _ := timeline.Describe(upstream(t, "teetime.booked", `{"playerId": "p-7", "teeTimeAt": "2026-03-21T05:30:00Z"}`), timeline.State{}, timeline.Options{Location: jhb})
	assert.Equal(t, "Booked a tee time for 21 Mar, 07:30", a.Title)
}

func TestCRMActivities(t *testing.T) {
	noteID, activityID, source := uuid.New(), uuid.New(), uuid.New()
	snapshot, err := json.Marshal(customer.Profile{ID: source, FirstName: "Jane", LastName: "Doe"})
	require.NoError(t, err)
	cases := []struct {
		name     string
		ev       timeline.Event
		id       uuid.UUID
		typ      timeline.Type
		category timeline.Category
		channel  string
		title    string
		desc     string
		counts   bool
	}{
		{"note", stored(t, customer.TypeNoteAdded, customer.NoteAdded{NoteID: noteID, Author: "staff-17", Body: "Prefers early tee times."}),
			noteID, timeline.NoteAdded, timeline.Support, "", "Note by staff-17", "Prefers early tee times.", false},
		{"tags", stored(t, customer.TypeTagsChanged, customer.TagsChanged{Added: []string{"vip", "early bird"}, Removed: []string{"junior"}, Actor: "staff-17"}),
			eventID, timeline.TagChanged, timeline.System, "", "Tagged vip, early bird; untagged junior", "By staff-17.", false},
		{"merge", stored(t, customer.TypeMerged, customer.Merged{SourceID: source, Source: snapshot, Actor: "staff-17"}),
			eventID, timeline.ProfileMerged, timeline.System, "", "Merged with duplicate profile Jane Doe",
			"Profile " + source.String() + " was merged into this one by staff-17; its history shows here.", false},
		{"entered by staff", stored(t, customer.TypeCreated, customer.Created{CustomerID: source, Source: "crm", LifecycleStage: customer.LifecycleProspect}),
			eventID, timeline.ProfileCreated, timeline.System, "", "Profile entered by staff-17", "", false},
		{"visit", stored(t, customer.TypeActivityRecorded, customer.ActivityRecorded{ActivityID: activityID, Kind: customer.KindVisit, Title: "Came in to the pro shop",
			Description: "Asked about lessons", Channel: "IN_PERSON", OccurredAt: occurred.Add(-48 * time.Hour), Actor: "staff-17"}),
			activityID, timeline.Visit, timeline.Engagement, "IN_PERSON", "Came in to the pro shop", "Asked about lessons", true},
		{"call", stored(t, customer.TypeActivityRecorded, customer.ActivityRecorded{ActivityID: activityID, Kind: customer.KindCall, Title: "Called about renewal",
			Channel: "PHONE", OccurredAt: occurred, Actor: "staff-17"}),
			activityID, timeline.Call, timeline.Communication, "PHONE", "Called about renewal", "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, ok := timeline.Describe(c.ev, timeline.State{}, timeline.Options{})
			require.True(t, ok)
			typ, cat, at, ok := timeline.Classify(c.ev)
			assert.True(t, ok)
			assert.Equal(t, []any{a.Type, a.Category, a.OccurredAt}, []any{typ, cat, at}, "Classify agrees with Describe")
			assert.Equal(t, c.id, a.ID)
			assert.Equal(t, c.typ, a.Type)
			assert.Equal(t, c.category, a.Category)
			assert.Equal(t, c.channel, a.Channel)
			assert.Equal(t, c.title, a.Title)
			assert.Equal(t, c.desc, a.Description)
			assert.Equal(t, "crm", a.SourceService)
			assert.Equal(t, c.counts, timeline.Counts(a))
		})
	}
	visit, _ := timeline.Describe(cases[4].ev, timeline.State{}, timeline.Options{})
	assert.Equal(t, occurred.Add(-48*time.Hour), visit.OccurredAt, "a manual activity is dated when it happened")

	for _, typ := range []string{customer.TypeIdentityLinked, customer.TypeEdited, customer.TypeMergedInto, customer.TypeNoteEdited, customer.TypeNoteDeleted, customer.TypeDuplicateFlagged} {
		_, ok := timeline.Describe(timeline.Event{Type: typ, Data: mustDecode(t, typ)}, timeline.State{}, timeline.Options{})
		assert.False(t, ok, typ)
		_, _, _, ok = timeline.Classify(timeline.Event{Type: typ, Data: mustDecode(t, typ)})
		assert.False(t, ok, typ)
	}
	upstreamCreated := stored(t, customer.TypeCreated, customer.Created{Source: "scl"})
	_, ok := timeline.Describe(upstreamCreated, timeline.State{}, timeline.Options{})
	assert.False(t, ok, "the upstream event that opened a profile is its activity")
}

func mustDecode(t *testing.T, typ string) any {
	v, err := customer.Decode(typ, []byte(`{}`))
	require.NoError(t, err)
	return v
}

func TestStateFollowsEvents(t *testing.T) {
	var s timeline.State
	for _, e := range []timeline.Event{
		upstream(t, "member.created", `{"memberId": 1, "membershipTier": "Gold", "membershipStatus": "active", "homeClubId": "c1"}`),
		upstream(t, "player.created", `{"playerId": "p", "handicap": 12.4}`),
		upstream(t, "handicap.updated", `{"playerId": "p", "handicap": 11.8}`),
		upstream(t, "tier.changed", `{"memberId": 1, "toTier": "Platinum"}`),
		upstream(t, "contactPreference.updated", `{"contactId": "c", "emailOptIn": true}`),
	} {
		s.Apply(e)
	}
	assert.Equal(t, timeline.State{Handicap: ptr(11.8), HomeClubID: "c1", MembershipTier: "Platinum", MembershipStatus: "ACTIVE", EmailOptIn: ptr(true)}, s)
	survivor := uuid.New()
	s.Apply(stored(t, customer.TypeMergedInto, customer.MergedInto{SurvivorID: survivor}))
	assert.Equal(t, &survivor, s.MergedInto)
}

func TestCounts(t *testing.T) {
	for _, typ := range timeline.Types {
		a := timeline.Activity{Type: typ}
		switch typ {
		case timeline.MessageSent, timeline.MessageDelivered, timeline.NoteAdded, timeline.TagChanged, timeline.ProfileMerged, timeline.ProfileCreated, timeline.CampaignSent,
			timeline.ChurnRiskHigh, timeline.ChurnRiskCleared, timeline.EngagementDropped:
			assert.False(t, timeline.Counts(a), typ)
		default:
			assert.True(t, timeline.Counts(a), typ)
		}
		assert.Equal(t, typ == timeline.TeeTimeBooked, timeline.IsBooking(a))
	}
}

func TestFormatMoney(t *testing.T) {
	for _, c := range []struct {
		cents int64
		cur   string
		want  string
	}{
		{125000, "ZAR", "R 1 250.00"},
		{125000, "zar", "R 1 250.00"},
		{5, "ZAR", "R 0.05"},
		{123456789, "ZAR", "R 1 234 567.89"},
		{125000, "GBP", "£1,250.00"},
		{125000, "EUR", "€1,250.00"},
		{125000, "USD", "$1,250.00"},
		{125000, "AUD", "A$1,250.00"},
		{125000, "CHF", "CHF 1,250.00"},
		{125000, "SEK", "1 250,00 kr"},
		{125000, "JPY", "¥125,000"},
		{1250500, "KWD", "1,250.500 KWD"},
		{125000, "XYZ", "1,250.00 XYZ"},
		{125000, "", "1,250.00"},
		{-5000, "ZAR", "-R 50.00"},
		{0, "GBP", "£0.00"},
		{math.MinInt64, "USD", "-$92,233,720,368,547,758.08"},
	} {
		assert.Equal(t, c.want, timeline.FormatMoney(c.cents, c.cur), "%d %s", c.cents, c.cur)
	}
}

func TestFormatHandicapAndWhen(t *testing.T) {
	assert.Equal(t, "12.4", timeline.FormatHandicap(12.4))
	assert.Equal(t, "0.0", timeline.FormatHandicap(0))
	assert.Equal(t, "+2.5", timeline.FormatHandicap(-2.5))
	ref := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	assert.Equal(t, "14 Mar, 07:30", timeline.FormatWhen(occurred, ref, nil))
	assert.Equal(t, "14 Mar 2026, 07:30", timeline.FormatWhen(occurred, ref.AddDate(1, 0, 0), nil))
	assert.Equal(t, "Pending renewal", timeline.Label("PENDING_RENEWAL"))
}

// A note or manual activity marked as a complaint says so in its title and
// carries "complaint": true in its details; one that is none carries no
// such key.
func TestComplaintActivities(t *testing.T) {
	noteID, activityID := uuid.New(), uuid.New()
	for _, c := range []struct {
		name     string
		ev       timeline.Event
		title    string
		metadata map[string]any
	}{
		{"complaint note", stored(t, customer.TypeNoteAdded, customer.NoteAdded{NoteID: noteID, Author: "staff-17", Body: "Greens not cut", Complaint: true}),
			"Complaint: Note by staff-17", map[string]any{"noteId": noteID.String(), "author": "staff-17", "pinned": false, "complaint": true}},
		{"note", stored(t, customer.TypeNoteAdded, customer.NoteAdded{NoteID: noteID, Author: "staff-17", Body: "Greens not cut"}),
			"Note by staff-17", map[string]any{"noteId": noteID.String(), "author": "staff-17", "pinned": false}},
		{"complaint call", stored(t, customer.TypeActivityRecorded, customer.ActivityRecorded{ActivityID: activityID, Kind: customer.KindCall,
			Title: "Called about slow play", OccurredAt: occurred, Actor: "staff-17", Complaint: true}),
			"Complaint: Called about slow play", map[string]any{"recordedBy": "staff-17", "complaint": true}},
		{"call", stored(t, customer.TypeActivityRecorded, customer.ActivityRecorded{ActivityID: activityID, Kind: customer.KindCall,
			Title: "Complaint: about slow play", OccurredAt: occurred, Actor: "staff-17"}),
			"Complaint: about slow play", map[string]any{"recordedBy": "staff-17"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, ok := timeline.Describe(c.ev, timeline.State{}, timeline.Options{})
			require.True(t, ok)
			assert.Equal(t, c.title, a.Title)
			assert.Equal(t, c.metadata, a.Metadata)
		})
	}
}

func TestScoringAlertActivities(t *testing.T) {
	for _, c := range []struct {
		typ   string
		data  any
		want  timeline.Type
		title string
	}{
		{customer.TypeChurnRiskRaised, &customer.ChurnRisk{ChurnRiskScore: 92.5, Threshold: 80, EngagementScore: 18.4}, timeline.ChurnRiskHigh, "Churn risk high: 92.5"},
		{customer.TypeChurnRiskCleared, &customer.ChurnRisk{ChurnRiskScore: 55, Threshold: 60, EngagementScore: 40}, timeline.ChurnRiskCleared, "Churn risk back down to 55"},
		{customer.TypeEngagementDropped, &customer.EngagementDropped{From: 72.6, To: 51, Drop: 20}, timeline.EngagementDropped, "Engagement dropped from 72.6 to 51"},
	} {
		a, ok := timeline.Describe(timeline.Event{Type: c.typ, Data: c.data}, timeline.State{}, timeline.Options{})
		if !ok || a.Type != c.want || a.Category != timeline.System || a.Title != c.title {
			t.Errorf("%s: got %v %s %s %q", c.typ, ok, a.Type, a.Category, a.Title)
		}
		if timeline.Counts(a) {
			t.Errorf("%s counts as the person's activity", c.typ)
		}
	}
}
