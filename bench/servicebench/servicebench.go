// Package servicebench measures the whole service the way it runs: it
// builds crm, starts `crm serve` as a child process on a scratch database
// and a Redis database of its own, feeds it a generated club population's
// history through the upstream streams, and times what clients and
// upstream services would see. Beside each figure it measures raw
// PostgreSQL doing comparable work in the same run, so the figures can be
// read against the machine they were taken on.
//
// The phases, in order:
//
//  1. Ingest: the first IngestEvents events of the history are XADDed to
//     scl.events, teetime.events and messaging.events; then crm serve
//     starts and the clock runs until its read models have caught up.
//     Raw baseline: COPY and 500-row INSERTs of as many rows of the log.
//  2. The rest of the history, if any (the large scale), goes straight
//     into the event store through the ingest command handler in-process.
//  3. Every read model is rebuilt from the whole log by `crm projections
//     rebuild` (crm serve stopped).
//  4. crm serve starts again; profile GET and resolve over HTTP from 8
//     clients against primary-key and index lookups over pgx; the
//     timeline and segments if built; then event → visible latency at a
//     steady rate.
//  5. Peak RSS of each crm serve, and sizes on disk.
package servicebench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/clubcrm/crm/adapters/auth"
	"github.com/clubcrm/crm/adapters/postgres"
	"github.com/clubcrm/crm/bench/population"
	"github.com/clubcrm/crm/bench/scratch"
	pgstore "github.com/clubcrm/crm/eventstore/postgres"
)

// Config sizes and places a run.
type Config struct {
	ServerURL string // PostgreSQL server; a scratch database is made on it
	RedisURL  string // a spare logical database, e.g. redis://127.0.0.1:6379/15
	People    int
	Events    int // upstream events of the whole history
	// IngestEvents is how many of them go through crm serve end to end;
	// the rest are written straight into the event store (and projected
	// by the rebuild).
	IngestEvents   int
	Requests       int // per HTTP figure
	VisibleRate    int // events/s of the event → visible figure
	VisibleSeconds float64
	Seed           uint64
	// ProfileDir, when set, receives CPU profiles of crm serve, each
	// started when its phase begins and stopped when it ends: ingest, the
	// query figures and the event → visible figure (go tool pprof crm
	// <file>).
	ProfileDir string
	// LogDir keeps crm's logs; a temporary directory, removed after a
	// successful run, when empty.
	LogDir string
	// KeepDB leaves the scratch database behind, for EXPLAIN; drop it
	// by hand (its name starts with crm_bench_).
	KeepDB bool
	// CRM is a crm binary to run instead of building one from the
	// module (to compare a change); build it with -tags crmbench for
	// profiles.
	CRM string
	// Resume names a database an earlier run of the same sizes and seed
	// kept (KeepDB) after writing the history: phases 1 and 2 are not run
	// again (their figures are that run's), the rebuild and the queries
	// are. It is migrated first and kept afterwards.
	Resume string
	// Rebuild, when not empty, names the projectors phase 3 rebuilds; the
	// others keep their read models and checkpoints.
	Rebuild []string
	// ResumeIngest, with Resume, is the ingest figure the earlier run
	// logged ("ingest measured": events/s and seconds): the table shows
	// it, and this run measures its raw baseline again on the kept log.
	ResumeIngestPerSec, ResumeIngestSeconds float64
	// ParallelRebuild runs the rebuilds of phase 3 at the same time, each
	// in its own process: the events/s of each is then its share of a
	// shared machine, and the phase takes as long as the slowest.
	ParallelRebuild bool
	Log             *slog.Logger
}

