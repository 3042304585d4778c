// Package identity decides whether an incoming person is someone the CRM
// already knows: it normalises identifiers and applies the matching rules of
// the specification (section 5) to what the identity index holds. It knows
// nothing of storage; the caller looks candidates up and passes them in.
package identity

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/nyaruka/phonenumbers"
)

// Kind is a kind of identifier.
type Kind string

// Identifier kinds, strongest first.
const (
	AuthUser         Kind = "authUserId"
	SCLMember        Kind = "sclMemberId"
	TeeTimePlayer    Kind = "teetimePlayerId"
	MessagingContact Kind = "messagingContactId"
	Email            Kind = "email"
	Phone            Kind = "phoneNumber"
)

// Order is the order in which kinds are tried.
var Order = []Kind{AuthUser, SCLMember, TeeTimePlayer, MessagingContact, Email, Phone}

// Confidence of a match by each kind, and of the combinations the
// specification names.
const (
	ConfidenceExact      = 100 // authUserId or a cross-service id
	ConfidenceEmail      = 95
	ConfidenceEmailPhone = 99
	ConfidencePhone      = 85
	ConfidenceFuzzy      = 60 // never links: review only
)

// Unique reports whether at most one profile may hold a key of this kind.
// Phones are shared by households, so they are not.
func (k Kind) Unique() bool { return k != Phone }

// Confidence answers the confidence of a match by k alone.
func (k Kind) Confidence() int {
	switch k {
	case Email:
		return ConfidenceEmail
	case Phone:
		return ConfidencePhone
	}
	return ConfidenceExact
}

// Key is one normalised identifier.
type Key struct {
	Kind  Kind   `json:"kind"`
	Value string `json:"value"`
}

func (k Key) String() string { return string(k.Kind) + ":" + k.Value }

// NormalizeEmail trims and lower-cases an address and reports whether it
// looks like one (a local part, an @ and a dotted domain).
func NormalizeEmail(s string) (string, bool) {
	e := strings.ToLower(strings.TrimSpace(s))
	local, domain, ok := strings.Cut(e, "@")
	if !ok || local == "" || !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") ||
		strings.ContainsAny(e, " \t\r\n,;<>") || strings.Count(e, "@") != 1 {
		return e, false
	}
	return e, true
}

// EmailDomain answers the domain of a normalised address.
func EmailDomain(email string) string {
	_, d, _ := strings.Cut(email, "@")
	return d
}

// NormalizePhone formats a number as E.164, reading national formats in
// region (ISO 3166 alpha-2) unless the number carries its country code. It
// reports false for anything that is not a valid number.
func NormalizePhone(s, region string) (string, bool) {
	raw := strings.TrimSpace(s)
	if raw == "" {
		return "", false
	}
	if strings.HasPrefix(raw, "00") { // international prefix common in ZA and GB
		raw = "+" + raw[2:]
	}
	n, err := phonenumbers.Parse(raw, strings.ToUpper(region))
	if err != nil || !phonenumbers.IsValidNumber(n) {
		return raw, false
	}
	return phonenumbers.Format(n, phonenumbers.E164), true
}

// Settings are a tenant's identity rules.
type Settings struct {
	// DefaultRegion reads national phone numbers (ISO 3166 alpha-2).
	DefaultRegion string `json:"defaultRegion"`
	// BlockedEmails never match. An entry is an address, a local part
	// followed by @ ("noreply@" blocks it at any domain), or @domain.
	BlockedEmails []string `json:"blockedEmails"`
	// BlockedPhones never match (E.164 or as the tenant writes them).
	BlockedPhones []string `json:"blockedPhones"`
	// ClubDomains are the clubs' own mail domains: their role addresses
	// (info@, office@, ...) are shared, so they never match.
	ClubDomains []string `json:"clubDomains"`
	// SharedPhoneLimit is how many profiles may hold one phone number
	// before it stops linking automatically (households share landlines).
	SharedPhoneLimit int `json:"sharedPhoneLimit"`
}

// DefaultSettings are a new tenant's settings.
func DefaultSettings() Settings {
	return Settings{
		DefaultRegion:    "ZA",
		BlockedEmails:    []string{"noreply@", "no-reply@", "donotreply@", "test@", "none@", "unknown@", "email@", "@example.com", "@example.org", "@test.com"},
		BlockedPhones:    []string{},
		ClubDomains:      []string{},
		SharedPhoneLimit: 3,
	}
}

// roleMailboxes are addresses a club shares among staff, never one person.
var roleMailboxes = []string{"info", "office", "admin", "reception", "proshop", "bookings", "accounts", "membership", "secretary", "manager", "golf"}

