package projections

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/eventstore"
)

func TestProjectsInBatchesWithCheckpoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	createCounterTables(t, e.pool, "members")
	members := e.appendEvents(1200)
	e.waitVisible() // so that batches are full

	var batches atomic.Int64
	p := &counter{name: "members", announce: writerFunc(func([]byte) { batches.Add(1) })}
	reg := prometheus.NewRegistry()
	rt := e.runtime([]Projector{p}, WithBatchSize(100), WithRegisterer(reg))
	e.run(rt)
	e.waitCaughtUp(rt, "members")

	e.requireCounted("members", members)
	assert.Equal(t, e.last, e.checkpoint("members"), "the checkpoint is the newest event")
	// At most 100 events a batch, and filtered-out events cost no Apply.
	assert.GreaterOrEqual(t, batches.Load(), int64(members/100))
	assert.Less(t, batches.Load(), int64(members/10))
	var applied int
	require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT events_applied FROM projection_checkpoints WHERE name = 'members'`).Scan(&applied))
	assert.Equal(t, members, applied)
	// Counted just after the commit WaitFor saw.
	assert.Eventually(t, func() bool {
		return metricValue(t, reg, "crm_projection_events_applied_total", "members") == float64(members)
	}, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, 1.0, metricValue(t, reg, "crm_projection_leader", "members"))

	// New events are picked up while running.
	more := e.appendEvents(70)
	e.waitCaughtUp(rt, "members")
	e.requireCounted("members", members+more)
}

func TestRetriesAFailingBatchWithoutSkippingIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	createCounterTables(t, e.pool, "flaky")
	members := e.appendEvents(300)

	// The batch holding event 150 fails until told otherwise.
	var healed atomic.Bool
	boom := errors.New("boom")
	p := &counter{name: "flaky", fail: func(e eventstore.Event) error {
		if eventIndex(e) == 150 && !healed.Load() {
			return boom
		}
		return nil
	}}
	reg := prometheus.NewRegistry()
	rt := e.runtime([]Projector{p}, WithBatchSize(40), WithRegisterer(reg))
	e.run(rt)

	var st Status
	require.Eventually(t, func() bool {
		sts, err := rt.Status(e.ctx)
		require.NoError(t, err)
		st = sts[0]
		return st.State == StateFailing
	}, visibilityTimeout, 20*time.Millisecond)
	assert.Contains(t, st.LastError, "boom")
	assert.True(t, st.Here)
	assert.Positive(t, st.Lag.Events, "stuck behind the failing batch")
	assert.Positive(t, metricValue(t, reg, "crm_projection_failures_total", "flaky"))

	healed.Store(true)
	e.waitCaughtUp(rt, "flaky")
	e.requireCounted("flaky", members)
	sts, err := rt.Status(e.ctx)
	require.NoError(t, err)
	assert.Equal(t, StateRunning, sts[0].State)
	assert.Empty(t, sts[0].LastError)
	assert.Zero(t, sts[0].Lag)
}

func TestLag(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	createCounterTables(t, e.pool, "slow")
	e.appendEvents(35)
	time.Sleep(50 * time.Millisecond) // so the oldest event has an age

	// Held at the start of the log by a failing first batch (failing rather
	// than blocking, since an open transaction would hold back the
	// visibility of everyone's events on the server).
	var open atomic.Bool
	p := &counter{name: "slow", fail: func(eventstore.Event) error {
		if !open.Load() {
			return errors.New("not yet")
		}
		return nil
	}}
	reg := prometheus.NewRegistry()
	rt := e.runtime([]Projector{p}, WithRegisterer(reg), WithLagInterval(20*time.Millisecond))
	e.run(rt)

	// Every event is behind, filtered or not.
	var st Status
	require.Eventually(t, func() bool {
		sts, err := rt.Status(e.ctx)
		require.NoError(t, err)
		st = sts[0]
		return st.State == StateFailing && st.Lag.Events == 35 &&
			metricValue(t, reg, "crm_projection_lag_events", "slow") == 35
	}, visibilityTimeout, 10*time.Millisecond)
	assert.False(t, st.Lag.Saturated)
	assert.GreaterOrEqual(t, st.Lag.Seconds, 0.05)
	assert.GreaterOrEqual(t, metricValue(t, reg, "crm_projection_lag_seconds", "slow"), 0.05)
	assert.Contains(t, st.Leader, "crm-projections pid=")
	assert.True(t, st.Here)
	assert.Equal(t, eventstore.Start, st.Checkpoint)

	open.Store(true)
	e.waitCaughtUp(rt, "slow")
	require.Eventually(t, func() bool {
		return metricValue(t, reg, "crm_projection_lag_events", "slow") == 0 &&
			metricValue(t, reg, "crm_projection_lag_seconds", "slow") == 0
	}, visibilityTimeout, 10*time.Millisecond)
	assert.Equal(t, float64(e.last.Prepare), metricValue(t, reg, "crm_projection_checkpoint_position", "slow", "prepare"))
	sts, err := rt.Status(e.ctx)
	require.NoError(t, err)
	assert.Equal(t, StateRunning, sts[0].State)
	assert.Equal(t, e.last, sts[0].Checkpoint)
	assert.False(t, sts[0].UpdatedAt.IsZero())
}

func TestMeasureLagSaturates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.appendEvents(MaxLagEvents + 5)
	// Events turn visible once older transactions anywhere on the server
	// end (other tests hold some open).
	var lag Lag
	require.Eventually(t, func() bool {
		var err error
		lag, err = measureLag(e.ctx, e.store, eventstore.Start, time.Now())
		require.NoError(t, err)
		return lag.Events == MaxLagEvents
	}, visibilityTimeout, 50*time.Millisecond)
	assert.True(t, lag.Saturated)
	assert.Positive(t, lag.Seconds)
}

func TestNewRejectsBadProjectors(t *testing.T) {
	t.Parallel()
	for name, ps := range map[string][]Projector{
		"bad name":     {&counter{name: "Bad Name"}},
		"twice":        {&counter{name: "a"}, &counter{name: "a"}},
		"long table":   {&counter{name: "x123456789012345678901234567890123456789012345678901234"}},
		"shared table": {&counter{name: "a"}, &aliasProjector{counter{name: "b"}, "a_counts"}},
	} {
		_, err := New(nil, nil, ps)
		assert.Error(t, err, name)
	}
}

// aliasProjector owns the one table given, or none.
type aliasProjector struct {
	counter
	table string
}

func (a *aliasProjector) Tables() []string {
	if a.table == "" {
		return nil
	}
	return []string{a.table}
}

type writerFunc func([]byte)

func (f writerFunc) Write(p []byte) (int, error) { f(p); return len(p), nil }

// metricValue answers the value of the series of name with the given label
// values (in label order), or -1 when there is none.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !labelsMatch(m, labels) {
				continue
			}
			switch {
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Counter != nil:
				return m.Counter.GetValue()
			}
		}
	}
	return -1
}

func labelsMatch(m *dto.Metric, values []string) bool {
	lp := m.GetLabel()
	if len(lp) != len(values) {
		return false
	}
	// Labels come sorted by name; "part" sorts before "projector".
	got := map[string]string{}
	for _, l := range lp {
		got[l.GetName()] = l.GetValue()
	}
	want := map[string]string{"projector": values[0]}
	if len(values) > 1 {
		want["part"] = values[1]
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}
