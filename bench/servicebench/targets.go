package servicebench

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// Check is one performance target of the issue against the run's figure.
// Targets are set for the large scale on 2 cores; at other scales they
// are shown for information.
type Check struct {
	Name   string  `json:"name"`
	Target string  `json:"target"`
	Value  string  `json:"value"`
	Met    *bool   `json:"met"` // nil: no figure (not built, or not measured)
	Figure float64 `json:"figure,omitempty"`
}

func check(name, target string, value string, figure float64, met bool) Check {
	return Check{Name: name, Target: target, Value: value, Figure: figure, Met: &met}
}

func missing(name, target, why string) Check {
	return Check{Name: name, Target: target, Value: why}
}

// checks compares res with the targets.
func checks(res Result) []Check {
	var out []Check
	in := res.Ingest
	if res.Resumed != "" && in.PerSec == 0 {
		out = append(out, missing("ingest end to end", "≥ 10,000 events/s", "not run: resumed on "+res.Resumed))
	} else {
		out = append(out, check("ingest end to end", "≥ 10,000 events/s", fmtRate(in.PerSec), in.PerSec, in.PerSec >= 10_000))
	}
	v := res.Visible
	if v.Latency.Count > 0 {
		out = append(out, check("event → visible p99 at 1,000 events/s", "≤ 250 ms", fmtMs(v.Latency.P99), v.Latency.P99,
			v.Latency.P99 <= 250 && v.Missing == 0 && v.Achieved >= 0.95*float64(v.Rate)))
	} else {
		out = append(out, missing("event → visible p99 at 1,000 events/s", "≤ 250 ms", "nothing became visible"))
	}
	for _, q := range res.Queries {
		if q.Name == "profile GET" {
			out = append(out, check("profile GET p99, HTTP, 8 clients", "≤ 2 ms", fmtMs(q.Service.P99), q.Service.P99, q.Service.P99 <= 2))
		}
	}
	if len(res.Timeline.Pages) == 0 {
		out = append(out, missing("timeline page p99, HTTP, 8 clients", "≤ 10 ms", "not built yet"))
	}
	for _, q := range res.Timeline.Pages {
		out = append(out, check(q.Name+" p99, HTTP, 8 clients", "≤ 10 ms", fmtMs(q.Service.P99), q.Service.P99, q.Service.P99 <= 10))
	}
	if sv := res.Segment.Service; sv != nil {
		out = append(out, check(fmt.Sprintf("segment refresh of the example segment over every profile (%d clubs' segments)", sv.Segments), "≤ 1.5 s",
			fmt.Sprintf("%.2f s", sv.RefreshAllSeconds), sv.RefreshAllSeconds, sv.RefreshAllSeconds <= 1.5))
	} else {
		out = append(out, missing("segment refresh of the example segment", "≤ 1.5 s", "not built yet"))
	}
	if m := v.Membership; m != nil && m.Count > 0 {
		out = append(out, check("event → segment membership change p99", "≤ 1 s", fmtMs(m.P99), m.P99, m.P99 <= 1000 && v.MembershipMissing == 0))
	} else {
		out = append(out, missing("event → segment membership change", "≤ 1 s", "not measured"))
	}
	for _, r := range res.Rebuilds {
		if r.Skipped == "" {
			out = append(out, check("projection rebuild: "+r.Name, "≥ 40,000 events/s", fmtRate(r.PerSec), r.PerSec, r.PerSec >= 40_000))
		}
	}
	peak := max(res.PeakRSSIngest, res.PeakRSSQueries)
	out = append(out, check("crm serve peak RSS", "≤ 256 MiB", fmtBytes(peak), float64(peak)/(1<<20), peak <= 256<<20))
	return out
}

// PrintTargets writes the targets table.
func PrintTargets(w io.Writer, cs []Check) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "target\tgoal\tmeasured\t\t")
	for _, c := range cs {
		verdict := "-"
		if c.Met != nil {
			verdict = "met"
			if !*c.Met {
				verdict = "MISSED"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", c.Name, c.Target, c.Value, verdict)
	}
	tw.Flush()
}