// Validate answers the problems with s, keyed by field name.
func (s Settings) Validate() map[string]string {
	errs := map[string]string{}
	if len(s.DefaultRegion) != 2 || phonenumbers.GetCountryCodeForRegion(strings.ToUpper(s.DefaultRegion)) == 0 {
		errs["defaultRegion"] = "must be an ISO 3166 alpha-2 region with a telephone country code, like ZA or GB"
	}
	if s.SharedPhoneLimit < 1 || s.SharedPhoneLimit > 100 {
		errs["sharedPhoneLimit"] = "must be from 1 to 100"
	}
	for i, e := range s.BlockedEmails {
		if strings.TrimSpace(e) == "" || !strings.Contains(e, "@") {
			errs[fmt.Sprintf("blockedEmails[%d]", i)] = "must be an address, a local part ending in @, or @domain"
		}
	}
	for i, d := range s.ClubDomains {
		if !strings.Contains(d, ".") || strings.Contains(d, "@") {
			errs[fmt.Sprintf("clubDomains[%d]", i)] = "must be a mail domain like royalgolf.co.za"
		}
	}
	return errs
}

// BlockedEmail reports why a normalised address must never match, or "".
func (s Settings) BlockedEmail(email string) string {
	local, domain, _ := strings.Cut(email, "@")
	for _, b := range s.BlockedEmails {
		b = strings.ToLower(strings.TrimSpace(b))
		switch {
		case b == email:
			return "blocked address"
		case strings.HasSuffix(b, "@") && local == strings.TrimSuffix(b, "@"):
			return "blocked mailbox " + b
		case strings.HasPrefix(b, "@") && domain == b[1:]:
			return "blocked domain " + b[1:]
		}
	}
	for _, d := range s.ClubDomains {
		if domain == strings.ToLower(d) {
			for _, r := range roleMailboxes {
				if local == r {
					return "club role address"
				}
			}
		}
	}
	return ""
}

// BlockedPhone reports why a normalised phone must never match, or "".
func (s Settings) BlockedPhone(e164 string) string {
	for _, b := range s.BlockedPhones {
		if n, ok := NormalizePhone(b, s.DefaultRegion); (ok && n == e164) || b == e164 {
			return "blocked number"
		}
	}
	digits := strings.TrimPrefix(e164, "+")
	if placeholderDigits(digits) {
		return "placeholder number"
	}
	return ""
}

// placeholderDigits spots numbers people type when made to give one: a run
// of one repeated digit, or an ascending run, after the country code.
func placeholderDigits(d string) bool {
	if len(d) < 7 {
		return true
	}
	tail := d[len(d)-7:]
	same, asc := true, true
	for i := 1; i < len(tail); i++ {
		same = same && tail[i] == tail[0]
		asc = asc && tail[i] == tail[i-1]+1
	}
	return same || asc
}

// Raw is an identity as an upstream event gives it.
type Raw struct {
	AuthUserID         string
	SCLMemberID        string
	TeeTimePlayerID    string
	MessagingContactID string
	Email              string
	Phone              string
	Country            string // ISO 3166 alpha-2, reads national phone numbers
}

// Ignored is an identifier given but not used for matching, and why.
type Ignored struct {
	Key    Key    `json:"key"`
	Reason string `json:"reason"`
}

// Extracted is what an identity yields: keys to match on, the email and
// phone to keep on the profile (normalised when possible, as given when
// not), and what was set aside.
type Extracted struct {
	Keys    []Key
	Email   string
	Phone   string
	Ignored []Ignored
}

// Extract normalises r under s.
func Extract(r Raw, s Settings) Extracted {
	var x Extracted
	add := func(k Kind, v string) {
		if v = strings.TrimSpace(v); v != "" {
			x.Keys = append(x.Keys, Key{k, v})
		}
	}
	add(AuthUser, r.AuthUserID)
	add(SCLMember, r.SCLMemberID)
	add(TeeTimePlayer, r.TeeTimePlayerID)
	add(MessagingContact, r.MessagingContactID)
	if strings.TrimSpace(r.Email) != "" {
		e, ok := NormalizeEmail(r.Email)
		x.Email = e
		switch reason := s.BlockedEmail(e); {
		case !ok:
			x.Ignored = append(x.Ignored, Ignored{Key{Email, e}, "not an email address"})
		case reason != "":
			x.Ignored = append(x.Ignored, Ignored{Key{Email, e}, reason})
		default:
			x.Keys = append(x.Keys, Key{Email, e})
		}
	}
	if strings.TrimSpace(r.Phone) != "" {
		region := r.Country
		if region == "" {
			region = s.DefaultRegion
		}
		p, ok := NormalizePhone(r.Phone, region)
		x.Phone = p
		switch reason := s.BlockedPhone(p); {
		case !ok:
			x.Phone = strings.TrimSpace(r.Phone)
			x.Ignored = append(x.Ignored, Ignored{Key{Phone, x.Phone}, "not a valid phone number for " + strings.ToUpper(region)})
		case reason != "":
			x.Ignored = append(x.Ignored, Ignored{Key{Phone, p}, reason})
		default:
			x.Keys = append(x.Keys, Key{Phone, p})
		}
	}
	return x
}

// FoldName lower-cases a name and drops everything but letters, so that
// "O'Brien" and "obrien" compare equal; the customers read model's
// last_name_folded column folds alike (for fuzzy neighbours).
func FoldName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if unicode.IsLetter(r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}