// Result is everything a run measured.
type Result struct {
	People      int            `json:"people"`
	Clubs       int            `json:"clubs"`
	Events      int            `json:"events"`
	HistoryFrom time.Time      `json:"historyFrom"`
	HistoryTo   time.Time      `json:"historyTo"`
	PerType     map[string]int `json:"eventsPerType"`
	Profiles    int64          `json:"profiles"` // rows of the customers read model
	Merged      int64          `json:"mergedProfiles"`
	Duplicates  int64          `json:"duplicateCandidates"`

	Ingest   IngestResult    `json:"ingest"`
	Direct   *DirectResult   `json:"direct,omitempty"`
	Rebuilds []RebuildResult `json:"rebuilds"`
	// Skipped names projectors moved past the directly written history
	// rather than run over it (see skipPast).
	Skipped []string     `json:"skippedPastHistory,omitempty"`
	Queries []HTTPResult `json:"queries"`
	// QueryScans are the sequential scans while the queries and the
	// latency figure ran.
	QueryScans []TableScans `json:"queryPhaseSeqScans,omitempty"`
	// Settle is the query phase's crm serve catching up on its
	// scheduler's work before the figures were taken.
	Settle   Settle         `json:"settleBeforeQueries"`
	Timeline TimelineResult `json:"timeline"`
	Segment  SegmentResult  `json:"segment"`
	Visible  VisibleResult  `json:"visible"`
	// Peak resident set of crm serve: while ingesting, and while serving
	// the query and latency figures over the full population.
	PeakRSSIngest  int64      `json:"peakRssIngestBytes"`
	PeakRSSQueries int64      `json:"peakRssQueriesBytes"`
	Sizes          SizeResult `json:"sizes"`
	// Maintenance says whether the harness stood in for the server's
	// autovacuum (off on the CI machines).
	Maintenance MaintenanceResult `json:"maintenance"`
	Targets     []Check           `json:"targets"`
	CPUProfiles []string          `json:"cpuProfiles,omitempty"`
	// CRM names the crm binary run when it was given (-crm) rather than
	// built from the module: the figures are then that binary's.
	CRM    string `json:"crmBinary,omitempty"`
	LogDir string `json:"logDir,omitempty"`
	// Resumed names the kept database this run resumed on: its ingest
	// and history figures are the earlier run's, not in this result.
	Resumed string `json:"resumedDatabase,omitempty"`
}

// bench is one run's state.
type bench struct {
	cfg      Config
	log      *slog.Logger
	dsn      string
	pool     *pgxpool.Pool
	store    *pgstore.Store
	redis    *redisDB
	pop      *population.Population
	sample   *population.Event // an activity envelope of the ingest phase, for checkDirect
	serveEnv serveEnv
	maint    *maintainer
	tokens   map[string]string
	http     *http.Client

	// latencySegments are the segments the event → visible figure moves
	// its members into (segmentService).
	latencySegments []uuid.UUID
	// run tells this run's latency events, tiers and segments from those
	// of an earlier run on the same database (-resume): their ids would be
	// duplicates the service drops, and their tiers already in place.
	run string

	profiles []string
}

