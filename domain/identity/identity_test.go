package identity

import (
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
)

func TestNormalizeEmail(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"  Jane.Doe@Example.CO.ZA ", "jane.doe@example.co.za", true},
		{"JANE@GOLF.COM", "jane@golf.com", true},
		{"jane", "jane", false},
		{"jane@localhost", "jane@localhost", false},
		{"a@b@c.com", "a@b@c.com", false},
		{"jane doe@x.com", "jane doe@x.com", false},
		{"@x.com", "@x.com", false},
	}
	for _, c := range cases {
		got, ok := NormalizeEmail(c.in)
		assert.Equal(t, c.want, got, c.in)
		assert.Equal(t, c.ok, ok, c.in)
	}
}

func TestNormalizePhone(t *testing.T) {
	cases := []struct {
		in, region, want string
		ok               bool
	}{
		{"082 555 1234", "ZA", "+27825551234", true},
		{"+27 82 555 1234", "ZA", "+27825551234", true},
		{"0027825551234", "GB", "+27825551234", true},
		{"(082) 555-1234", "ZA", "+27825551234", true},
		{"07911 123456", "GB", "+447911123456", true},
		{"+44 7911 123456", "ZA", "+447911123456", true},
		{"07911 123456", "ZA", "07911 123456", false}, // a UK mobile read as South African is not valid
		{"not a phone", "ZA", "not a phone", false},
		{"123", "ZA", "123", false},
	}
	for _, c := range cases {
		got, ok := NormalizePhone(c.in, c.region)
		assert.Equal(t, c.ok, ok, c.in)
		if ok {
			assert.Equal(t, c.want, got, c.in)
		}
	}
}

func TestExtractSetsPlaceholdersAside(t *testing.T) {
	s := DefaultSettings()
	s.ClubDomains = []string{"royalgolf.co.za"}
	s.BlockedPhones = []string{"011 555 0000"}
	cases := []struct {
		name    string
		raw     Raw
		keys    []Key
		ignored []string
		email   string
		phone   string
	}{
		{name: "clean", raw: Raw{Email: " Jane@Mail.com", Phone: "0825551234", SCLMemberID: "42"},
			keys: []Key{{SCLMember, "42"}, {Email, "jane@mail.com"}, {Phone, "+27825551234"}}, email: "jane@mail.com", phone: "+27825551234"},
		{name: "country of the event reads the phone", raw: Raw{Phone: "07911 123456", Country: "GB"},
			keys: []Key{{Phone, "+447911123456"}}, phone: "+447911123456"},
		{name: "noreply", raw: Raw{Email: "NoReply@club.com"}, ignored: []string{"blocked mailbox noreply@"}, email: "noreply@club.com"},
		{name: "club role address", raw: Raw{Email: "info@royalgolf.co.za"}, ignored: []string{"club role address"}, email: "info@royalgolf.co.za"},
		{name: "example domain", raw: Raw{Email: "x@example.com"}, ignored: []string{"blocked domain example.com"}, email: "x@example.com"},
		{name: "repeated digits", raw: Raw{Phone: "+27 11 111 1111"}, ignored: []string{"placeholder number"}, phone: "+27111111111"},
		{name: "zeros", raw: Raw{Phone: "0000000000"}, ignored: []string{"not a valid phone number for ZA"}, phone: "0000000000"},
		{name: "blocked number", raw: Raw{Phone: "+27115550000"}, ignored: []string{"blocked number"}, phone: "+27115550000"},
		{name: "unparseable phone kept as given", raw: Raw{Phone: "call reception"}, ignored: []string{"not a valid phone number for ZA"}, phone: "call reception"},
		{name: "empty", raw: Raw{Email: "  "}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x := Extract(c.raw, s)
			assert.Equal(t, c.keys, x.Keys)
			var reasons []string
			for _, i := range x.Ignored {
				reasons = append(reasons, i.Reason)
			}
			assert.Equal(t, c.ignored, reasons)
			assert.Equal(t, c.email, x.Email)
			assert.Equal(t, c.phone, x.Phone)
		})
	}
}

