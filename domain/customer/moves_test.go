package customer

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestMovesFields applies every upstream type, and each domain event said
// not to move fields, to a filled profile with data naming every field an
// upstream service sets: what MovesFields answers false for must leave all
// but the version, updatedAt and notes as they were, and what it answers
// true for must move something.
func TestMovesFields(t *testing.T) {
	h := 12.5
	yes := true
	base := func() Profile {
		return Profile{FirstName: "Ann", LastName: "Lee", MembershipTier: "Gold", HomeClubID: "c1", MembershipStatus: "ACTIVE",
			LifecycleStage: LifecycleMember, Handicap: &h, EmailOptIn: yes, Tags: []string{"vip"}}
	}
	rich := json.RawMessage(`{"memberId": 7, "playerId": "p9", "contactId": "m3", "firstName": "Bea", "lastName": "Ng",
		"membershipTier": "Platinum", "toTier": "Platinum", "fromTier": "Gold", "homeClubId": "c2", "membershipStatus": "LAPSED",
		"externalIds": {"golfRsaId": "g1"}, "handicap": 3.1, "emailOptIn": false, "smsOptIn": true, "pushOptIn": true,
		"whatsappOptIn": true}`)
	at := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	moved := func(t *testing.T, data any) bool {
		t.Helper()
		p, before := base(), base()
		p.Apply(data, at)
		if p.Version != before.Version+1 || !p.UpdatedAt.Equal(at) {
			t.Fatalf("version %d, updatedAt %v: every event moves both", p.Version, p.UpdatedAt)
		}
		p.Version, p.UpdatedAt, p.Notes = before.Version, before.UpdatedAt, before.Notes
		return !reflect.DeepEqual(p, before)
	}
	for _, typ := range UpstreamTypes() {
		t.Run(typ, func(t *testing.T) {
			if _, err := ParseUpstream(typ, rich); err != nil {
				t.Fatalf("sample data: %v", err)
			}
			got := moved(t, &Recorded{Upstream: Upstream{ID: "u1", Type: typ, Source: SourceOf(typ), OccurredAt: at}, Data: rich})
			if got != MovesFields(typ) {
				t.Errorf("applying %s moved fields: %v; MovesFields: %v", typ, got, MovesFields(typ))
			}
		})
	}
	still := map[string]any{
		TypeActivityRecorded:  &ActivityRecorded{ActivityID: uuid.New(), Kind: "CALL", Title: "Rang", OccurredAt: at, Actor: "staff"},
		TypeNoteAdded:         &NoteAdded{NoteID: uuid.New(), Author: "staff", Body: "likes mornings"},
		TypeChurnRiskRaised:   &ChurnRisk{ChurnRiskScore: 80, Threshold: 70},
		TypeEngagementDropped: &EngagementDropped{From: 60, To: 20, Drop: 30},
	}
	for typ, data := range still {
		t.Run(typ, func(t *testing.T) {
			if MovesFields(typ) {
				t.Fatalf("MovesFields(%s) = true", typ)
			}
			if moved(t, data) {
				t.Errorf("applying %s moved fields", typ)
			}
		})
	}
	for _, typ := range []string{TypeCreated, TypeIdentityLinked, TypeEdited, TypeMerged, TypeMergedInto, TypeTagsChanged} {
		if !MovesFields(typ) {
			t.Errorf("MovesFields(%s) = false", typ)
		}
	}
}
