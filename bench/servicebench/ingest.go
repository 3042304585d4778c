package servicebench

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/clubcrm/crm/bench/population"
	"github.com/clubcrm/crm/eventstore"
)

// The consumer group crm serve reads the upstream streams in, and its
// dead-letter stream (adapters/ingest; docs/events.md).
const (
	consumerGroup    = "crm"
	deadLetterStream = "crm.deadletter"
)

// IngestResult is the end-to-end ingest figure: upstream events XADDed to
// the streams before `crm serve` starts, until its read models have caught
// up with everything they caused.
type IngestResult struct {
	Events  int            `json:"events"`
	Streams map[string]int `json:"perStream"`
	// Seconds runs from starting `crm serve` until every projector's
	// checkpoint has reached the head of the log the events made; PerSec
	// is Events over it. Startup (about a second) is included.
	Seconds float64 `json:"seconds"`
	PerSec  float64 `json:"perSec"`
	// AckedSeconds is when the consumer group had read and acknowledged
	// every entry; CaughtUp when each projector reached the head.
	StartupSeconds float64            `json:"startupSeconds"`
	AckedSeconds   float64            `json:"ackedSeconds"`
	CaughtUp       map[string]float64 `json:"caughtUpSeconds"`
	StoredEvents   int64              `json:"storedEvents"` // domain events the log holds afterwards
	Recorded       int64              `json:"recorded"`     // envelopes in the inbox
	DeadLetters    int64              `json:"deadLetters"`
	DeadLetterHint string             `json:"deadLetterHint,omitempty"`
	PeakRSS        int64              `json:"peakRssBytes"` // of crm serve during ingest
	CPU            *CPUCost           `json:"cpuPer1000Events,omitempty"`
	Scans          []TableScans       `json:"seqScans,omitempty"`
	Raw            []RawRate          `json:"raw,omitempty"`
	// FromEarlierRun: the service figure is the one the run that wrote
	// the history logged (Config.Resume).
	FromEarlierRun bool `json:"fromEarlierRun,omitempty"`
}

// RawRate is a raw PostgreSQL baseline of a rate and the service's ratio
// to it.
type RawRate struct {
	Baseline string  `json:"baseline"`
	Rows     int     `json:"rows"`
	Seconds  float64 `json:"seconds"`
	PerSec   float64 `json:"perSec"`
	Ratio    float64 `json:"ratio"` // service ÷ raw
}

// preload XADDs the next n events of the history to the upstream streams,
// as the services would have published them, in pipelines of 1,000.
func (b *bench) preload(ctx context.Context, n int) (map[string]int, error) {
	per := map[string]int{}
	pipe := b.redis.client.Pipeline()
	queued := 0
	flush := func() error {
		if queued == 0 {
			return nil
		}
		_, err := pipe.Exec(ctx)
		queued = 0
		if err != nil {
			return fmt.Errorf("xadd: %w", err)
		}
		return nil
	}
	prog := b.progress("publish to the upstream streams", n)
	for i := range n {
		e, ok := b.pop.Next()
		if !ok {
			break
		}
		s := population.Streams[e.Stream]
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: s, Values: []any{"payload", e.Payload()}})
		if _, _, ok := serviceKey(e.Type, &b.pop.People[e.Person]); ok && b.sample == nil && i > n/2 {
			b.sample = &e
		}
		per[s]++
		queued++
		if queued == 1000 {
			if err := flush(); err != nil {
				return nil, err
			}
			prog.set(i + 1)
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	prog.done()
	return per, nil
}