// Run runs every phase and writes the table to w.
func Run(ctx context.Context, cfg Config, w io.Writer) (Result, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	var res Result
	b := &bench{cfg: cfg, log: cfg.Log, tokens: map[string]string{}, run: strconv.FormatInt(time.Now().UnixNano(), 36)}
	b.http = &http.Client{Transport: &http.Transport{MaxIdleConns: 2 * Clients, MaxIdleConnsPerHost: 2 * Clients}, Timeout: time.Minute}

	root, err := moduleRoot(ctx)
	if err != nil {
		return res, err
	}
	tmp, err := os.MkdirTemp("", "crmbench-")
	if err != nil {
		return res, fmt.Errorf("temporary directory: %w", err)
	}
	logDir := cfg.LogDir
	if logDir == "" {
		logDir = tmp
	} else if err := os.MkdirAll(logDir, 0o755); err != nil {
		return res, fmt.Errorf("log directory: %w", err)
	}
	ok := false
	defer func() {
		if ok || cfg.LogDir != "" {
			os.RemoveAll(tmp)
		} else {
			b.log.Warn("run failed: crm's logs are kept", slog.String("dir", tmp))
		}
	}()
	if cfg.CRM == "" {
		b.log.Info("building crm")
	}
	binDir := tmp
	if cfg.ProfileDir != "" {
		// pprof needs the binary the profiles were taken of.
		if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
			return res, fmt.Errorf("profile directory: %w", err)
		}
		binDir = cfg.ProfileDir
	}
	bin := cfg.CRM
	if bin == "" {
		if bin, err = buildCRM(ctx, root, binDir); err != nil {
			return res, err
		}
	}

	if b.redis, err = claimRedis(ctx, cfg.RedisURL, b.log); err != nil {
		return res, err
	}
	defer b.redis.release()
	var drop func()
	if cfg.Resume != "" {
		if b.dsn, err = scratch.Existing(ctx, cfg.ServerURL, cfg.Resume); err != nil {
			return res, err
		}
		b.log.Info("resuming on a kept database: the ingest and history phases are not run again", slog.String("url", b.dsn))
		res.Resumed = cfg.Resume
	} else if b.dsn, drop, err = scratch.Database(ctx, cfg.ServerURL); err != nil {
		return res, err
	}
	if cfg.KeepDB || cfg.Resume != "" {
		b.log.Info("the scratch database will be kept", slog.String("url", b.dsn))
	} else {
		defer drop()
	}
	pcfg, err := postgres.ParseConfig(b.dsn)
	if err != nil {
		return res, err
	}
	pcfg.MaxConns = 10
	if b.pool, err = pgxpool.NewWithConfig(ctx, pcfg); err != nil {
		return res, fmt.Errorf("pool: %w", err)
	}
	defer b.pool.Close()
	b.store = pgstore.New(b.pool)
	defer b.store.Close()
	if b.maint, err = startMaintenance(ctx, b.pool, b.log); err != nil {
		return res, err
	}
	defer b.maint.close()

	secret := make([]byte, 24)
	_, _ = rand.Read(secret)
	b.serveEnv = serveEnv{
		bin: bin, databaseURL: b.dsn, redisURL: b.redis.url, jwtSecret: hex.EncodeToString(secret),
		consumerName: "crmbench-" + b.redis.owner, logDir: logDir, profile: cfg.ProfileDir != "",
	}

	b.log.Info("generating the population", slog.Int("people", cfg.People), slog.Int("events", cfg.Events))
	b.pop = population.New(population.Config{People: cfg.People, Events: cfg.Events, Seed: cfg.Seed})
	res.People, res.Clubs, res.CRM = cfg.People, b.pop.Clubs, cfg.CRM
	for c := range b.pop.Clubs {
		t := population.ClubTenant(c)
		tok, err := auth.Mint([]byte(b.serveEnv.jwtSecret), auth.Principal{Subject: "crmbench", Tenant: t, Roles: []string{auth.RoleRead}}, 12*time.Hour, time.Now())
		if err != nil {
			return res, err
		}
		b.tokens[t] = tok
	}

	if cfg.Resume == "" {
		if err := b.history(ctx, &res); err != nil {
			return res, err
		}
	} else if err := b.resumed(ctx, &res); err != nil {
		return res, err
	}

	// 3. Rebuild every read model.
	b.maint.setAnalyzeOnly(true)
	if res.Rebuilds, err = b.rebuild(ctx); err != nil {
		return res, err
	}
	b.maint.setAnalyzeOnly(false)
	if res.Direct != nil || cfg.Resume != "" {
		for _, r := range res.Rebuilds {
			if r.Skipped != "" {
				res.Skipped = append(res.Skipped, r.Name)
			}
		}
		if cfg.Resume != "" {
			// Projectors this binary has that the kept database has no
			// checkpoint of yet: the generated history holds nothing for
			// them (no segment, nothing to publish).
			for _, n := range historyFree {
				if !slices.Contains(res.Skipped, n) {
					res.Skipped = append(res.Skipped, n)
				}
			}
		}
		if err := b.skipPast(ctx, res.Skipped); err != nil {
			return res, err
		}
	}
	return b.serveQueries(ctx, cfg, w, res, &ok)
}

