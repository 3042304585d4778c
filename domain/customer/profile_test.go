package customer

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/domain/identity"
)

var t0 = time.Date(2026, 3, 14, 7, 30, 0, 0, time.UTC)

// fold applies events as the store would hand them back.
func fold(t testing.TB, p *Profile, evs []Event) {
	t.Helper()
	for _, e := range evs {
		b, err := json.Marshal(e.Data)
		require.NoError(t, err)
		v, err := Decode(e.Type, b)
		require.NoError(t, err)
		p.Apply(v, t0)
	}
}

func ingest(t testing.TB, p *Profile, typ, data string, d identity.Decision) []Event {
	t.Helper()
	v, err := ParseUpstream(typ, json.RawMessage(data))
	require.NoError(t, err)
	person := PersonOf(v)
	x := identity.Extract(identity.Raw{AuthUserID: person.AuthUserID, SCLMemberID: person.SCLMemberID, TeeTimePlayerID: person.TeeTimePlayerID,
		MessagingContactID: person.MessagingContactID, Email: person.Email, Phone: person.Phone, Country: person.Country}, identity.DefaultSettings())
	if d.Link == nil && d.New() {
		d.Link = x.Keys
		d.MatchedBy = "new"
	}
	evs, err := p.Ingest(Ingestion{Upstream: Upstream{ID: uuid.NewString(), Type: typ, Source: SourceOf(typ), OccurredAt: t0}, Data: json.RawMessage(data), Person: person, Extracted: x, Decision: d})
	require.NoError(t, err)
	fold(t, p, evs)
	return evs
}

func TestIngestNewMemberThenUpdates(t *testing.T) {
	p := &Profile{ID: uuid.New(), TenantID: "club-a"}
	evs := ingest(t, p, "member.created", `{"memberId": 42, "email": " Jane@Mail.com", "phoneNumber": "082 555 1234", "firstName": "Jane", "lastName": "Doe", "membershipTier": "Gold", "membershipStatus": "active", "externalIds": {"golfRsaId": "G-1"}}`, identity.Decision{})
	require.Len(t, evs, 2)
	assert.Equal(t, TypeCreated, evs[0].Type)
	assert.Equal(t, "member.created", evs[1].Type)
	assert.EqualValues(t, 2, p.Version)
	assert.Equal(t, "jane@mail.com", p.Email)
	assert.Equal(t, "+27825551234", p.PhoneNumber)
	require.NotNil(t, p.SCLMemberID)
	assert.EqualValues(t, 42, *p.SCLMemberID)
	assert.Equal(t, LifecycleMember, p.LifecycleStage)
	assert.Equal(t, "Gold", p.MembershipTier)
	assert.Equal(t, "G-1", p.ExternalIDs.GolfRsaID)

	ingest(t, p, "tier.changed", `{"memberId": 42, "fromTier": "Gold", "toTier": "Platinum"}`, identity.Decision{Customer: p.ID})
	assert.Equal(t, "Platinum", p.MembershipTier)
	ingest(t, p, "member.updated", `{"memberId": "42", "membershipStatus": "SUSPENDED"}`, identity.Decision{Customer: p.ID})
	assert.Equal(t, LifecycleLapsed, p.LifecycleStage)
	ingest(t, p, "contactPreference.updated", `{"contactId": "c-1", "emailOptIn": true, "smsOptIn": false}`, identity.Decision{Customer: p.ID, Link: []identity.Key{{Kind: identity.MessagingContact, Value: "c-1"}}})
	assert.True(t, p.EmailOptIn)
	assert.Equal(t, "c-1", p.MessagingContactID)
	evs = ingest(t, p, "handicap.updated", `{"playerId": "p-1", "handicap": 11.8}`, identity.Decision{Customer: p.ID})
	require.NotNil(t, p.Handicap)
	assert.Equal(t, 11.8, *p.Handicap)
	assert.Len(t, evs, 1, "no new keys: only the recorded event")
}

func TestInitialStages(t *testing.T) {
	cases := []struct {
		typ, data string
		want      Lifecycle
	}{
		{"player.created", `{"playerId": "p-1", "firstName": "Sam"}`, LifecycleGuest},
		{"teetime.booked", `{"playerId": "p-1", "bookingId": "b-1"}`, LifecycleGuest},
		{"message.sent", `{"contactId": "c-1", "channel": "EMAIL"}`, LifecycleProspect},
		{"member.created", `{"memberId": 1, "membershipStatus": "RESIGNED"}`, LifecycleChurned},
		{"payment.received", `{"memberId": 1, "amountCents": 125000, "currency": "ZAR"}`, LifecycleMember},
	}
	for _, c := range cases {
		p := &Profile{ID: uuid.New(), TenantID: "t"}
		ingest(t, p, c.typ, c.data, identity.Decision{})
		assert.Equal(t, c.want, p.LifecycleStage, c.typ)
	}
}