// ingestPhase starts `crm serve` on the preloaded streams and times it
// until its read models have caught up.
func (b *bench) ingestPhase(ctx context.Context, events int, per map[string]int) (*server, IngestResult, error) {
	res := IngestResult{Events: events, Streams: per, CaughtUp: map[string]float64{}}
	before, err := b.scanCounts(ctx)
	if err != nil {
		return nil, res, err
	}
	srv, err := startServe(ctx, b.serveEnv, "serve-ingest", b.log)
	if err != nil {
		return nil, res, err
	}
	res.StartupSeconds = time.Since(srv.started).Seconds()
	cpu := readCPU(srv.cmd.Process.Pid)
	stop := b.profile(ctx, srv, "ingest")
	prog := b.progress("ingest through crm serve", events)
	last, lastAt := int64(-1), time.Now()
	for {
		if err := srv.alive(); err != nil {
			return nil, res, err
		}
		done, read, err := b.redis.streamsDone(ctx, population.Streams, consumerGroup)
		if err != nil {
			srv.stop()
			return nil, res, err
		}
		prog.set(int(read))
		if done {
			break
		}
		if read != last {
			last, lastAt = read, time.Now()
		} else if time.Since(lastAt) > 3*time.Minute {
			srv.stop()
			return nil, res, fmt.Errorf("ingest stalled at %d of %d events for 3 minutes; crm serve's log:\n%s", read, events, tail(srv.logPath, 20))
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			srv.stop()
			return nil, res, err
		}
	}
	res.AckedSeconds = time.Since(srv.started).Seconds()
	prog.done()
	caught, err := b.waitCaughtUp(ctx, srv, srv.started)
	if err != nil {
		srv.stop()
		return nil, res, err
	}
	for name, at := range caught {
		res.CaughtUp[name] = at
		res.Seconds = max(res.Seconds, at)
	}
	res.PerSec = float64(events) / res.Seconds
	res.CPU = readCPU(srv.cmd.Process.Pid).since(cpu, events)
	stop()
	res.PeakRSS = srv.peakRSS()
	res.Scans = b.scansSince(ctx, before)

	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&res.StoredEvents); err != nil {
		return srv, res, fmt.Errorf("count events: %w", err)
	}
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM upstream_inbox`).Scan(&res.Recorded); err != nil {
		return srv, res, fmt.Errorf("count inbox: %w", err)
	}
	res.DeadLetters, res.DeadLetterHint = b.deadLetters(ctx)
	return srv, res, nil
}

// deadLetters counts crm.deadletter and shows the first entry.
func (b *bench) deadLetters(ctx context.Context) (int64, string) {
	n, err := b.redis.client.XLen(ctx, deadLetterStream).Result()
	if err != nil || n == 0 {
		return 0, ""
	}
	first, err := b.redis.client.XRangeN(ctx, deadLetterStream, "-", "+", 1).Result()
	if err != nil || len(first) == 0 {
		return n, ""
	}
	return n, fmt.Sprint(first[0].Values)
}

// checkpoint is a projector's row of projection_checkpoints.
type checkpoint struct {
	name string
	pos  eventstore.Position
}

func (b *bench) checkpoints(ctx context.Context) ([]checkpoint, error) {
	rows, err := b.pool.Query(ctx, `SELECT name, commit_position, prepare_position FROM projection_checkpoints ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("read checkpoints: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (checkpoint, error) {
		var c checkpoint
		var commit, prepare int64
		err := r.Scan(&c.name, &commit, &prepare)
		// Positions are stored bit for bit in bigint columns.
		c.pos = eventstore.Position{Commit: uint64(commit), Prepare: uint64(prepare)}
		return c, err
	})
}

