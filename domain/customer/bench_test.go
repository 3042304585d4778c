package customer

import (
	"encoding/json"
	"testing"

	"github.com/google/uuid"

	"github.com/clubcrm/crm/domain/identity"
)

// sample answers a profile built from three services' events, as the
// bench population makes them, and the events that built it.
func sample(b *testing.B) (*Profile, []Event) {
	p := &Profile{ID: uuid.New(), TenantID: "club-0001"}
	evs := ingest(b, p, "member.created", `{"memberId": 4711, "email": "Jane.Doe@Mail.co.za", "phoneNumber": "082 555 1234",
		"firstName": "Jane", "lastName": "Doe", "membershipTier": "Gold", "membershipStatus": "active", "homeClubId": "club-1"}`, identity.Decision{})
	evs = append(evs, ingest(b, p, "player.created", `{"playerId": "TT4711", "email": "jane.doe@mail.co.za", "handicap": 11.8}`,
		identity.Decision{Customer: p.ID, Link: []identity.Key{{Kind: identity.TeeTimePlayer, Value: "TT4711"}}, MatchedBy: "email"})...)
	evs = append(evs, ingest(b, p, "contactPreference.updated", `{"contactId": "MSG-4711", "email": "jane.doe@mail.co.za", "emailOptIn": true}`,
		identity.Decision{Customer: p.ID, Link: []identity.Key{{Kind: identity.MessagingContact, Value: "MSG-4711"}}, MatchedBy: "email"})...)
	return p, evs
}

// BenchmarkDecode measures decoding the stored events of a profile as the
// projectors and the ingest fold do, an upstream event's data included.
func BenchmarkDecode(b *testing.B) {
	_, evs := sample(b)
	seen := map[string]bool{}
	for _, e := range evs {
		if seen[e.Type] {
			continue
		}
		seen[e.Type] = true
		data, err := json.Marshal(e.Data)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(e.Type, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				v, err := Decode(e.Type, data)
				if err != nil {
					b.Fatal(err)
				}
				if r, ok := v.(*Recorded); ok {
					if _, err := r.Parse(); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
