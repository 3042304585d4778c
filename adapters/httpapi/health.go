package httpapi

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is a dependency /readyz asks after.
type Check struct {
	Name string
	Ping func(ctx context.Context) error
}

type health struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks,omitempty"`
}

// Operability registers /healthz (the process answers), /readyz (every
// check answers within two seconds) and /metrics (Prometheus).
func (a *API) Operability(g prometheus.Gatherer, checks ...Check) {
	a.Handle(Route{Method: http.MethodGet, Path: "/healthz", Public: true, Summary: "Liveness: the process answers", Tags: []string{"meta"}, Response: health{}},
		func(w http.ResponseWriter, r *http.Request) error {
			WriteJSON(w, http.StatusOK, health{Status: "ok"})
			return nil
		})
	a.Handle(Route{Method: http.MethodGet, Path: "/readyz", Public: true, Summary: "Readiness: PostgreSQL, Redis and the event store answer", Tags: []string{"meta"}, Response: health{}, Errors: []int{http.StatusServiceUnavailable}},
		func(w http.ResponseWriter, r *http.Request) error {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			res := health{Status: "ready", Checks: map[string]string{}}
			var mu sync.Mutex
			var wg sync.WaitGroup
			for _, c := range checks {
				wg.Add(1)
				go func() {
					defer wg.Done()
					state := "ok"
					if err := c.Ping(ctx); err != nil {
						state = "failing: " + err.Error()
					}
					mu.Lock()
					res.Checks[c.Name] = state
					if state != "ok" {
						res.Status = "not ready"
					}
					mu.Unlock()
				}()
			}
			wg.Wait()
			status := http.StatusOK
			if res.Status != "ready" {
				status = http.StatusServiceUnavailable
			}
			WriteJSON(w, status, res)
			return nil
		})
	metrics := promhttp.HandlerFor(g, promhttp.HandlerOpts{})
	a.Handle(Route{Method: http.MethodGet, Path: "/metrics", Public: true, Summary: "Prometheus metrics (text exposition format)", Tags: []string{"meta"}},
		func(w http.ResponseWriter, r *http.Request) error {
			metrics.ServeHTTP(w, r)
			return nil
		})
}
