package servicebench

import (
	"fmt"
	"slices"
	"time"
)

// Latency summarises measured durations, in milliseconds.
type Latency struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50Ms"`
	P90   float64 `json:"p90Ms"`
	P99   float64 `json:"p99Ms"`
	Max   float64 `json:"maxMs"`
	Mean  float64 `json:"meanMs"`
}

// summarize sorts ds and answers its summary.
func summarize(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	q := func(p float64) float64 { return ms(ds[int(p*float64(len(ds)-1)+0.5)]) }
	return Latency{
		Count: len(ds), P50: q(0.50), P90: q(0.90), P99: q(0.99),
		Max: ms(ds[len(ds)-1]), Mean: ms(sum / time.Duration(len(ds))),
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (l *Latency) String() string {
	if l == nil || l.Count == 0 {
		return "-"
	}
	return fmt.Sprintf("p50 %s, p99 %s", fmtMs(l.P50), fmtMs(l.P99))
}

// Detail answers every quantile.
func (l *Latency) Detail() string {
	if l == nil || l.Count == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %s, p90 %s, p99 %s, max %s, mean %s", fmtMs(l.P50), fmtMs(l.P90), fmtMs(l.P99), fmtMs(l.Max), fmtMs(l.Mean))
}

func fmtMs(v float64) string {
	switch {
	case v < 1:
		return fmt.Sprintf("%.2f ms", v)
	case v < 100:
		return fmt.Sprintf("%.1f ms", v)
	default:
		return fmt.Sprintf("%.0f ms", v)
	}
}

func fmtRate(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%s/s", thousands(int64(v+0.5)))
	default:
		return fmt.Sprintf("%.1f/s", v)
	}
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
}

// thousands writes n with comma separators: 1,234,567.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	out := make([]byte, 0, len(s)+len(s)/3)
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func ratio(service, raw float64) float64 {
	if raw == 0 {
		return 0
	}
	return service / raw
}