// waitCaughtUp waits until every projector's checkpoint has reached the
// head of the log as it is now, and answers when each did, in seconds
// since since. It gives up when no checkpoint has moved for 5 minutes.
func (b *bench) waitCaughtUp(ctx context.Context, srv *server, since time.Time) (map[string]float64, error) {
	head, err := b.store.Head(ctx)
	if err != nil {
		return nil, err
	}
	caught := map[string]float64{}
	last := map[string]eventstore.Position{}
	moved, logged := time.Now(), time.Now()
	for {
		if srv != nil {
			if err := srv.alive(); err != nil {
				return nil, err
			}
		}
		cps, err := b.checkpoints(ctx)
		if err != nil {
			return nil, err
		}
		all := len(cps) > 0
		var behind []string
		for _, c := range cps {
			if last[c.name] != c.pos {
				last[c.name], moved = c.pos, time.Now()
			}
			if _, ok := caught[c.name]; ok {
				continue
			}
			if c.pos.Less(head) {
				all = false
				behind = append(behind, c.name)
				continue
			}
			caught[c.name] = time.Since(since).Seconds()
		}
		if all {
			return caught, nil
		}
		if time.Since(moved) > 5*time.Minute {
			return nil, fmt.Errorf("projectors %v have not moved towards %s for 5 minutes", behind, head)
		}
		if time.Since(logged) > 5*time.Second {
			logged = time.Now()
			b.log.Info("waiting for the read models to catch up", slog.Any("behind", behind), slog.String("head", head.String()))
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// rawIngest writes as many rows as the service ingested upstream events,
// copied from the head of the event log, into two tables shaped like it
// (LIKE events INCLUDING ALL): by COPY, and by 500-row INSERTs each in its
// own transaction. Rows are read into memory a chunk at a time, untimed.
func (b *bench) rawIngest(ctx context.Context, rows int, servicePerSec float64) ([]RawRate, error) {
	for _, t := range []string{"bench_raw_copy", "bench_raw_insert"} {
		if _, err := b.pool.Exec(ctx, `CREATE TABLE `+t+` (LIKE events INCLUDING ALL)`); err != nil {
			return nil, fmt.Errorf("raw table: %w", err)
		}
	}
	const chunk = 50_000
	var copyTime, insertTime time.Duration
	var after eventstore.Position
	done := 0
	prog := b.progress("raw baseline: COPY and INSERT", rows)
	for done < rows {
		page, last, err := b.rawRows(ctx, after, min(chunk, rows-done))
		if err != nil {
			return nil, err
		}
		if len(page) == 0 {
			break
		}
		after = last
		began := time.Now()
		if _, err := b.pool.CopyFrom(ctx, pgx.Identifier{"bench_raw_copy"}, rawColumns, pgx.CopyFromRows(page)); err != nil {
			return nil, fmt.Errorf("raw copy: %w", err)
		}
		copyTime += time.Since(began)
		began = time.Now()
		for start := 0; start < len(page); start += 500 {
			if err := b.rawInsert(ctx, page[start:min(start+500, len(page))]); err != nil {
				return nil, err
			}
		}
		insertTime += time.Since(began)
		done += len(page)
		prog.set(done)
	}
	prog.done()
	rate := func(name string, d time.Duration) RawRate {
		r := RawRate{Baseline: name, Rows: done, Seconds: d.Seconds(), PerSec: float64(done) / d.Seconds()}
		r.Ratio = ratio(servicePerSec, r.PerSec)
		return r
	}
	for _, t := range []string{"bench_raw_copy", "bench_raw_insert"} {
		if _, err := b.pool.Exec(ctx, `DROP TABLE `+t); err != nil {
			return nil, fmt.Errorf("raw table: %w", err)
		}
	}
	return []RawRate{
		rate("COPY", copyTime),
		rate("500-row INSERTs", insertTime),
	}, nil
}

var rawColumns = []string{"id", "stream", "version", "type", "data", "metadata", "tenant_id", "occurred_at"}

func (b *bench) rawRows(ctx context.Context, after eventstore.Position, n int) ([][]any, eventstore.Position, error) {
	rows, err := b.pool.Query(ctx, `SELECT tx_id, seq, id, stream, version, type, data::text, metadata::text, tenant_id, occurred_at
FROM events WHERE (tx_id, seq) > ($1::text::xid8, $2::bigint) ORDER BY tx_id, seq LIMIT $3`,
		fmt.Sprint(after.Commit), int64(after.Prepare), n)
	if err != nil {
		return nil, after, fmt.Errorf("read events: %w", err)
	}
	defer rows.Close()
	var out [][]any
	for rows.Next() {
		var (
			tx, seq             uint64
			id                  [16]byte
			stream, typ, tenant string
			version             int64
			data                *string
			meta                string
			occurred            time.Time
		)
		if err := rows.Scan(&tx, &seq, &id, &stream, &version, &typ, &data, &meta, &tenant, &occurred); err != nil {
			return nil, after, fmt.Errorf("read events: %w", err)
		}
		after = eventstore.Position{Commit: tx, Prepare: seq}
		out = append(out, []any{id, stream, version, typ, data, meta, tenant, occurred})
	}
	return out, after, rows.Err()
}

func (b *bench) rawInsert(ctx context.Context, rows [][]any) error {
	sql := make([]byte, 0, 64*len(rows)+128)
	sql = append(sql, "INSERT INTO bench_raw_insert (id, stream, version, type, data, metadata, tenant_id, occurred_at) VALUES "...)
	args := make([]any, 0, len(rows)*len(rawColumns))
	for i, r := range rows {
		if i > 0 {
			sql = append(sql, ", "...)
		}
		p := i * len(rawColumns)
		sql = fmt.Appendf(sql, "($%d, $%d, $%d, $%d, $%d::jsonb, $%d::jsonb, $%d, $%d)", p+1, p+2, p+3, p+4, p+5, p+6, p+7, p+8)
		args = append(args, r...)
	}
	if _, err := b.pool.Exec(ctx, string(sql), args...); err != nil {
		return fmt.Errorf("raw insert: %w", err)
	}
	return nil
}

// sleep waits d unless ctx ends first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
