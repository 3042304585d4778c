// Package storebench measures the PostgreSQL event store against raw
// PostgreSQL doing the same work in the same run: the service figures mean
// little on their own, since they depend on the machine, but their ratio to
// the raw figures shows what the store itself costs.
package storebench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	pgpool "github.com/clubcrm/crm/adapters/postgres"
	"github.com/clubcrm/crm/bench/scratch"
	"github.com/clubcrm/crm/eventstore"
	"github.com/clubcrm/crm/eventstore/postgres"
)

const (
	// BatchSize is the events per AppendMulti call and rows per raw INSERT.
	BatchSize = 500
	// StreamsPerBatch is how many streams an AppendMulti batch spreads over.
	StreamsPerBatch = 100
	// Writers is the number of concurrent single-event appenders.
	Writers = 16
	// PageSize is the ReadAll page.
	PageSize = 1000
	// MaxSingle caps the single-event appends, which run one commit each.
	MaxSingle = 50_000
)

// Figure is one measured operation: the service's rate, and the raw
// PostgreSQL rate of the comparable work when there is one.
type Figure struct {
	Name     string  `json:"name"`
	Events   int     `json:"events"`
	Seconds  float64 `json:"seconds"`
	PerSec   float64 `json:"perSec"`
	Baseline string  `json:"baseline,omitempty"`
	RawPerS  float64 `json:"rawPerSec,omitempty"`
	Ratio    float64 `json:"ratio,omitempty"` // PerSec / RawPerS
}

// Result holds every figure of a run.
type Result struct {
	Events     int      `json:"events"`
	Single     int      `json:"singleAppends"`
	RowBytes   int      `json:"rowBytes"` // data + metadata of a typical event
	Figures    []Figure `json:"figures"`
	AppendRate float64  `json:"appendMultiPerSec"` // the headline: events/s through AppendMulti
}

// Run creates a scratch database on the server at serverURL (any database
// URL on it; the database part is replaced), migrates it, measures with n
// events, writes a table to w and drops the database.
func Run(ctx context.Context, serverURL string, n int, w io.Writer) (Result, error) {
	if n < BatchSize {
		return Result{}, fmt.Errorf("storebench: need at least %d events, got %d", BatchSize, n)
	}
	dsn, drop, err := scratch.Database(ctx, serverURL)
	if err != nil {
		return Result{}, err
	}
	defer drop()

	cfg, err := pgpool.ParseConfig(dsn)
	if err != nil {
		return Result{}, fmt.Errorf("storebench: %w", err)
	}
	cfg.MaxConns = Writers + 4
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return Result{}, fmt.Errorf("storebench: pool: %w", err)
	}
	defer pool.Close()
	store := postgres.New(pool)
	defer store.Close()

	b := &bench{pool: pool, store: store}
	res := Result{Events: n, Single: min(n, MaxSingle)}
	rows := genRows("member", n, n/20, 0)
	res.RowBytes = len(rows[0].data) + len(rows[0].meta)

	steps := []func(context.Context, *Result) error{
		func(ctx context.Context, r *Result) error { return b.appendMulti(ctx, r, rows) },
		func(ctx context.Context, r *Result) error { return b.single(ctx, r, r.Single) },
		func(ctx context.Context, r *Result) error { return b.readAll(ctx, r) },
	}
	for _, step := range steps {
		if err := step(ctx, &res); err != nil {
			return res, err
		}
	}
	for _, f := range res.Figures {
		if f.Name == figAppendMulti {
			res.AppendRate = f.PerSec
			break
		}
	}
	Print(w, res)
	return res, nil
}

const (
	figAppendMulti = "AppendMulti, 500 events over 100 streams per call"
	figSingle      = "Append, 1 event per call, 16 writers"
	figReadAll     = "ReadAll, pages of 1000"
)

// Print writes res as a table.
func Print(w io.Writer, res Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "operation\tevents\tservice/s\traw/s\tratio\traw baseline\t\n")
	for _, f := range res.Figures {
		raw, ratio := "-", "-"
		if f.RawPerS > 0 {
			raw, ratio = fmt.Sprintf("%.0f", f.RawPerS), fmt.Sprintf("%.2f", f.Ratio)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t%s\t\n", f.Name, f.Events, f.PerSec, raw, ratio, f.Baseline)
	}
	tw.Flush()
}

