package identity

import (
	"sort"
	"strings"

	"github.com/google/uuid"
)

// Holder is a profile the index says holds a key.
type Holder struct {
	Key        Key
	CustomerID uuid.UUID
}

// Profile is what the resolver needs to know of a profile that holds one of
// the keys, or that is a fuzzy neighbour.
type Profile struct {
	CustomerID uuid.UUID
	FirstName  string
	LastName   string
	Email      string
	Keys       []Key // every key the index links to the profile
}

// Candidates is what the index answered for an identity.
type Candidates struct {
	Holders  []Holder
	Profiles map[uuid.UUID]Profile
	// Neighbours are profiles whose email shares the identity's email
	// domain and whose last name folds to the same letters.
	Neighbours []Profile
}

// Name is a person's name as an event gives it.
type Name struct{ First, Last string }

// Conflict is a pair of profiles a person should look at.
type Conflict struct {
	Other      uuid.UUID `json:"other"`
	Key        Key       `json:"key"`
	Reason     string    `json:"reason"`
	Confidence int       `json:"confidence"`
}

// Decision is the outcome of resolving an identity.
type Decision struct {
	// Customer is the profile the identity belongs to; uuid.Nil means a
	// new profile is to be made.
	Customer   uuid.UUID
	MatchedBy  string // the key kind(s) that decided, e.g. "email+phoneNumber"; "new" when none
	Confidence int
	// Link lists the keys to reserve for the profile: the index holds them
	// for nobody (or, for a shared phone, not for this profile) yet.
	Link []Key
	// Held lists the keys the index already links to the profile. The
	// profile records them too if it lacks them: an earlier attempt may have
	// reserved them and then lost its append.
	Held      []Key
	Conflicts []Conflict
}

// New reports whether the decision makes a new profile.
func (d Decision) New() bool { return d.Customer == uuid.Nil }

// Resolve applies the matching rules to an identity's keys: the strongest
// kind that points at exactly one usable profile decides (authUserId, then
// the cross-service ids, then email, then phone); email and phone agreeing
// raise the confidence to 99. Keys that point elsewhere never move: the pair
// goes to review. A fuzzy name at the same email domain never links.
func Resolve(keys []Key, c Candidates, name Name, s Settings) Decision {
	held := map[Key][]uuid.UUID{}
	for _, h := range c.Holders {
		held[h.Key] = appendUnique(held[h.Key], h.CustomerID)
	}
	limit := s.SharedPhoneLimit
	if limit < 1 {
		limit = DefaultSettings().SharedPhoneLimit
	}
	sorted := append([]Key(nil), keys...)
	sort.SliceStable(sorted, func(i, j int) bool { return rank(sorted[i].Kind) < rank(sorted[j].Kind) })

	var d Decision
	var decidedBy Key
	var rejected []Conflict
	for _, k := range sorted {
		hs := held[k]
		if len(hs) == 0 {
			continue
		}
		if k.Kind == Phone && (len(hs) > 1 || phoneNamesSomeoneElse(k, hs[0], sorted, held, c)) {
			// Several profiles share the number, or the event's own email
			// says it is another person in the household: no auto-link.
			continue
		}
		if other, clash := serviceIDClash(hs[0], sorted, held, c); clash {
			// The profile already carries a different id for a service the
			// event names: a different person who shares this key.
			rejected = append(rejected, Conflict{Other: hs[0], Key: k, Reason: "shares " + string(k.Kind) + " but has another " + string(other), Confidence: k.Kind.Confidence()})
			continue
		}
		d.Customer, d.MatchedBy, d.Confidence, decidedBy = hs[0], string(k.Kind), k.Kind.Confidence(), k
		break
	}

	for _, k := range sorted {
		hs := held[k]
		mine := d.Customer != uuid.Nil && contains(hs, d.Customer)
		switch {
		case mine:
			d.Held = append(d.Held, k)
			if k.Kind == Phone && decidedBy.Kind == Email {
				d.MatchedBy, d.Confidence = "email+phoneNumber", ConfidenceEmailPhone
			}
		case k.Kind == Phone:
			if len(hs) < limit {
				d.Link = append(d.Link, k)
			}
		case len(hs) == 0:
			d.Link = append(d.Link, k)
		default:
			for _, other := range hs {
				if other != d.Customer {
					d.Conflicts = append(d.Conflicts, Conflict{Other: other, Key: k, Reason: string(k.Kind) + " belongs to another profile", Confidence: k.Kind.Confidence()})
				}
			}
		}
	}
	for _, r := range rejected {
		if !hasConflict(d.Conflicts, r.Other) {
			d.Conflicts = append(d.Conflicts, r)
		}
	}
	if d.New() {
		d.MatchedBy = "new"
		d.Confidence = 0
		for _, n := range c.Neighbours {
			if similarName(name, Name{n.FirstName, n.LastName}) && !hasConflict(d.Conflicts, n.CustomerID) {
				d.Conflicts = append(d.Conflicts, Conflict{Other: n.CustomerID, Key: Key{Email, EmailDomain(n.Email)}, Reason: "similar name at the same email domain", Confidence: ConfidenceFuzzy})
			}
		}
	}
	return d
}