func TestUnusableIdentifiersAreKeptButNotIndexed(t *testing.T) {
	p := &Profile{ID: uuid.New(), TenantID: "t"}
	ingest(t, p, "player.created", `{"playerId": "p-1", "email": "noreply@club.com", "phoneNumber": "call reception"}`, identity.Decision{})
	assert.Equal(t, "noreply@club.com", p.Email)
	assert.Equal(t, "call reception", p.PhoneNumber)
	assert.Equal(t, []identity.Key{{Kind: identity.TeeTimePlayer, Value: "p-1"}}, p.IndexedKeys())
}

func TestUpstreamShapeErrors(t *testing.T) {
	cases := []struct{ typ, data, want string }{
		{"member.created", `{"memberId": "abc"}`, "memberId"},
		{"player.created", `{"playerId": 7}`, "data.playerId"},
		{"handicap.updated", `{"playerId": "p", "handicap": "low"}`, "data.handicap"},
		{"member.created", `null`, "missing"},
		{"nonsense.happened", `{}`, "unknown upstream type"},
	}
	for _, c := range cases {
		_, err := ParseUpstream(c.typ, json.RawMessage(c.data))
		require.Error(t, err, c.typ)
		assert.Contains(t, err.Error(), c.want)
	}
}

func TestMerge(t *testing.T) {
	a := &Profile{ID: uuid.New(), TenantID: "t"}
	ingest(t, a, "member.created", `{"memberId": 1, "email": "jane@mail.com", "firstName": "Jane"}`, identity.Decision{})
	b := &Profile{ID: uuid.New(), TenantID: "t"}
	ingest(t, b, "player.created", `{"playerId": "p-1", "email": "jdoe@golf.com", "phoneNumber": "0825551234"}`, identity.Decision{})
	b.Tags = []string{"vip"}

	survivor, closed, err := a.Merge(b, "staff-1", "cmd-1")
	require.NoError(t, err)
	fold(t, a, survivor)
	fold(t, b, closed)
	assert.Equal(t, "p-1", a.TeeTimePlayerID)
	assert.Equal(t, []identity.Key{{Kind: identity.Email, Value: "jdoe@golf.com"}}, a.Aliases)
	assert.Equal(t, "+27825551234", a.PhoneNumber, "the survivor had no phone: the source's becomes primary")
	assert.Equal(t, []string{"vip"}, a.Tags)
	assert.Equal(t, []uuid.UUID{b.ID}, a.MergedFrom)
	assert.Equal(t, StatusMerged, b.Status)
	assert.Equal(t, a.ID, *b.MergedInto)

	var snap Profile
	require.NoError(t, json.Unmarshal(survivor[0].Data.(*Merged).Source, &snap))
	assert.Equal(t, "p-1", snap.TeeTimePlayerID, "the source's state travels with the merge")

	_, _, err = a.Merge(a, "x", "y")
	assert.ErrorIs(t, err, ErrSelfMerge)
	c := &Profile{ID: uuid.New(), TenantID: "t"}
	ingest(t, c, "player.created", `{"playerId": "p-2"}`, identity.Decision{})
	_, _, err = c.Merge(b, "x", "y")
	assert.ErrorIs(t, err, ErrMerged)
	_, _, err = b.Merge(c, "x", "y")
	assert.ErrorIs(t, err, ErrMerged)
}

func TestEdit(t *testing.T) {
	p := &Profile{ID: uuid.New(), TenantID: "t"}
	ingest(t, p, "player.created", `{"playerId": "p-1"}`, identity.Decision{})
	name, stage, archived, merged := "Captain Jane", LifecycleProspect, StatusArchived, StatusMerged
	evs, err := p.Edit(Edited{DisplayName: &name, LifecycleStage: &stage, Actor: "u"})
	require.NoError(t, err)
	fold(t, p, evs)
	assert.Equal(t, "Captain Jane", p.Name())
	assert.True(t, p.LifecycleByStaff)
	evs, err = p.Edit(Edited{DisplayName: &name, LifecycleStage: &stage})
	require.NoError(t, err)
	assert.Empty(t, evs, "no change, no event")
	_, err = p.Edit(Edited{Status: &merged})
	assert.ErrorIs(t, err, ErrInvalid)
	evs, err = p.Edit(Edited{Status: &archived})
	require.NoError(t, err)
	fold(t, p, evs)
	assert.Equal(t, StatusArchived, p.Status)
	// The next membership change derives the stage again.
	ingest(t, p, "member.updated", `{"memberId": 5, "membershipStatus": "ACTIVE"}`, identity.Decision{Customer: p.ID})
	assert.Equal(t, LifecycleMember, p.LifecycleStage)
	assert.False(t, p.LifecycleByStaff)
}
