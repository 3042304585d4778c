//go:build crmbench

package main

import (
	"bytes"
	"log/slog"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof on http.DefaultServeMux
	"os"
	"runtime/pprof"
	"sync"
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
	p := &phaseProfile{}
	http.HandleFunc("POST /bench/cpu/start", p.start)
	http.HandleFunc("POST /bench/cpu/stop", p.stop)
	go func() {
		if err := http.ListenAndServe(addr, nil); err != nil {
			slog.Error("bench pprof listener", slog.String("addr", addr), slog.Any("error", err))
		}
	}()
}

// phaseProfile is a CPU profile the benchmark starts when a phase begins
// and stops when it ends, so that it covers the phase exactly:
// /debug/pprof/profile runs for a number of seconds fixed beforehand,
// which a phase whose length is not known overran into the next one.
type phaseProfile struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	running bool
}

func (p *phaseProfile) start(w http.ResponseWriter, _ *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running {
		http.Error(w, "a profile is running", http.StatusConflict)
		return
	}
	p.buf.Reset()
	if err := pprof.StartCPUProfile(&p.buf); err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	p.running = true
	w.WriteHeader(http.StatusNoContent)
}

func (p *phaseProfile) stop(w http.ResponseWriter, _ *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.running {
		http.Error(w, "no profile is running", http.StatusConflict)
		return
	}
	pprof.StopCPUProfile()
	p.running = false
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(p.buf.Bytes()) //nolint:errcheck // the benchmark reports a short profile
}
