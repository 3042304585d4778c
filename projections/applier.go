package projections

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"runtime"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/clubcrm/crm/eventstore"
)

// A rebuild applies its batches with several workers at once, each in
// transactions of its own on its own connection, for the events of its
// share of the tenants. One transaction at a time left the machine a third
// idle: the projector's Go code and PostgreSQL took turns (a customers
// rebuild kept crm and PostgreSQL each 31% busy on two cores). Tenants never
// share a row, so splitting by tenant keeps each tenant's events in log
// order, which is all a projector's Apply relies on (a merge, a duplicate
// review or a note edit spans streams of one tenant only). A log of one
// tenant goes to one worker, as before.
//
// The rebuild's position moves only past batches every worker has
// committed, so it always names a prefix of the log the shadow tables hold
// whole; it is what the swap starts from.

// maxRebuildWorkers bounds the workers of one rebuild: each holds a
// connection, and beyond the processors there is nothing to overlap.
const maxRebuildWorkers = 4

// rebuildWorkers answers how many workers a rebuild of pool uses: at least
// two, so that one's Go work overlaps the other's wait for PostgreSQL, but
// leaving two of the pool's connections to the rebuild's own bookkeeping
// and whatever else the process does.
func rebuildWorkers(pool *pgxpool.Pool) int {
	n := min(maxRebuildWorkers, max(2, runtime.GOMAXPROCS(0)))
	return max(1, min(n, int(pool.Config().MaxConns)-2))
}

// maxInFlight is how many batches may be handed out before the oldest is
// committed everywhere: enough to keep a worker whose tenants weigh less in
// a batch busy with the next, few enough to bound memory.
const maxInFlight = 3

// applier hands a rebuild's batches to its workers and moves the rebuild's
// position as they commit.
type applier struct {
	rb       *rebuild
	workers  []*worker
	done     chan finished
	inflight []*handed // in log order
	seq      int64
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// handed is a batch handed to the workers.
type handed struct {
	seq       int64
	events    []eventstore.Event // the whole batch as read
	matching  []eventstore.Event // those the projector applies
	remaining int                // workers yet to commit their part
}

type part struct {
	seq    int64
	events []eventstore.Event
}

type finished struct {
	seq int64
	err error
}

type worker struct {
	rb   *rebuild
	conn *pgxpool.Conn
	in   chan part
}

// extraWorkerWait bounds the wait for the connection of a worker beyond the
// first: a pool that has none to spare gets a rebuild with fewer workers
// rather than several rebuilds each holding some connections and waiting
// for the others'.
const extraWorkerWait = 250 * time.Millisecond

// startApplier acquires up to n connections and starts a worker on each.
func startApplier(ctx context.Context, rb *rebuild, n int) (*applier, error) {
	conns, err := rb.acquireWorkers(ctx, n)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	ap := &applier{rb: rb, done: make(chan finished, len(conns)*maxInFlight), cancel: cancel}
	for _, conn := range conns {
		w := &worker{rb: rb, conn: conn, in: make(chan part, maxInFlight)}
		ap.workers = append(ap.workers, w)
		ap.wg.Go(func() { w.run(wctx, ap.done) })
	}
	return ap, nil
}

// acquireWorkers acquires up to n connections for a rebuild's workers (at
// least one), each set to commit without waiting for the WAL.
func (rb *rebuild) acquireWorkers(ctx context.Context, n int) ([]*pgxpool.Conn, error) {
	var conns []*pgxpool.Conn
	fail := func(err error) ([]*pgxpool.Conn, error) {
		for _, c := range conns {
			releaseRelaxed(c)
		}
		return nil, err
	}
	for i := range n {
		conn, err := acquireWorkerConn(ctx, rb.rt.pool, i > 0)
		if err != nil {
			return fail(fmt.Errorf("acquire: %w", err))
		}
		if conn == nil {
			rb.rt.log.Info("projection rebuild runs with fewer workers: the pool has no connection to spare",
				"projector", rb.rn.name, "workers", i)
			break
		}
		// A shadow batch need not survive a crash of the server: the
		// rebuild dies with its lock connection and the next one starts
		// afresh. Not waiting for the WAL to reach the disk at every commit
		// is therefore safe here, and is most of a small batch's commit.
		if _, err := conn.Exec(ctx, "SET synchronous_commit = off"); err != nil {
			conn.Release()
			return fail(fmt.Errorf("relax commits: %w", err))
		}
		conns = append(conns, conn)
	}
	return conns, nil
}

// acquireWorkerConn acquires a connection, waiting at most extraWorkerWait
// when extra is set; nil means none came in that time.
func acquireWorkerConn(ctx context.Context, pool *pgxpool.Pool, extra bool) (*pgxpool.Conn, error) {
	if !extra {
		return pool.Acquire(ctx)
	}
	actx, cancel := context.WithTimeout(ctx, extraWorkerWait)
	defer cancel()
	conn, err := pool.Acquire(actx)
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return nil, nil
	}
	return conn, err
}

