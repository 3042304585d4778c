package timeline

import (
	"strconv"
	"strings"
	"time"
)

// moneyFormat is how a currency is written where the club's staff would
// write it.
type moneyFormat struct {
	symbol string
	after  bool   // the symbol follows the amount
	space  bool   // a space separates symbol and amount
	group  string // thousands separator
	point  string // decimal separator
}

var moneyFormats = map[string]moneyFormat{
	"ZAR": {symbol: "R", space: true, group: " ", point: "."},
	"NAD": {symbol: "N$", group: " ", point: "."},
	"BWP": {symbol: "P", space: true, group: " ", point: "."},
	"GBP": {symbol: "£", group: ",", point: "."},
	"EUR": {symbol: "€", group: ",", point: "."},
	"USD": {symbol: "$", group: ",", point: "."},
	"AUD": {symbol: "A$", group: ",", point: "."},
	"NZD": {symbol: "NZ$", group: ",", point: "."},
	"CAD": {symbol: "CA$", group: ",", point: "."},
	"SGD": {symbol: "S$", group: ",", point: "."},
	"HKD": {symbol: "HK$", group: ",", point: "."},
	"CHF": {symbol: "CHF", space: true, group: ",", point: "."},
	"AED": {symbol: "AED", space: true, group: ",", point: "."},
	"INR": {symbol: "₹", group: ",", point: "."},
	"JPY": {symbol: "¥", group: ",", point: "."},
	"SEK": {symbol: "kr", after: true, space: true, group: " ", point: ","},
	"NOK": {symbol: "kr", after: true, space: true, group: " ", point: ","},
	"DKK": {symbol: "kr.", after: true, space: true, group: ".", point: ","},
}

// minorDigits answers how many decimals a currency's minor unit has
// (ISO 4217): most have two.
func minorDigits(code string) int {
	switch code {
	case "JPY", "KRW", "ISK", "CLP", "VND", "UGX", "XOF", "XAF", "XPF", "RWF", "PYG", "KMF", "GNF", "BIF", "DJF", "VUV":
		return 0
	case "BHD", "KWD", "OMR", "JOD", "TND", "IQD", "LYD":
		return 3
	}
	return 2
}

// FormatMoney writes an amount in minor units (cents) of an ISO 4217
// currency the way a club's staff would: ZAR as "R 1 250.00", GBP as
// "£1,250.00", EUR as "€1,250.00", USD as "$1,250.00", JPY as "¥1,250".
// A currency without a format of its own is written "1,250.00 XYZ", and
// an amount with no currency as the bare number.
func FormatMoney(minor int64, currency string) string {
	code := strings.ToUpper(strings.TrimSpace(currency))
	f, known := moneyFormats[code]
	if !known {
		f = moneyFormat{symbol: code, after: true, space: true, group: ",", point: "."}
	}
	neg := minor < 0
	u := uint64(minor)
	if neg {
		u = uint64(-minor) // two's complement: right for math.MinInt64 too
	}
	digits := minorDigits(code)
	var div uint64 = 1
	for range digits {
		div *= 10
	}
	whole, frac := u/div, u%div
	num := groupThousands(strconv.FormatUint(whole, 10), f.group)
	if digits > 0 {
		fs := strconv.FormatUint(frac, 10)
		num += f.point + strings.Repeat("0", digits-len(fs)) + fs
	}
	sym, sep := f.symbol, ""
	if f.space {
		sep = " "
	}
	var out string
	switch {
	case sym == "":
		out = num
	case f.after:
		out = num + sep + sym
	default:
		out = sym + sep + num
	}
	if neg {
		out = "-" + out
	}
	return out
}

func groupThousands(s, sep string) string {
	if len(s) <= 3 {
		return s
	}
	var b strings.Builder
	head := len(s) % 3
	if head > 0 {
		b.WriteString(s[:head])
	}
	for i := head; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteString(sep)
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}

// FormatHandicap writes a handicap index as golfers do: one decimal, and a
// plus sign for a handicap better than scratch (stored negative).
func FormatHandicap(h float64) string {
	if h < 0 {
		return "+" + strconv.FormatFloat(-h, 'f', 1, 64)
	}
	return strconv.FormatFloat(h, 'f', 1, 64)
}

// teeTimeLayouts are the forms teeTimeAt is read in: RFC 3339, or a local
// date-time read in the tenant's zone.
var teeTimeLayouts = []string{"2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02 15:04"}

// FormatTeeTime writes a tee time as "14 Mar, 07:30" in loc, with the year
// when it is not the year of ref ("14 Mar 2027, 07:30"). Text it cannot
// read as a time is answered as it was given.
func FormatTeeTime(s string, ref time.Time, loc *time.Location) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if loc == nil {
		loc = time.UTC
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		for _, l := range teeTimeLayouts {
			if t, err = time.ParseInLocation(l, s, loc); err == nil {
				break
			}
		}
	}
	if err != nil {
		return s
	}
	return FormatWhen(t, ref, loc)
}

// FormatWhen writes t as "14 Mar, 07:30" in loc, adding the year when it
// differs from ref's.
func FormatWhen(t, ref time.Time, loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	t = t.In(loc)
	if !ref.IsZero() && ref.In(loc).Year() != t.Year() {
		return t.Format("2 Jan 2006, 15:04")
	}
	return t.Format("2 Jan, 15:04")
}

// FormatScore writes a 0–100 score as staff read it: one decimal, none
// when whole (92.5, 80).
func FormatScore(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
