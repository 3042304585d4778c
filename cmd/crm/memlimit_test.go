package main

import (
	"io"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"testing"
)

// TestGCPercentUnderLimit: the collector's target rises with a memory
// limit in force, unless GOGC says otherwise, and stays where it was
// without a limit. It changes process-wide settings, so it runs alone and
// puts them back.
func TestGCPercentUnderLimit(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	gcPercent := func() int {
		p := debug.SetGCPercent(100)
		debug.SetGCPercent(p)
		return p
	}
	before, limit := gcPercent(), debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetGCPercent(before)
		debug.SetMemoryLimit(limit)
	})
	for _, tc := range []struct {
		name  string
		gogc  string
		limit int64
		want  int
	}{
		{"limit", "", 200 << 20, gcPercentUnderLimit},
		{"limit and GOGC", "150", 200 << 20, 100},
		{"no limit", "", 0, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetGCPercent(100)
			debug.SetMemoryLimit(math.MaxInt64)
			if tc.gogc != "" {
				t.Setenv("GOGC", tc.gogc)
			} else if v, ok := os.LookupEnv("GOGC"); ok {
				os.Unsetenv("GOGC")
				t.Cleanup(func() { os.Setenv("GOGC", v) })
			}
			applyMemoryLimit(tc.limit, log)
			if got := gcPercent(); got != tc.want {
				t.Errorf("GC percent %d, want %d", got, tc.want)
			}
		})
	}
}