// historyFree are the projectors for which the generated history holds
// nothing to apply: it has no segment events, and the outbox must not
// publish it.
var historyFree = []string{"outbox", "segments", "segment-membership"}

// history runs phases 1 and 2: the ingest end to end, then the rest of
// the history straight into the event store.
func (b *bench) history(ctx context.Context, res *Result) error {
	cfg := b.cfg
	// 1. Ingest end to end.
	k := min(cfg.IngestEvents, cfg.Events)
	per, err := b.preload(ctx, k)
	if err != nil {
		return err
	}
	srv, ing, err := b.ingestPhase(ctx, sum(per), per)
	if err != nil {
		return err
	}
	ing.PeakRSS = max(ing.PeakRSS, srv.stop())
	res.PeakRSSIngest = ing.PeakRSS
	if ing.Raw, err = b.rawIngest(ctx, ing.Events, ing.PerSec); err != nil {
		return err
	}
	res.Ingest = ing
	b.log.Info("ingest measured", slog.String("rate", fmtRate(ing.PerSec)), slog.Float64("seconds", ing.Seconds))
	if b.sample != nil {
		if err := b.checkDirect(ctx, *b.sample); err != nil {
			return err
		}
	}

	// 2. The rest of the history.
	if b.pop.Remaining() > 0 {
		d, err := b.direct(ctx)
		if err != nil {
			return err
		}
		res.Direct = &d
	}
	res.Events = cfg.Events - b.pop.Remaining()
	res.PerType = b.pop.PerType
	res.HistoryFrom = population.Start
	res.HistoryTo = b.lastOccurred(ctx)
	return nil
}

// resumed fills what a resumed run knows of the history without writing
// it again.
func (b *bench) resumed(ctx context.Context, res *Result) error {
	if b.cfg.ResumeIngestPerSec > 0 {
		k := min(b.cfg.IngestEvents, b.cfg.Events)
		res.Ingest = IngestResult{Events: k, PerSec: b.cfg.ResumeIngestPerSec, Seconds: b.cfg.ResumeIngestSeconds, FromEarlierRun: true}
		raw, err := b.rawIngest(ctx, k, b.cfg.ResumeIngestPerSec)
		if err != nil {
			return err
		}
		res.Ingest.Raw = raw
	}
	// Generate the history again, writing nothing, so the queries know
	// who it made (their addresses, who was seen).
	prog := b.progress("generate the kept history again (nothing written)", b.cfg.Events)
	for n := 0; ; n++ {
		if _, ok := b.pop.Next(); !ok {
			break
		}
		if n%100_000 == 0 {
			prog.set(n)
		}
	}
	prog.done()
	res.Events = b.cfg.Events - b.pop.Remaining()
	res.PerType = b.pop.PerType
	res.HistoryFrom = population.Start
	res.HistoryTo = b.lastOccurred(ctx)
	return nil
}

// serveQueries runs phases 4 and 5 and prints the table.
func (b *bench) serveQueries(ctx context.Context, cfg Config, w io.Writer, res Result, ok *bool) (Result, error) {
	// 4. Queries and latency over the whole population.
	srv, err := startServe(ctx, b.serveEnv, "serve-queries", b.log)
	if err != nil {
		return res, err
	}
	defer srv.stop()
	if _, err := b.waitCaughtUp(ctx, srv, time.Now()); err != nil {
		return res, err
	}
	if res.Settle, err = b.settle(ctx, srv); err != nil {
		return res, err
	}
	if err := b.counts(ctx, &res); err != nil {
		return res, err
	}
	before, err := b.scanCounts(ctx)
	if err != nil {
		return res, err
	}
	if err := b.queries(ctx, srv, &res); err != nil {
		return res, err
	}
	res.QueryScans = b.scansSince(ctx, before)
	res.PeakRSSQueries = max(srv.peakRSS(), srv.stop())

	// 5. Sizes.
	res.Maintenance = b.maint.close()
	if res.Sizes, err = b.sizes(ctx); err != nil {
		return res, err
	}
	res.CPUProfiles = b.profiles
	res.Targets = checks(res)
	if cfg.LogDir != "" {
		res.LogDir = cfg.LogDir
	}
	Print(w, res)
	*ok = true
	return res, nil
}

