package identity_test

import (
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/clubcrm/crm/domain/identity"
)

// The identity benchmarks cover what every upstream event pays before it
// reaches the database: normalising its identifiers and deciding who it is.
// They need no database; compare commits with
//
//	go test -run '^$' -bench . -count 10 ./domain/identity > new.txt
//	benchstat old.txt new.txt

var sinkString string
var sinkBool bool

func BenchmarkNormalizeEmail(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sinkString, sinkBool = identity.NormalizeEmail("  Jane.Doe4711@Gmail.COM ")
	}
}

func BenchmarkNormalizePhone(b *testing.B) {
	for _, c := range []struct{ name, number string }{
		{"national", "082 555 1234"},
		{"international", "+27825551234"},
		{"spaced", "+27 82 555 1234"},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sinkString, sinkBool = identity.NormalizePhone(c.number, "ZA")
			}
		})
	}
}

var sinkExtracted identity.Extracted

// BenchmarkExtract normalises the identity of a member.created: every kind
// of key, the email in mixed case and the phone in national form.
func BenchmarkExtract(b *testing.B) {
	s := identity.DefaultSettings()
	raw := identity.Raw{
		AuthUserID: "idp|8812", SCLMemberID: "42", Email: "Jane.Doe@Mail.com", Phone: "082 555 1234", Country: "ZA",
	}
	b.ReportAllocs()
	for b.Loop() {
		sinkExtracted = identity.Extract(raw, s)
	}
}

var sinkDecision identity.Decision

// BenchmarkResolve decides the common cases: a new person, someone known
// by a service id, a second service's id joining by email, and a shared
// household phone that must not link.
func BenchmarkResolve(b *testing.B) {
	s := identity.DefaultSettings()
	jane := uuid.MustParse("00000000-0000-0000-0000-000000000001")
	member := identity.Key{Kind: identity.SCLMember, Value: "42"}
	player := identity.Key{Kind: identity.TeeTimePlayer, Value: "TT7"}
	email := identity.Key{Kind: identity.Email, Value: "jane.doe@mail.com"}
	phone := identity.Key{Kind: identity.Phone, Value: "+27825551234"}
	johnEmail := identity.Key{Kind: identity.Email, Value: "john.doe@mail.com"}
	known := identity.Candidates{
		Holders:  []identity.Holder{{Key: member, CustomerID: jane}, {Key: email, CustomerID: jane}, {Key: phone, CustomerID: jane}},
		Profiles: map[uuid.UUID]identity.Profile{jane: {CustomerID: jane, FirstName: "Jane", LastName: "Doe", Email: email.Value, Keys: []identity.Key{member, email, phone}}},
	}
	household := identity.Candidates{
		Holders:  []identity.Holder{{Key: phone, CustomerID: jane}},
		Profiles: known.Profiles,
	}
	for _, c := range []struct {
		name string
		keys []identity.Key
		c    identity.Candidates
		n    identity.Name
	}{
		{"new", []identity.Key{member, email, phone}, identity.Candidates{Profiles: map[uuid.UUID]identity.Profile{}}, identity.Name{First: "Jane", Last: "Doe"}},
		{"known by service id", []identity.Key{member}, known, identity.Name{}},
		{"second service by email", []identity.Key{player, email, phone}, known, identity.Name{First: "Jane", Last: "Doe"}},
		{"household phone", []identity.Key{johnEmail, phone}, household, identity.Name{First: "John", Last: "Doe"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sinkDecision = identity.Resolve(c.keys, c.c, c.n, s)
			}
		})
	}
}

// BenchmarkResolveNeighbours decides a new person at a busy email domain:
// every profile there with the same folded surname is compared by name.
func BenchmarkResolveNeighbours(b *testing.B) {
	s := identity.DefaultSettings()
	for _, n := range []int{1, 10, 100} {
		c := identity.Candidates{Profiles: map[uuid.UUID]identity.Profile{}}
		for i := range n {
			c.Neighbours = append(c.Neighbours, identity.Profile{
				CustomerID: uuid.New(), FirstName: fmt.Sprintf("Jan%c", 'a'+i%26), LastName: "Doe", Email: fmt.Sprintf("j%d@gmail.com", i),
			})
		}
		keys := []identity.Key{{Kind: identity.Email, Value: "jane.doe@gmail.com"}}
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sinkDecision = identity.Resolve(keys, c, identity.Name{First: "Jane", Last: "Doe"}, s)
			}
		})
	}
}
