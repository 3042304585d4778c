package segment

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MaxWindow bounds a duration: ten years.
const MaxWindow = 10 * 365 * 24 * time.Hour

// ParseDuration reads a window such as "30d": a whole number followed by
// m (minutes), h (hours), d (days) or w (weeks). A day is 24 hours, so
// "30d" is the 720 hours before the refresh.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	bad := fmt.Errorf("%q is not a duration: use a whole number and m, h, d or w, such as \"30d\" or \"12h\"", s)
	if len(s) < 2 {
		return 0, bad
	}
	var unit time.Duration
	switch s[len(s)-1] {
	case 'm':
		unit = time.Minute
	case 'h':
		unit = time.Hour
	case 'd':
		unit = 24 * time.Hour
	case 'w':
		unit = 7 * 24 * time.Hour
	default:
		return 0, bad
	}
	n, err := strconv.ParseInt(s[:len(s)-1], 10, 64)
	if err != nil || n <= 0 {
		return 0, bad
	}
	if n > int64(MaxWindow/unit) {
		return 0, fmt.Errorf("%q is longer than ten years", s)
	}
	return time.Duration(n) * unit, nil
}