// queries runs the figures of phase 4 on srv.
func (b *bench) queries(ctx context.Context, srv *server, res *Result) error {
	rcfg, err := pgxpool.ParseConfig(b.dsn)
	if err != nil {
		return fmt.Errorf("raw pool: %w", err)
	}
	rcfg.MaxConns = Clients
	raw, err := pgxpool.NewWithConfig(ctx, rcfg)
	if err != nil {
		return fmt.Errorf("raw pool: %w", err)
	}
	defer raw.Close()
	paths, err := b.apiPaths(ctx, srv)
	if err != nil {
		return err
	}
	stop := b.profile(ctx, srv, "queries")
	get, err := b.profileGet(ctx, srv, raw, b.cfg.Requests)
	if err != nil {
		return err
	}
	b.log.Info("profile GET measured", slog.String("service", get.Service.String()), slog.String("raw", get.Raw.String()))
	rs, err := b.resolve(ctx, srv, raw, b.cfg.Requests)
	if err != nil {
		return err
	}
	b.log.Info("resolve measured", slog.String("service", rs.Service.String()), slog.String("raw", rs.Raw.String()))
	res.Queries = []HTTPResult{get, rs}
	if res.Timeline, err = b.timeline(ctx, srv, paths, raw, b.cfg.Requests); err != nil {
		return err
	}
	stop()
	if res.Segment, err = b.segment(ctx, srv, paths); err != nil {
		return err
	}
	stop = b.profile(ctx, srv, "visible")
	cpu := readCPU(srv.cmd.Process.Pid)
	if res.Visible, err = b.visible(ctx, b.cfg.VisibleRate, time.Duration(b.cfg.VisibleSeconds*float64(time.Second))); err != nil {
		return err
	}
	res.Visible.CPU = readCPU(srv.cmd.Process.Pid).since(cpu, res.Visible.Sent)
	stop()
	b.log.Info("event → visible measured", slog.String("latency", res.Visible.Latency.String()))
	return nil
}

func (b *bench) counts(ctx context.Context, res *Result) error {
	err := b.pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE status = 'MERGED') FROM customers`).Scan(&res.Profiles, &res.Merged)
	if err != nil {
		return fmt.Errorf("count profiles: %w", err)
	}
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM duplicate_candidates`).Scan(&res.Duplicates); err != nil {
		return fmt.Errorf("count duplicates: %w", err)
	}
	return nil
}

// lastOccurred answers when the last event of the history happened.
func (b *bench) lastOccurred(ctx context.Context) time.Time {
	var t time.Time
	_ = b.pool.QueryRow(ctx, `SELECT max(occurred_at) FROM events`).Scan(&t)
	return t.UTC()
}

