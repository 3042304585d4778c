//go:build crmbench

package main

import (
	"log/slog"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof on http.DefaultServeMux
	"os"
)

// Only in binaries built with -tags crmbench, as cmd/crmbench builds crm:
// when CRM_BENCH_PPROF_ADDR is set, net/http/pprof answers there, on a
// listener of its own (the API never uses http.DefaultServeMux), so the
// benchmark can take CPU profiles of the service under load. Release
// builds carry none of this.
func init() {
	addr := os.Getenv("CRM_BENCH_PPROF_ADDR")
	if addr == "" {
		return
	}
	go func() {
		if err := http.ListenAndServe(addr, nil); err != nil {
			slog.Error("bench pprof listener", slog.String("addr", addr), slog.Any("error", err))
		}
	}()
}
