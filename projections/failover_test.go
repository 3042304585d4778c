package projections

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLeaderTakeover runs a projector in two processes and SIGKILLs the one
// leading it mid-batch: the other must take over within a few seconds, and
// the read model must end as a fresh projection of the same log.
func TestLeaderTakeover(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	createCounterTables(t, e.pool, "ha")
	createCounterTables(t, e.pool, "fresh")
	members := e.appendEvents(700)

	a := startProc(t, e, "ha", time.Millisecond, 40)
	b := startProc(t, e, "ha", time.Millisecond, 40)
	procs := map[int]*proc{a.pid(): a, b.pid(): b}
	var leader int
	require.Eventually(t, func() bool { leader = e.leaderPID("ha"); return leader != 0 }, 10*time.Second, 10*time.Millisecond)
	require.Contains(t, procs, leader)
	first := procs[leader]
	var second *proc
	for pid, p := range procs {
		if pid != leader {
			second = p
		}
	}

	// Kill the leader part way through its third batch.
	first.waitApply(t, 3)
	time.Sleep(time.Duration(rand.N(30)) * time.Millisecond)
	killed := time.Now()
	first.kill(t)
	require.Eventually(t, func() bool { return e.leaderPID("ha") == second.pid() }, 5*time.Second, 10*time.Millisecond,
		"the second process did not take over")
	t.Logf("takeover after %v", time.Since(killed).Round(time.Millisecond))
	second.waitApply(t, 1)

	members += e.appendEvents(300)
	watcher := e.runtime([]Projector{&counter{name: "ha"}})
	e.waitCaughtUp(watcher, "ha")
	select {
	case <-first.exited:
	default:
		t.Fatal("the killed process still runs")
	}

	fresh := e.runtime([]Projector{&counter{name: "fresh"}})
	e.run(fresh)
	e.waitCaughtUp(fresh, "fresh")
	e.requireCounted("ha", members)
	assert.Equal(t, e.dump("fresh_counts"), e.dump("ha_counts"))
	assert.Equal(t, e.dump("fresh_applied"), e.dump("ha_applied"))
	second.stop(t)
}

// TestCrashMidBatch SIGKILLs a projector process at random points of its
// batches, several times over, restarting it each time; its read model must
// end identical to a rebuild's.
func TestCrashMidBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	createCounterTables(t, e.pool, "crashy")
	members := e.appendEvents(1000)
	const batch, delay = 30, 2 * time.Millisecond // about 60 ms of Apply per batch

	var last = e.checkpoint("crashy")
	for i := range 5 {
		p := startProc(t, e, "crashy", delay, batch)
		p.waitApply(t, 1+rand.N(3))
		time.Sleep(rand.N(batch * delay))
		p.kill(t)
		cp := e.checkpoint("crashy")
		assert.False(t, cp.Less(last), "kill %d: the checkpoint went back", i)
		last = cp
	}
	var applied int
	require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT count(*) FROM crashy_applied`).Scan(&applied))
	require.Less(t, applied, members, "the kills came before the end")
	t.Logf("%d of %d events applied across 5 kills", applied, members)

	p := startProc(t, e, "crashy", 0, batch)
	rt := e.runtime([]Projector{&counter{name: "crashy"}})
	e.waitCaughtUp(rt, "crashy")
	p.stop(t)
	e.requireCounted("crashy", members)

	counts, appliedRows := e.dump("crashy_counts"), e.dump("crashy_applied")
	require.NoError(t, rt.Rebuild(e.ctx, "crashy"))
	assert.Equal(t, counts, e.dump("crashy_counts"), "rebuilt counters")
	assert.Equal(t, appliedRows, e.dump("crashy_applied"), "rebuilt applied events")
}
