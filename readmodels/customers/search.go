package customers

import (
	"strconv"
	"strings"
	"unicode"

	"github.com/nyaruka/phonenumbers"

	"github.com/clubcrm/crm/domain/identity"
)

// MaxSearchWords bounds how many words of q a search uses; the rest are
// ignored, since every word costs an index probe.
const MaxSearchWords = 8

// searchQuery answers the to_tsquery('simple', ...) text for a free-text
// search, or "" when q holds nothing to search for: every word of q must
// match the start of a word of the profile (its names, email and phone),
// and when q reads as a phone number, matching the start of the number's
// international digits will do instead. region reads national numbers.
//
// Each word goes into the query as a quoted lexeme, so nothing the caller
// types can add operators: the text search parser sees it as plain text.
func searchQuery(q, region string) string {
	var words []string
	for _, w := range strings.Fields(q) {
		if len(words) == MaxSearchWords {
			break
		}
		if !strings.ContainsFunc(w, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }) {
			continue // would parse to no lexeme at all
		}
		words = append(words, prefixLexeme(w))
	}
	all := strings.Join(words, " & ")
	digits := phoneDigits(q, region)
	switch {
	case digits == "":
		return all
	case all == "":
		return prefixLexeme(digits)
	}
	return "(" + all + ") | " + prefixLexeme(digits)
}

func prefixLexeme(w string) string {
	w = strings.ReplaceAll(w, `\`, `\\`)
	w = strings.ReplaceAll(w, `'`, `''`)
	return "'" + w + "':*"
}

// phoneDigits answers the international digits (no +) q stands for when it
// looks like a whole or partial phone number, or "". The search column holds
// each phone number's E.164 digits as a word, so a prefix of them finds it.
func phoneDigits(q, region string) string {
	q = strings.TrimSpace(q)
	var digits strings.Builder
	for _, r := range q {
		switch {
		case r >= '0' && r <= '9':
			digits.WriteRune(r)
		case r == ' ' || r == '-' || r == '(' || r == ')' || r == '.' || r == '/' || (r == '+' && digits.Len() == 0):
		default:
			return ""
		}
	}
	d := digits.String()
	if len(d) < 4 {
		return ""
	}
	if region == "" {
		region = identity.DefaultSettings().DefaultRegion
	}
	if n, ok := identity.NormalizePhone(q, region); ok {
		return strings.TrimPrefix(n, "+")
	}
	// A partial number: read the prefixes people dial by hand.
	switch {
	case strings.HasPrefix(q, "+"):
		return d
	case strings.HasPrefix(d, "00"):
		return d[2:]
	case strings.HasPrefix(d, "0"):
		if cc := phonenumbers.GetCountryCodeForRegion(strings.ToUpper(region)); cc > 0 {
			return strconv.Itoa(cc) + d[1:]
		}
	}
	return d
}