type bench struct {
	pool  *pgxpool.Pool
	store *postgres.Store
}

// row is one event as both the service and the raw baselines write it.
type row struct {
	id       uuid.UUID
	stream   string
	version  int64
	typ      string
	data     []byte
	meta     []byte
	tenant   string
	occurred time.Time
}

// genRows answers n events over streams streams named prefix-<k>, in the
// order AppendMulti batches take them: each batch holds StreamsPerBatch
// streams with the same number of events each, at consecutive versions.
func genRows(prefix string, n, streams, salt int) []row {
	streams = max(streams, StreamsPerBatch)
	per := BatchSize / StreamsPerBatch
	versions := make([]int64, streams)
	out := make([]row, 0, n)
	now := time.Now().UTC()
	padding := strings.Repeat("x", 160)
	for b := 0; len(out) < n; b++ {
		for s := 0; s < StreamsPerBatch && len(out) < n; s++ {
			k := (b*StreamsPerBatch + s) % streams
			for range per {
				if len(out) == n {
					break
				}
				versions[k]++
				i := len(out)
				id := eventstore.DeriveID(prefix, fmt.Sprint(salt), fmt.Sprint(i))
				data, _ := json.Marshal(map[string]any{
					"memberId":  fmt.Sprintf("%s-%d", prefix, k),
					"firstName": "Ada",
					"lastName":  "Lovelace",
					"email":     fmt.Sprintf("member%d@example.org", k),
					"handicap":  12.4,
					"seq":       i,
					"notes":     padding,
				})
				meta, _ := json.Marshal(eventstore.Metadata{
					TenantID:      "club-1",
					CorrelationID: id.String(),
					CausationID:   id.String(),
					Actor:         "bench",
					SchemaVersion: 1,
				})
				out = append(out, row{
					id: id, stream: fmt.Sprintf("%s-%d", prefix, k), version: versions[k], typ: "MemberUpdated",
					data: data, meta: meta, tenant: "club-1", occurred: now,
				})
			}
		}
	}
	return out
}

func (r row) eventData() eventstore.EventData {
	var m eventstore.Metadata
	_ = json.Unmarshal(r.meta, &m)
	return eventstore.EventData{ID: r.id, Type: r.typ, Data: r.data, Metadata: m, OccurredAt: r.occurred}
}

// batches cuts rows into AppendMulti calls of BatchSize events, one Append
// per run of a stream, each expecting the version before its first event.
func batches(rows []row) [][]eventstore.Append {
	var out [][]eventstore.Append
	for start := 0; start < len(rows); start += BatchSize {
		chunk := rows[start:min(start+BatchSize, len(rows))]
		var call []eventstore.Append
		for _, r := range chunk {
			if len(call) == 0 || call[len(call)-1].Stream != r.stream {
				call = append(call, eventstore.Append{Stream: r.stream, Expected: eventstore.Exact(uint64(r.version - 1))})
			}
			a := &call[len(call)-1]
			a.Events = append(a.Events, r.eventData())
		}
		out = append(out, call)
	}
	return out
}

// Rounds is how many slices each measurement is cut into. The service and
// its raw baseline take turns slice by slice, so that load from elsewhere on
// the machine, and the tables' growth, weigh on both alike.
const Rounds = 10

// stopwatch sums the time spent in the turns of one contender.
type stopwatch time.Duration

func (s *stopwatch) time(f func() error) error {
	began := time.Now()
	err := f()
	*s += stopwatch(time.Since(began))
	return err
}

// rounds cuts n items into Rounds ranges, each a multiple of unit long
// except perhaps the last.
func rounds(n, unit int) [][2]int {
	per := max((n/Rounds+unit-1)/unit*unit, unit)
	var out [][2]int
	for start := 0; start < n; start += per {
		out = append(out, [2]int{start, min(start+per, n)})
	}
	return out
}

