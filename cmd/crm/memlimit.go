package main

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// memoryUnits are the suffixes GOMEMLIMIT takes, longest first.
var memoryUnits = []struct {
	suffix string
	shift  uint
}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}

// parseMemoryLimit reads a limit the way GOMEMLIMIT is written: a whole
// number of bytes with an optional unit (B, KiB, MiB, GiB, TiB), or "off"
// (0: no limit).
func parseMemoryLimit(v string) (int64, error) {
	if v == "off" {
		return 0, nil
	}
	num, shift := v, uint(0)
	for _, u := range memoryUnits {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			num, shift = n, u.shift
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)>>shift {
		return 0, fmt.Errorf("%q: want a positive size such as 200MiB or 1GiB, or off", v)
	}
	return n << shift, nil
}

func checkMemoryLimit(v string) error {
	_, err := parseMemoryLimit(v)
	return err
}

// applyMemoryLimit sets the runtime's soft memory limit unless GOMEMLIMIT
// already did. Without one, the garbage collector lets the heap grow to
// twice what is live before collecting: ingesting at 1,900 events/s, crm
// serve peaked at 266 MiB; with a 200 MiB limit it peaked at 221 MiB at the
// same rate (docs/performance.md). The limit is soft: a service whose live
// data outgrows it keeps running, the collector working harder (at most
// about half the CPU) rather than failing.
func applyMemoryLimit(limit int64, log *slog.Logger) {
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		log.Info("memory limit from GOMEMLIMIT", "limit", v)
		applyGCPercent(log)
		return
	}
	if limit <= 0 {
		return
	}
	debug.SetMemoryLimit(limit)
	log.Info("memory limit", "bytes", limit)
	applyGCPercent(log)
}

// gcPercentUnderLimit is the collector's target while a memory limit holds
// the heap. At the default of 100 it collects whenever the heap has
// doubled what is live, about twice a second while ingesting at 200,000
// people, long before the heap nears the limit; with the limit as the
// bound, the heap may use the room under it. Together with a smaller
// profile cache (a smaller live heap, so more room): crm 0.44 -> 0.35 s of
// processor time per 1,000 events ingested, the collector's share of the
// machine 10% -> 5%, the same peak RSS. Either change alone did nothing
// measurable (docs/performance.md, 2026-12-06, midday).
const gcPercentUnderLimit = 300

// applyGCPercent sets gcPercentUnderLimit unless GOGC is set.
func applyGCPercent(log *slog.Logger) {
	if v := os.Getenv("GOGC"); v != "" {
		log.Info("garbage collector target from GOGC", "percent", v)
		return
	}
	debug.SetGCPercent(gcPercentUnderLimit)
	log.Info("garbage collector target", "percent", gcPercentUnderLimit)
}