// phoneNamesSomeoneElse reports whether the event carries an email the
// phone's holder does not have while the holder has one of its own: then a
// shared number, not a person, links them.
func phoneNamesSomeoneElse(phone Key, holder uuid.UUID, keys []Key, held map[Key][]uuid.UUID, c Candidates) bool {
	var email *Key
	for i := range keys {
		if keys[i].Kind == Email {
			email = &keys[i]
		}
	}
	if email == nil || contains(held[*email], holder) {
		return false
	}
	for _, k := range c.Profiles[holder].Keys {
		if k.Kind == Email {
			return true
		}
	}
	return false
}

// serviceIDClash reports whether the profile holds, for a service whose id
// the event carries, a different id.
func serviceIDClash(customer uuid.UUID, keys []Key, held map[Key][]uuid.UUID, c Candidates) (Kind, bool) {
	p, ok := c.Profiles[customer]
	if !ok {
		return "", false
	}
	for _, k := range keys {
		if !exact(k.Kind) || contains(held[k], customer) {
			continue
		}
		for _, pk := range p.Keys {
			if pk.Kind == k.Kind && pk.Value != k.Value {
				return k.Kind, true
			}
		}
	}
	return "", false
}

func exact(k Kind) bool {
	return k == AuthUser || k == SCLMember || k == TeeTimePlayer || k == MessagingContact
}

func rank(k Kind) int {
	for i, o := range Order {
		if o == k {
			return i
		}
	}
	return len(Order)
}

// similarName reports whether two names plausibly belong to one person:
// the same last name, and first names equal, one a prefix of the other
// ("Rob", "Robert"), an initial, or one typing slip apart.
func similarName(a, b Name) bool {
	la, lb := FoldName(a.Last), FoldName(b.Last)
	fa, fb := FoldName(a.First), FoldName(b.First)
	if la == "" || la != lb || fa == "" || fb == "" {
		return false
	}
	if fa == fb {
		return true
	}
	short, long := fa, fb
	if len(short) > len(long) {
		short, long = long, short
	}
	if len(short) == 1 || len(short) >= 3 {
		if strings.HasPrefix(long, short) {
			return true
		}
	}
	return len(short) >= 4 && editDistance(fa, fb) <= 1
}

// editDistance is the Levenshtein distance of two short strings.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur := make([]int, len(rb)+1)
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(rb)]
}

func contains(ids []uuid.UUID, id uuid.UUID) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func appendUnique(ids []uuid.UUID, id uuid.UUID) []uuid.UUID {
	if contains(ids, id) {
		return ids
	}
	return append(ids, id)
}

func hasConflict(cs []Conflict, other uuid.UUID) bool {
	for _, c := range cs {
		if c.Other == other {
			return true
		}
	}
	return false
}