func (b *bench) appendMulti(ctx context.Context, res *Result, rows []row) error {
	calls := batches(rows)
	for _, t := range []string{"raw_insert", "raw_copy"} {
		if err := b.rawTable(ctx, t); err != nil {
			return err
		}
	}
	var service, insert, copyTime stopwatch
	for _, r := range rounds(len(rows), BatchSize) {
		err := service.time(func() error {
			for _, call := range calls[r[0]/BatchSize : (r[1]+BatchSize-1)/BatchSize] {
				if _, err := b.store.AppendMulti(ctx, call); err != nil {
					return fmt.Errorf("storebench: append multi: %w", err)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		err = insert.time(func() error {
			for start := r[0]; start < r[1]; start += BatchSize {
				if err := b.rawInsert(ctx, "raw_insert", rows[start:min(start+BatchSize, r[1])]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := copyTime.time(func() error { return b.rawCopy(ctx, "raw_copy", rows[r[0]:r[1]]) }); err != nil {
			return err
		}
	}
	n := len(rows)
	res.Figures = append(res.Figures,
		figure(figAppendMulti, n, service, "500-row INSERT … VALUES per transaction", insert),
		figure(figAppendMulti, n, service, fmt.Sprintf("COPY, %d rows per transaction", (n+Rounds-1)/Rounds), copyTime),
	)
	return nil
}

func (b *bench) single(ctx context.Context, res *Result, n int) error {
	// Each writer appends to streams of its own, one event per call, so the
	// figure shows the cost per commit rather than lock waits.
	per := n / Writers
	work := make([][]row, Writers)
	for w := range work {
		work[w] = genRows(fmt.Sprintf("single%d", w), per, 64, w)
	}
	if err := b.rawTable(ctx, "raw_single"); err != nil {
		return err
	}
	run := func(lo, hi int, do func(r row) error) error {
		var wg sync.WaitGroup
		errs := make(chan error, Writers)
		for w := range Writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, r := range work[w][lo:hi] {
					if err := do(r); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		return <-errs
	}
	var service, raw stopwatch
	for _, r := range rounds(per, 1) {
		err := service.time(func() error {
			return run(r[0], r[1], func(r row) error {
				_, err := b.store.Append(ctx, r.stream, eventstore.Exact(uint64(r.version-1)), r.eventData())
				if err != nil {
					return fmt.Errorf("storebench: append: %w", err)
				}
				return nil
			})
		})
		if err != nil {
			return err
		}
		err = raw.time(func() error {
			return run(r[0], r[1], func(r row) error { return b.rawInsert(ctx, "raw_single", []row{r}) })
		})
		if err != nil {
			return err
		}
	}
	res.Figures = append(res.Figures, figure(figSingle, per*Writers, service, "single-row INSERT per transaction, 16 connections", raw))
	return nil
}

func (b *bench) readAll(ctx context.Context, res *Result) error {
	// Give the raw table the same rows as the log, in the same order.
	if err := b.rawTable(ctx, "raw_read"); err != nil {
		return err
	}
	if _, err := b.pool.Exec(ctx, `INSERT INTO raw_read (id, stream, version, type, data, metadata, tenant_id, occurred_at)
SELECT id, stream, version, type, data, metadata, tenant_id, occurred_at FROM events ORDER BY tx_id, seq`); err != nil {
		return fmt.Errorf("storebench: fill raw table: %w", err)
	}
	for _, t := range []string{"events", "raw_read"} {
		if _, err := b.pool.Exec(ctx, `VACUUM ANALYZE `+t); err != nil {
			return fmt.Errorf("storebench: vacuum %s: %w", t, err)
		}
	}

	// The store shows no event while an older transaction anywhere on the
	// server may still commit one before it: on a busy server (another run
	// beside this one) wait until it shows the whole log before timing.
	var last eventstore.Position
	if err := b.pool.QueryRow(ctx, `SELECT tx_id::text::bigint, seq FROM events ORDER BY tx_id DESC, seq DESC LIMIT 1`).Scan(&last.Commit, &last.Prepare); err != nil {
		return fmt.Errorf("storebench: last event: %w", err)
	}
	for deadline := time.Now().Add(2 * time.Minute); ; {
		head, err := b.store.Head(ctx)
		if err != nil {
			return fmt.Errorf("storebench: head: %w", err)
		}
		if !head.Less(last) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("storebench: the store still shows %s of %s after 2 minutes: a transaction elsewhere holds it back", head, last)
		}
		time.Sleep(50 * time.Millisecond)
	}

	var service, raw stopwatch
	var n, nraw int
	from := eventstore.Start
	var tx, seq uint64
	for done := false; !done; {
		// Turns of ten pages each.
		err := service.time(func() error {
			for range 10 {
				page, err := b.store.ReadAll(ctx, from, PageSize)
				if err != nil {
					return fmt.Errorf("storebench: read all: %w", err)
				}
				if len(page) == 0 {
					done = true
					return nil
				}
				n += len(page)
				from = page[len(page)-1].Position
			}
			return nil
		})
		if err != nil {
			return err
		}
		err = raw.time(func() error {
			for range 10 {
				got, err := b.rawPage(ctx, &tx, &seq)
				if err != nil || got == 0 {
					return err
				}
				nraw += got
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if nraw != n {
		return fmt.Errorf("storebench: read %d events but %d raw rows", n, nraw)
	}
	res.Figures = append(res.Figures, figure(figReadAll, n, service, "keyset SELECT of the same columns, pages of 1000", raw))
	return nil
}

// rawPage reads the raw table's next page after (tx, seq), moving them on.
func (b *bench) rawPage(ctx context.Context, tx, seq *uint64) (int, error) {
	rows, err := b.pool.Query(ctx, `SELECT tx_id, seq, id, stream, version, type, data, metadata, occurred_at, recorded_at
FROM raw_read WHERE (tx_id, seq) > ($1::xid8, $2::bigint) ORDER BY tx_id, seq LIMIT $3`, *tx, int64(*seq), PageSize)
	if err != nil {
		return 0, fmt.Errorf("storebench: raw read: %w", err)
	}
	defer rows.Close()
	got := 0
	for rows.Next() {
		var (
			id            uuid.UUID
			stream, typ   string
			version       int64
			data, meta    []byte
			occ, recorded time.Time
		)
		if err := rows.Scan(tx, seq, &id, &stream, &version, &typ, &data, &meta, &occ, &recorded); err != nil {
			return 0, fmt.Errorf("storebench: raw read: %w", err)
		}
		got++
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("storebench: raw read: %w", err)
	}
	return got, nil
}

func figure(name string, n int, service stopwatch, baseline string, raw stopwatch) Figure {
	sec := time.Duration(service).Seconds()
	f := Figure{Name: name, Events: n, Seconds: sec, PerSec: float64(n) / sec, Baseline: baseline}
	if raw > 0 {
		f.RawPerS = float64(n) / time.Duration(raw).Seconds()
		f.Ratio = f.PerSec / f.RawPerS
	}
	return f
}

// rawTable creates a table shaped exactly like events: the same columns,
// defaults, identity and indexes.
func (b *bench) rawTable(ctx context.Context, name string) error {
	_, err := b.pool.Exec(ctx, `CREATE TABLE `+name+` (LIKE events INCLUDING ALL)`)
	if err != nil {
		return fmt.Errorf("storebench: raw table: %w", err)
	}
	return nil
}

var rawColumns = []string{"id", "stream", "version", "type", "data", "metadata", "tenant_id", "occurred_at"}

func (b *bench) rawInsert(ctx context.Context, table string, rows []row) error {
	var sb strings.Builder
	sb.WriteString("INSERT INTO " + table + " (" + strings.Join(rawColumns, ", ") + ") VALUES ")
	args := make([]any, 0, len(rows)*len(rawColumns))
	for i, r := range rows {
		if i > 0 {
			sb.WriteString(", ")
		}
		p := i * len(rawColumns)
		fmt.Fprintf(&sb, "($%d, $%d, $%d, $%d, $%d::jsonb, $%d::jsonb, $%d, $%d)", p+1, p+2, p+3, p+4, p+5, p+6, p+7, p+8)
		args = append(args, r.id, r.stream, r.version, r.typ, string(r.data), string(r.meta), r.tenant, r.occurred)
	}
	if _, err := b.pool.Exec(ctx, sb.String(), args...); err != nil {
		return fmt.Errorf("storebench: raw insert: %w", err)
	}
	return nil
}

func (b *bench) rawCopy(ctx context.Context, table string, rows []row) error {
	i := 0
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if i == len(rows) {
			return nil, nil
		}
		r := rows[i]
		i++
		return []any{r.id, r.stream, r.version, r.typ, string(r.data), string(r.meta), r.tenant, r.occurred}, nil
	})
	if _, err := b.pool.CopyFrom(ctx, pgx.Identifier{table}, rawColumns, src); err != nil {
		return fmt.Errorf("storebench: raw copy: %w", err)
	}
	return nil
}