// profile starts a CPU profile of srv for the phase name, when profiles
// are asked for, and answers the function that ends it at the end of the
// phase and writes it to ProfileDir/<name>.pprof. A profile that fails is
// reported and the phase goes on.
func (b *bench) profile(ctx context.Context, srv *server, name string) (stop func()) {
	if b.cfg.ProfileDir == "" {
		return func() {}
	}
	if err := srv.startProfile(ctx); err != nil {
		b.log.Warn("cpu profile", slog.String("phase", name), slog.Any("error", err))
		return func() {}
	}
	return func() {
		path := filepath.Join(b.cfg.ProfileDir, name+".pprof")
		if err := srv.stopProfile(ctx, path); err != nil {
			b.log.Warn("cpu profile", slog.String("phase", name), slog.Any("error", err))
			return
		}
		b.profiles = append(b.profiles, path)
		b.log.Info("cpu profile written", slog.String("phase", name), slog.String("file", path))
	}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// progress logs how a long phase is going, every 5 seconds at most.
type progress struct {
	log   *slog.Logger
	name  string
	total int
	began time.Time
	last  time.Time
	n     int
}

func (b *bench) progress(name string, total int) *progress {
	b.log.Info(name, slog.String("of", thousands(int64(total))))
	return &progress{log: b.log, name: name, total: total, began: time.Now(), last: time.Now()}
}

func (p *progress) set(n int) {
	p.n = n
	if time.Since(p.last) < 5*time.Second {
		return
	}
	p.last = time.Now()
	el := time.Since(p.began)
	rate := float64(n) / el.Seconds()
	attrs := []any{slog.String("done", fmt.Sprintf("%s of %s", thousands(int64(n)), thousands(int64(p.total)))),
		slog.String("rate", fmtRate(rate))}
	if rate > 0 && n < p.total {
		attrs = append(attrs, slog.Duration("left", (time.Duration(float64(p.total-n)/rate)*time.Second).Round(time.Second)))
	}
	p.log.Info(p.name, attrs...)
}

func (p *progress) done() {
	el := time.Since(p.began)
	p.log.Info(p.name+": done", slog.Duration("took", el.Round(time.Millisecond)))
}

// series writes milliseconds compactly: "12 15 14 …".
func series(ms []float64) string {
	parts := make([]string, len(ms))
	for i, v := range ms {
		parts[i] = fmt.Sprintf("%.0f", v)
	}
	return strings.Join(parts, " ") + " ms"
}

func rowsOfJoin(rs []RawTime) string {
	if len(rs) < 3 {
		return "-"
	}
	return thousands(rs[2].Rows)
}

func rowsOf(rs []RawTime) string {
	if len(rs) == 0 {
		return "-"
	}
	return thousands(rs[0].Rows)
}

// Print writes res as the table of figures, then the targets.
func Print(w io.Writer, res Result) {
	if res.CRM != "" {
		fmt.Fprintf(w, "crm: %s, given with -crm, not built from this tree\n", res.CRM)
	}
	if m := res.Maintenance; m.Emulated {
		fmt.Fprintf(w, "the server runs with autovacuum %s: the harness vacuumed and analyzed the scratch database by autovacuum's default thresholds (%d analyzes, %d vacuums)\n",
			m.ServerAutovacuum, m.Analyzes, m.Vacuums)
	}
	fmt.Fprintf(w, "population: %s people in %d clubs (%s profiles, %s merged, %s duplicate pairs to review); %s upstream events from %s to %s\n",
		thousands(int64(res.People)), res.Clubs, thousands(res.Profiles), thousands(res.Merged), thousands(res.Duplicates),
		thousands(int64(res.Events)), res.HistoryFrom.Format("2006-01-02"), res.HistoryTo.Format("2006-01-02"))
	types := make([]string, 0, len(res.PerType))
	for t := range res.PerType {
		types = append(types, t)
	}
	sort.Slice(types, func(i, j int) bool { return res.PerType[types[i]] > res.PerType[types[j]] })
	parts := make([]string, len(types))
	for i, t := range types {
		parts[i] = fmt.Sprintf("%s %s", t, thousands(int64(res.PerType[t])))
	}
	fmt.Fprintf(w, "  %s\n", strings.Join(parts, ", "))
	in := res.Ingest
	if in.FromEarlierRun {
		fmt.Fprintf(w, "ingest: %s events through crm serve in %.1f s, as the run that wrote the kept history logged it\n", thousands(int64(in.Events)), in.Seconds)
	} else {
		fmt.Fprintf(w, "ingest: %s events through crm serve (%s stored events, %s dead letters); acknowledged at %.1f s, read models caught up at %.1f s\n",
			thousands(int64(in.Events)), thousands(in.StoredEvents), thousands(in.DeadLetters), in.AckedSeconds, in.Seconds)
	}
	if in.DeadLetterHint != "" {
		fmt.Fprintf(w, "  first dead letter: %s\n", in.DeadLetterHint)
	}
	if in.CPU != nil {
		fmt.Fprintf(w, "  processor time: %s\n", in.CPU)
	}
	if d := res.Direct; d != nil {
		fmt.Fprintf(w, "the other %s events were written without crm serve at %s: %s activity events straight into the event store as the ingest command records them, %s through the ingest command in-process\n",
			thousands(int64(d.Events)), fmtRate(d.PerSec), thousands(int64(d.Straight)), thousands(int64(d.Command)))
	}
	for _, s := range res.Skipped {
		fmt.Fprintf(w, "projector %s was moved past the directly written history, not run over it\n", s)
	}
	fmt.Fprintln(w)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tservice\traw baseline\tservice ÷ raw\t")
	row := func(name, svc, raw, r string) { fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", name, svc, raw, r) }
	for i, r := range in.Raw {
		name, svc := "", ""
		if i == 0 {
			name, svc = "ingest end to end, upstream events/s", fmtRate(in.PerSec)
		}
		row(name, svc, r.Baseline+" "+fmtRate(r.PerSec), fmt.Sprintf("%.2f", r.Ratio))
	}
	v := res.Visible
	row(fmt.Sprintf("event → visible in the profile at %s/s", thousands(int64(v.Rate))), v.Latency.String(), "-", "-")
	qs := append(append([]HTTPResult(nil), res.Queries...), res.Timeline.Pages...)
	for _, q := range qs {
		row(fmt.Sprintf("%s, HTTP, %d clients", q.Name, q.Clients), q.Service.String(), q.Raw.String(), fmt.Sprintf("p50 %.1f, p99 %.1f", q.RatioP50, q.RatioP99))
	}
	if res.Timeline.NotBuilt != "" {
		row("timeline pages, HTTP", "not built yet", "-", "-")
	}
	seg := res.Segment
	for i, r := range seg.Raw {
		name, svc, ratio := "", "", "-"
		if i == 0 {
			name, svc = "segment refresh, example segment", "not built yet"
			if sv := seg.Service; sv != nil {
				name = fmt.Sprintf("segment refresh, example segment in each of %d clubs, all profiles", sv.Segments)
				svc = fmt.Sprintf("%.3f s (per club %s)", sv.RefreshAllSeconds, sv.Refresh.String())
			}
		}
		if sv := seg.Service; sv != nil && i == len(seg.Raw)-1 && r.Seconds > 0 {
			ratio = fmt.Sprintf("%.1f", sv.RefreshAllSeconds/r.Seconds)
		}
		row(name, svc, fmt.Sprintf("%s %.3f s", r.Baseline, r.Seconds), ratio)
	}
	if m := v.Membership; m != nil {
		row("event → segment membership change", m.String(), "-", "-")
	} else {
		row("event → segment membership change", "not built yet", "-", "-")
	}
	for _, r := range res.Rebuilds {
		if r.Skipped == "" {
			row("projection rebuild: "+r.Name+", events/s", fmtRate(r.PerSec), "-", "-")
		}
	}
	row("peak RSS of crm serve", fmt.Sprintf("%s ingesting, %s querying", fmtBytes(res.PeakRSSIngest), fmtBytes(res.PeakRSSQueries)), "-", "-")
	row("read models on disk", fmtBytes(res.Sizes.ReadModels), "-", "-")
	tw.Flush()

	fmt.Fprintf(w, "\nevent → visible: %s events sent at %s, %d never seen; %s; median by second sent: %s\n",
		thousands(int64(v.Sent)), fmtRate(v.Achieved), v.Missing, v.Latency.Detail(), series(v.PerSecondP50))
	fmt.Fprintf(w, "  XADD → recorded in the event store: %s\n  recorded → visible in the read model: %s\n", v.Recorded.Detail(), v.Projected.Detail())
	if v.CPU != nil {
		fmt.Fprintf(w, "  processor time, sending and until the last was seen or given up on: %s\n", v.CPU)
	}
	if m := v.Membership; m != nil {
		fmt.Fprintf(w, "  XADD → in the club's latency segment: %s; %d never seen\n", m.Detail(), v.MembershipMissing)
	}
	if sv := seg.Service; sv != nil {
		fmt.Fprintf(w, "segments: %d example and %d latency segments created and computed in %.1f s; refreshing every club's example segment took %.3f s (%.3f s in the database), %s members in all\n",
			sv.Segments, sv.Segments, sv.InitialSeconds, sv.RefreshAllSeconds, sv.DatabaseSeconds, thousands(sv.Members))
	}
	if st := res.Settle; st.Settled {
		fmt.Fprintf(w, "before the queries, crm serve's scheduler caught up in %.1f s (%s scores to compute for today, %s due an alert decision, %s metric windows to move); the query figures were taken after it\n",
			st.Seconds, thousands(st.Rescore), thousands(st.Alerts), thousands(st.Windows))
	} else {
		fmt.Fprintf(w, "before the queries, crm serve's scheduler had not caught up after %.0f s (%s scores to compute for today, %s due an alert decision, %s metric windows at the start): the query figures carry its work\n",
			st.Seconds, thousands(st.Rescore), thousands(st.Alerts), thousands(st.Windows))
	}
	if res.Resumed != "" {
		fmt.Fprintf(w, "resumed on the kept database %s: the ingest figure is the earlier run's (its log), its raw baseline this run's over the same log\n", res.Resumed)
	}
	for _, r := range res.Rebuilds {
		if r.Parallel > 1 {
			fmt.Fprintf(w, "the rebuilds ran at the same time (%d processes): each events/s is its share of the machine\n", r.Parallel)
			break
		}
	}
	for _, q := range qs {
		fmt.Fprintf(w, "%s: %s requests at %s, statuses %v; %s; raw: %s", q.Name, thousands(int64(q.Service.Count)), fmtRate(q.PerSec),
			q.Statuses, q.Service.Detail(), q.Baseline)
		if q.Raw != nil {
			fmt.Fprintf(w, " at %s, %s", fmtRate(q.RawPerS), q.Raw.Detail())
		}
		if q.Note != "" {
			fmt.Fprintf(w, "; %s", q.Note)
		}
		fmt.Fprintln(w)
	}
	if seg.NotBuilt != "" {
		fmt.Fprintf(w, "segments: %s; raw baseline over %s profiles, %s: %s rows, %s with bookings\n", seg.NotBuilt, thousands(seg.Profiles), seg.Rules, rowsOf(seg.Raw), rowsOfJoin(seg.Raw))
	}
	for _, r := range res.Rebuilds {
		if r.Skipped == "" {
			fmt.Fprintf(w, "rebuild %s: %s events in %.1f s, crm projections peak RSS %s\n", r.Name, thousands(r.Events), r.Seconds, fmtBytes(r.PeakRSS))
		}
	}
	for _, p := range []struct {
		name  string
		scans []TableScans
	}{{"ingest", in.Scans}, {"the queries, segments and latency figures", res.QueryScans}} {
		var parts []string
		for _, t := range p.scans {
			parts = append(parts, fmt.Sprintf("%s %s scans reading %s rows", t.Table, thousands(t.SeqScans), thousands(t.SeqTuples)))
		}
		if len(parts) > 0 {
			fmt.Fprintf(w, "sequential scans during %s: %s\n", p.name, strings.Join(parts, "; "))
		}
	}
	var sizes []string
	for _, t := range res.Sizes.Tables {
		sizes = append(sizes, fmt.Sprintf("%s %s", t.Name, fmtBytes(t.Bytes)))
	}
	fmt.Fprintf(w, "on disk: database %s, event store %s, read models %s; %s\n", fmtBytes(res.Sizes.Database),
		fmtBytes(res.Sizes.EventStore), fmtBytes(res.Sizes.ReadModels), strings.Join(sizes, ", "))
	fmt.Fprintln(w)
	PrintTargets(w, res.Targets)
}
