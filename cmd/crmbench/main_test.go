package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clubcrm/crm/bench/servicebench"
	"github.com/clubcrm/crm/bench/storebench"
)

// TestSmoke runs the whole harness at the smoke scale (1,000 people,
// 10,000 events, 6,000 of them through crm serve and the rest written
// straight into the event store, as at the large scale) against the local
// PostgreSQL and Redis: it checks that
// every phase runs and yields figures, never what the figures are (that is
// the benchmark's business, at the large scale). BENCH_SCALE=small takes
// a few minutes on a loaded 2-core machine, too long for make test.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs crm serve end to end for about a minute")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	out := filepath.Join(t.TempDir(), "latest.json")
	var stdout, stderr bytes.Buffer
	rep, err := run(ctx, []string{"-scale", "smoke", "-out", out}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("crmbench: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), lastLines(stderr.String(), 40))
	}
	t.Log(stdout.String())

	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var written Report
	if err := json.Unmarshal(b, &written); err != nil {
		t.Fatalf("report: %v", err)
	}
	if written.CPUs == 0 || written.GoVersion == "" || written.PostgresVersion == "" || written.Scale != "smoke" {
		t.Errorf("report lacks the machine: %+v", written)
	}
	if len(rep.Sections) != len(sections) {
		t.Fatalf("ran %d sections, want %d", len(rep.Sections), len(sections))
	}
	for _, s := range rep.Sections {
		if s.Error != "" {
			t.Errorf("section %s: %s", s.Name, s.Error)
		}
	}
	store, ok := rep.Sections[0].Result.(storebench.Result)
	if !ok || store.AppendRate <= 0 {
		t.Errorf("eventstore section: %+v", rep.Sections[0].Result)
	}
	svc, ok := rep.Sections[1].Result.(servicebench.Result)
	if !ok {
		t.Fatalf("service section: %T", rep.Sections[1].Result)
	}
	if svc.Ingest.Events != scales["smoke"].IngestEvents || svc.Ingest.PerSec <= 0 || svc.Ingest.DeadLetters != 0 {
		t.Errorf("ingest: %+v", svc.Ingest)
	}
	if !svc.Settle.Settled {
		t.Errorf("the scheduler did not catch up before the queries: %+v", svc.Settle)
	}
	if c := svc.Ingest.CPU; c == nil || c.CRM <= 0 || c.Busy <= 0 {
		t.Errorf("ingest processor time: %+v", c)
	}
	// Smoke writes part of the history without crm serve, as large does.
	if d := svc.Direct; d == nil || d.Straight == 0 || d.Events != scales["smoke"].Events-scales["smoke"].IngestEvents {
		t.Errorf("direct write: %+v", svc.Direct)
	}
	for _, r := range svc.Ingest.Raw {
		if r.PerSec <= 0 || r.Ratio <= 0 {
			t.Errorf("ingest baseline: %+v", r)
		}
	}
	if svc.Profiles < int64(scales["smoke"].People)/2 {
		t.Errorf("%d profiles of %d people", svc.Profiles, scales["smoke"].People)
	}
	for _, q := range svc.Queries {
		if q.Service.Count == 0 || q.Raw == nil || q.Raw.Count == 0 || q.Statuses["200"] == 0 {
			t.Errorf("%s: %+v", q.Name, q)
		}
	}
	if v := svc.Visible; v.Latency.Count == 0 || v.Missing != 0 || v.Recorded.Count != v.Sent || v.Projected.Count != v.Latency.Count ||
		v.Membership == nil || v.Membership.Count == 0 || v.MembershipMissing != 0 {
		t.Errorf("event → visible: %+v", svc.Visible)
	}
	rebuilt := 0
	for _, r := range svc.Rebuilds {
		if r.Skipped == "" {
			rebuilt++
			if r.PerSec <= 0 {
				t.Errorf("rebuild %s: %+v", r.Name, r)
			}
		}
	}
	if rebuilt == 0 {
		t.Error("no read model was rebuilt")
	}
	if svc.PeakRSSIngest == 0 || svc.PeakRSSQueries == 0 || svc.Sizes.ReadModels == 0 {
		t.Errorf("rss %d/%d, read models %d bytes", svc.PeakRSSIngest, svc.PeakRSSQueries, svc.Sizes.ReadModels)
	}
	if len(svc.Targets) == 0 || !strings.Contains(stdout.String(), "target") {
		t.Error("no targets table")
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