func TestResolve(t *testing.T) {
	a, b, c := uuid.MustParse("00000000-0000-0000-0000-00000000000a"), uuid.MustParse("00000000-0000-0000-0000-00000000000b"), uuid.MustParse("00000000-0000-0000-0000-00000000000c")
	email := Key{Email, "jane@mail.com"}
	phone := Key{Phone, "+27825551234"}
	auth := Key{AuthUser, "idp|1"}
	member := Key{SCLMember, "42"}
	player := Key{TeeTimePlayer, "p-9"}
	otherMember := Key{SCLMember, "43"}
	profiles := map[uuid.UUID]Profile{
		a: {CustomerID: a, FirstName: "Jane", LastName: "Doe", Email: "jane@mail.com", Keys: []Key{email, member}},
		b: {CustomerID: b, FirstName: "John", LastName: "Doe", Email: "john@mail.com", Keys: []Key{{Email, "john@mail.com"}, phone}},
		c: {CustomerID: c, FirstName: "Jan", LastName: "Doe", Email: "jan@mail.com", Keys: []Key{{Email, "jan@mail.com"}}},
	}
	s := DefaultSettings()
	cases := []struct {
		name       string
		keys       []Key
		holders    []Holder
		neighbours []Profile
		person     Name
		customer   uuid.UUID
		matchedBy  string
		confidence int
		link       []Key
		conflicts  []uuid.UUID
	}{
		{name: "nobody: new profile with every key", keys: []Key{email, phone},
			matchedBy: "new", link: []Key{email, phone}},
		{name: "auth user wins", keys: []Key{auth, email}, holders: []Holder{{auth, a}},
			customer: a, matchedBy: "authUserId", confidence: 100, link: []Key{email}},
		{name: "service id is an exact link", keys: []Key{player, email}, holders: []Holder{{player, a}, {email, a}},
			customer: a, matchedBy: "teetimePlayerId", confidence: 100},
		{name: "email", keys: []Key{email, player}, holders: []Holder{{email, a}},
			customer: a, matchedBy: "email", confidence: 95, link: []Key{player}},
		{name: "email and phone agree", keys: []Key{email, phone}, holders: []Holder{{email, a}, {phone, a}},
			customer: a, matchedBy: "email+phoneNumber", confidence: 99},
		{name: "phone alone", keys: []Key{phone}, holders: []Holder{{phone, b}},
			customer: b, matchedBy: "phoneNumber", confidence: 85},
		{name: "strongest key wins, the other pair goes to review", keys: []Key{auth, email}, holders: []Holder{{auth, b}, {email, a}},
			customer: b, matchedBy: "authUserId", confidence: 100, conflicts: []uuid.UUID{a}},
		{name: "household phone with another email: new profile sharing the number", keys: []Key{{Email, "sam@mail.com"}, phone}, holders: []Holder{{phone, b}},
			matchedBy: "new", link: []Key{{Email, "sam@mail.com"}, phone}},
		{name: "phone shared by two: no auto-link", keys: []Key{phone}, holders: []Holder{{phone, a}, {phone, b}},
			matchedBy: "new", link: []Key{phone}},
		{name: "phone shared to the limit: not indexed again", keys: []Key{phone}, holders: []Holder{{phone, a}, {phone, b}, {phone, c}},
			matchedBy: "new"},
		{name: "a different member id behind the same email is someone else", keys: []Key{otherMember, email}, holders: []Holder{{email, a}, {member, a}},
			matchedBy: "new", link: []Key{otherMember}, conflicts: []uuid.UUID{a}},
		{name: "fuzzy name at the same domain never links", keys: []Key{{Email, "j.doe@mail.com"}}, neighbours: []Profile{profiles[c], profiles[b]},
			person: Name{"Janet", "Doe"}, matchedBy: "new", link: []Key{{Email, "j.doe@mail.com"}}, conflicts: []uuid.UUID{c}},
		{name: "fuzzy initial", keys: []Key{{Email, "jd@mail.com"}}, neighbours: []Profile{profiles[a]},
			person: Name{"J", "DOE"}, matchedBy: "new", link: []Key{{Email, "jd@mail.com"}}, conflicts: []uuid.UUID{a}},
		{name: "different last name is not fuzzy", keys: []Key{{Email, "jd@mail.com"}}, neighbours: []Profile{profiles[a]},
			person: Name{"Jane", "Smith"}, matchedBy: "new", link: []Key{{Email, "jd@mail.com"}}},
		{name: "out of order: a booking's player id first, then player.created links it", keys: []Key{player, email, phone}, holders: []Holder{{player, c}},
			customer: c, matchedBy: "teetimePlayerId", confidence: 100, link: []Key{email, phone}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := Resolve(tc.keys, Candidates{Holders: tc.holders, Profiles: profiles, Neighbours: tc.neighbours}, tc.person, s)
			assert.Equal(t, tc.customer, d.Customer)
			assert.Equal(t, tc.matchedBy, d.MatchedBy)
			assert.Equal(t, tc.confidence, d.Confidence)
			assert.ElementsMatch(t, tc.link, d.Link)
			var others []uuid.UUID
			for _, c := range d.Conflicts {
				others = append(others, c.Other)
			}
			assert.ElementsMatch(t, tc.conflicts, others)
		})
	}
}

func TestSimilarName(t *testing.T) {
	cases := []struct {
		a, b Name
		want bool
	}{
		{Name{"Robert", "O'Brien"}, Name{"Rob", "OBrien"}, true},
		{Name{"Jon", "Smith"}, Name{"John", "Smith"}, false}, // three letters: no edit allowance
		{Name{"Johnn", "Smith"}, Name{"John", "Smith"}, true},
		{Name{"Anna", "Smith"}, Name{"Hannah", "Smith"}, false},
		{Name{"", "Smith"}, Name{"John", "Smith"}, false},
		{Name{"J", "Smith"}, Name{"John", "Smith"}, true},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, similarName(c.a, c.b), "%v %v", c.a, c.b)
	}
}

func TestSettingsValidate(t *testing.T) {
	assert.Empty(t, DefaultSettings().Validate())
	bad := Settings{DefaultRegion: "XX", SharedPhoneLimit: 0, BlockedEmails: []string{"nobody"}, ClubDomains: []string{"info@x.com"}}
	errs := bad.Validate()
	for _, f := range []string{"defaultRegion", "sharedPhoneLimit", "blockedEmails[0]", "clubDomains[0]"} {
		assert.Contains(t, errs, f)
	}
}
