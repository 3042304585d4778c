package projections

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clubcrm/crm/eventstore"
)

// metrics are the runtime's Prometheus collectors, all labelled by projector.
// Every process measures the lag of every projector it knows, leader or not,
// so any replica's scrape answers for all of them; aggregate with max.
type metrics struct {
	lagEvents  *prometheus.GaugeVec
	lagSeconds *prometheus.GaugeVec
	checkpoint *prometheus.GaugeVec
	leader     *prometheus.GaugeVec
	applied    *prometheus.CounterVec
	failures   *prometheus.CounterVec
	batch      *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		lagEvents: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "crm_projection_lag_events",
			Help: "Events in the global log after the projector's checkpoint (counting stops at 10000; see Lag).",
		}, []string{"projector"}),
		lagSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "crm_projection_lag_seconds",
			Help: "Age of the oldest event the projector has yet to pass, 0 when caught up (see Lag).",
		}, []string{"projector"}),
		checkpoint: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "crm_projection_checkpoint_position",
			Help: "The projector's checkpoint: its commit and prepare parts.",
		}, []string{"projector", "part"}),
		leader: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "crm_projection_leader",
			Help: "1 while this process holds the projector's lock and runs it, else 0.",
		}, []string{"projector"}),
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crm_projection_events_applied_total",
			Help: "Events applied and committed by this process.",
		}, []string{"projector"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crm_projection_failures_total",
			Help: "Failed batch attempts (each is retried with backoff).",
		}, []string{"projector"}),
		batch: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "crm_projection_batch_duration_seconds",
			Help:    "Time to apply and commit one batch.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}, []string{"projector"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.lagEvents, err = register(reg, m.lagEvents); err != nil {
		return nil, err
	}
	if m.lagSeconds, err = register(reg, m.lagSeconds); err != nil {
		return nil, err
	}
	if m.checkpoint, err = register(reg, m.checkpoint); err != nil {
		return nil, err
	}
	if m.leader, err = register(reg, m.leader); err != nil {
		return nil, err
	}
	if m.applied, err = register(reg, m.applied); err != nil {
		return nil, err
	}
	if m.failures, err = register(reg, m.failures); err != nil {
		return nil, err
	}
	if m.batch, err = register(reg, m.batch); err != nil {
		return nil, err
	}
	for _, c := range []struct {
		result string
		n      *atomic.Uint64
	}{{"shared", &decoded.hits}, {"decoded", &decoded.misses}} {
		f := prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "crm_projection_decodes_total",
			Help:        "Events the projectors of this process asked Decode for: decoded, or shared from another projector's decode.",
			ConstLabels: prometheus.Labels{"result": c.result},
		}, func() float64 { return float64(c.n.Load()) })
		if _, err = register(reg, prometheus.Collector(f)); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// register registers c, or answers the equal collector already registered
// (a second Runtime on the same registry shares the first one's metrics).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	if err != nil {
		return c, fmt.Errorf("register projection metrics: %w", err)
	}
	return c, nil
}

// init makes every projector's series exist from the start, so dashboards
// and alerts see zeros rather than gaps.
func (m *metrics) init(name string) {
	m.lagEvents.WithLabelValues(name)
	m.lagSeconds.WithLabelValues(name)
	m.checkpoint.WithLabelValues(name, "commit")
	m.checkpoint.WithLabelValues(name, "prepare")
	m.leader.WithLabelValues(name).Set(0)
	m.applied.WithLabelValues(name)
	m.failures.WithLabelValues(name)
}

func (m *metrics) observeLag(name string, cp eventstore.Position, lag Lag) {
	m.lagEvents.WithLabelValues(name).Set(float64(lag.Events))
	m.lagSeconds.WithLabelValues(name).Set(lag.Seconds)
	m.checkpoint.WithLabelValues(name, "commit").Set(float64(cp.Commit))
	m.checkpoint.WithLabelValues(name, "prepare").Set(float64(cp.Prepare))
}