// stop ends the workers, abandoning what they have not committed, and
// gives their connections back.
func (ap *applier) stop() {
	ap.cancel()
	for _, w := range ap.workers {
		close(w.in)
	}
	ap.wg.Wait()
	for _, w := range ap.workers {
		releaseRelaxed(w.conn)
	}
	ap.workers = nil
}

// submit hands the matching events of a batch to the workers of their
// tenants, first waiting while maxInFlight batches are out.
func (ap *applier) submit(ctx context.Context, events, matching []eventstore.Event) error {
	for len(ap.inflight) >= maxInFlight {
		if err := ap.await(ctx); err != nil {
			return err
		}
	}
	ap.seq++
	h := &handed{seq: ap.seq, events: events, matching: matching}
	parts := make([][]eventstore.Event, len(ap.workers))
	for _, e := range matching {
		i := ap.workerOf(e.Metadata.TenantID)
		parts[i] = append(parts[i], e)
	}
	ap.inflight = append(ap.inflight, h)
	for i, p := range parts {
		if len(p) > 0 {
			h.remaining++
			ap.workers[i].in <- part{seq: h.seq, events: p} // never blocks: at most maxInFlight are out
		}
	}
	return ap.settle(ctx)
}

// workerOf answers the worker of a tenant's events.
func (ap *applier) workerOf(tenant string) int {
	if len(ap.workers) == 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(tenant)) //nolint:errcheck // a hash never fails
	return int(h.Sum32() % uint32(len(ap.workers)))
}

// drain waits until every batch handed out is committed.
func (ap *applier) drain(ctx context.Context) error {
	for len(ap.inflight) > 0 {
		if err := ap.await(ctx); err != nil {
			return err
		}
	}
	return nil
}

// await waits for one worker to commit a part, then settles.
func (ap *applier) await(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case f := <-ap.done:
		if f.err != nil {
			return f.err
		}
		for _, h := range ap.inflight {
			if h.seq == f.seq {
				h.remaining--
			}
		}
		return ap.settle(ctx)
	}
}

// settle moves the rebuild past the oldest batches every worker has
// committed, and records where it is.
func (ap *applier) settle(ctx context.Context) error {
	moved := false
	for len(ap.inflight) > 0 && ap.inflight[0].remaining == 0 {
		h := ap.inflight[0]
		ap.inflight = ap.inflight[1:]
		ap.rb.advance(h.events, h.matching)
		moved = true
	}
	if !moved {
		return nil
	}
	return ap.rb.record(ctx)
}

// record writes the rebuild's position and count into its row, for the
// swap to start from and for status to show.
func (rb *rebuild) record(ctx context.Context) error {
	c, p := ints(rb.pos)
	tag, err := rb.rt.pool.Exec(ctx, `UPDATE projection_rebuilds
SET commit_position = $3, prepare_position = $4, events_applied = $5, updated_at = now()
WHERE name = $1 AND state = 'building' AND started_at = $2`, rb.rn.name, rb.started, c, p, rb.applied)
	if err != nil {
		return fmt.Errorf("record rebuild position: %w", err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("rebuild row is not this rebuild's: %w", errRebuildTakenOver)
	}
	return nil
}

// run applies the parts handed to w, one transaction each, until in closes
// or a part fails.
func (w *worker) run(ctx context.Context, done chan<- finished) {
	for p := range w.in {
		err := w.commit(ctx, p.events)
		done <- finished{seq: p.seq, err: err}
		if err != nil {
			return
		}
	}
}

// commit applies events into the shadow tables in one transaction.
func (w *worker) commit(ctx context.Context, events []eventstore.Event) error {
	return w.rb.inShadow(ctx, w.conn, func(tx pgx.Tx) error {
		if err := apply(ctx, w.rb.rn.p, tx, w.rb.shadow, events); err != nil {
			return fmt.Errorf("apply %d events: %w", len(events), err)
		}
		return nil
	})
}

// inShadow runs write in a transaction on conn and commits it. The
// rebuild's row must still be this rebuild's: one that took over (this
// one's lock connection having dropped) resets it, and this one then stops
// instead of writing into its tables. Holding the row FOR KEY SHARE until
// the commit keeps such a rebuild from dropping the tables meanwhile (it
// locks the row FOR UPDATE first) while leaving the row free for record.
func (rb *rebuild) inShadow(ctx context.Context, conn *pgxpool.Conn, write func(tx pgx.Tx) error) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after commit
	tag, err := tx.Exec(ctx, `SELECT FROM projection_rebuilds
WHERE name = $1 AND state = 'building' AND started_at = $2 FOR KEY SHARE`, rb.rn.name, rb.started)
	if err != nil {
		return fmt.Errorf("hold rebuild row: %w", err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("rebuild row is not this rebuild's: %w", errRebuildTakenOver)
	}
	if err := write(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit shadow batch: %w", err)
	}
	return nil
}
