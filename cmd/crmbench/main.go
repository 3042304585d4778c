// Command crmbench runs the service's benchmarks against a real PostgreSQL
// server and Redis, and writes the figures, with what they were measured
// on, to bench/results/latest.json. See docs/performance.md.
//
//	BENCH_SCALE=smoke|small|large  (or -scale; default large)
//	TEST_DATABASE_URL              the PostgreSQL server (default: the local one)
//	BENCH_REDIS_URL                a spare Redis database (default redis://127.0.0.1:6379/15)
//
// Each benchmark is a section; add one to sections to have it run and
// reported. Sections:
//
//	eventstore  the PostgreSQL event store against raw INSERT/COPY/SELECT
//	service     crm serve end to end (bench/servicebench)
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/clubcrm/crm/bench/population"
	"github.com/clubcrm/crm/bench/servicebench"
	"github.com/clubcrm/crm/bench/storebench"
)

// DefaultServerURL is the server used unless TEST_DATABASE_URL says otherwise.
const DefaultServerURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// DefaultRedisURL is the spare Redis database used unless BENCH_REDIS_URL
// says otherwise; the service benchmark empties it.
const DefaultRedisURL = "redis://127.0.0.1:6379/15"

// Sizes are the workload sizes of a scale.
type Sizes struct {
	// StoreEvents sizes the eventstore section.
	StoreEvents int `json:"storeEvents"`
	// People and Events size the generated population and its history;
	// IngestEvents of them go through crm serve end to end, the rest
	// straight into the event store.
	People       int `json:"people"`
	Events       int `json:"events"`
	IngestEvents int `json:"ingestEvents"`
	// Requests per HTTP figure; VisibleSeconds at 1,000 events/s.
	Requests       int     `json:"requests"`
	VisibleSeconds float64 `json:"visibleSeconds"`
}

var scales = map[string]Sizes{
	// smoke checks the harness itself in go test (cmd/crmbench).
	"smoke": {StoreEvents: 5_000, People: 1_000, Events: 10_000, IngestEvents: 6_000, Requests: 2_000, VisibleSeconds: 5},
	"small": {StoreEvents: 20_000, People: 10_000, Events: 50_000, IngestEvents: 50_000, Requests: 4_000, VisibleSeconds: 10},
	"large": {StoreEvents: 1_000_000, People: 1_000_000, Events: 10_000_000, IngestEvents: 2_000_000, Requests: 100_000, VisibleSeconds: 60},
}

// Env is what every section gets.
type Env struct {
	ServerURL       string
	RedisURL        string
	Sizes           Sizes
	ProfileDir      string
	LogDir          string
	KeepDB          bool
	CRM             string
	Resume          string
	Rebuild         []string
	ParallelRebuild bool
	// ResumeIngest*: see servicebench.Config.
	ResumeIngestPerSec, ResumeIngestSeconds float64
	Log                                     *slog.Logger
}

type section struct {
	name string
	run  func(ctx context.Context, env Env, w io.Writer) (any, error)
}

var sections = []section{
	{"eventstore", func(ctx context.Context, env Env, w io.Writer) (any, error) {
		return storebench.Run(ctx, env.ServerURL, env.Sizes.StoreEvents, w)
	}},
	{"service", func(ctx context.Context, env Env, w io.Writer) (any, error) {
		return servicebench.Run(ctx, servicebench.Config{
			ServerURL: env.ServerURL, RedisURL: env.RedisURL,
			People: env.Sizes.People, Events: env.Sizes.Events, IngestEvents: env.Sizes.IngestEvents,
			Requests: env.Sizes.Requests, VisibleRate: 1000, VisibleSeconds: env.Sizes.VisibleSeconds,
			Seed: population.DefaultSeed, ProfileDir: env.ProfileDir, LogDir: env.LogDir, KeepDB: env.KeepDB, CRM: env.CRM, Log: env.Log,
			Resume: env.Resume, Rebuild: env.Rebuild, ParallelRebuild: env.ParallelRebuild,
			ResumeIngestPerSec: env.ResumeIngestPerSec, ResumeIngestSeconds: env.ResumeIngestSeconds,
		}, w)
	}},
}

// SectionReport is one section's outcome in the report.
type SectionReport struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
	Result  any     `json:"result,omitempty"`
	Error   string  `json:"error,omitempty"`
}

// Report is the file crmbench writes.
type Report struct {
	StartedAt       time.Time `json:"startedAt"`
	Seconds         float64   `json:"seconds"`
	Scale           string    `json:"scale"`
	Sizes           Sizes     `json:"sizes"`
	CPUs            int       `json:"cpus"`
	GOMAXPROCS      int       `json:"gomaxprocs"`
	GoVersion       string    `json:"goVersion"`
	PostgresVersion string    `json:"postgresVersion"`
	// PostgresSettings are the server settings the figures depend on most
	// (memory, WAL, checkpoints): docs/performance.md says which were used.
	PostgresSettings map[string]string `json:"postgresSettings"`
	GitCommit        string            `json:"gitCommit"`
	GitDirty         bool              `json:"gitDirty"`
	// Load averages before and after the run: figures taken on a busy
	// machine are not comparable with those of an idle one.
	LoadBefore string          `json:"loadBefore,omitempty"`
	LoadAfter  string          `json:"loadAfter,omitempty"`
	Sections   []SectionReport `json:"sections"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	_, err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "crmbench:", err)
		os.Exit(1)
	}
}

// errTargets is answered under -strict when a target was missed.
var errTargets = errors.New("some performance targets were missed")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) (Report, error) {
	fs := flag.NewFlagSet("crmbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scale := fs.String("scale", envOr("BENCH_SCALE", "large"), "workload size: smoke, small or large")
	out := fs.String("out", "", "report file (default bench/results/latest.json in the repository)")
	only := fs.String("only", "", "comma-separated sections to run (default all: "+sectionNames()+")")
	profile := fs.String("profile", "", "directory for CPU profiles of crm serve (ingest, queries, visible)")
	logDir := fs.String("logs", "", "directory to keep crm's logs in (default: a temporary one, kept only on failure)")
	people := fs.Int("people", 0, "override the scale's number of people")
	events := fs.Int("events", 0, "override the scale's number of upstream events")
	ingestEvents := fs.Int("ingest-events", 0, "override how many events go through crm serve (the rest straight into the event store)")
	requests := fs.Int("requests", 0, "override the scale's HTTP requests per query figure")
	visibleSeconds := fs.Float64("visible-seconds", 0, "override how long the event → visible figure sends events")
	strict := fs.Bool("strict", false, "exit non-zero when a performance target is missed")
	keepDB := fs.Bool("keep-db", false, "keep the service section's scratch database (for EXPLAIN); its URL is logged")
	crm := fs.String("crm", "", "run this crm binary instead of building one (build it with -tags crmbench for -profile)")
	resume := fs.String("resume", "", "resume on a database an earlier run kept (-keep-db) with the same sizes: skip the ingest and history phases, run the rebuild and the queries")
	rebuild := fs.String("rebuild", "", "comma-separated projectors to rebuild (default: every one with a read model)")
	parallel := fs.Bool("rebuild-parallel", false, "run the rebuilds at the same time, each in its own process")
	resumeIngest := fs.String("resume-ingest", "", "with -resume: the earlier run's logged ingest figure as EVENTS_PER_SEC/SECONDS, shown beside a raw baseline measured again")
	if err := fs.Parse(args); err != nil {
		return Report{}, err
	}

	sizes, ok := scales[*scale]
	if !ok {
		return Report{}, fmt.Errorf("unknown scale %q (smoke, small or large)", *scale)
	}
	label := *scale
	if *people > 0 || *events > 0 || *ingestEvents > 0 || *requests > 0 || *visibleSeconds > 0 {
		label += " (sizes overridden)"
	}
	if *people > 0 {
		sizes.People = *people
	}
	if *events > 0 {
		sizes.Events = *events
	}
	if *ingestEvents > 0 {
		sizes.IngestEvents = *ingestEvents
	}
	if *requests > 0 {
		sizes.Requests = *requests
	}
	if *visibleSeconds > 0 {
		sizes.VisibleSeconds = *visibleSeconds
	}
	sizes.IngestEvents = min(sizes.IngestEvents, sizes.Events)

	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	env := Env{
		ServerURL: envOr("TEST_DATABASE_URL", DefaultServerURL), RedisURL: envOr("BENCH_REDIS_URL", DefaultRedisURL),
		Sizes: sizes, ProfileDir: *profile, LogDir: *logDir, KeepDB: *keepDB, CRM: *crm, Log: log,
		Resume: *resume, ParallelRebuild: *parallel,
	}
	if *rebuild != "" {
		env.Rebuild = strings.Split(*rebuild, ",")
	}
	if *resumeIngest != "" {
		rate, secs, ok := strings.Cut(*resumeIngest, "/")
		var err1, err2 error
		env.ResumeIngestPerSec, err1 = strconv.ParseFloat(rate, 64)
		env.ResumeIngestSeconds, err2 = strconv.ParseFloat(secs, 64)
		if !ok || err1 != nil || err2 != nil || *resume == "" {
			return Report{}, fmt.Errorf("-resume-ingest: want EVENTS_PER_SEC/SECONDS with -resume, not %q", *resumeIngest)
		}
	}
	rep := Report{
		StartedAt:  time.Now().UTC(),
		Scale:      label,
		Sizes:      sizes,
		CPUs:       runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		GoVersion:  runtime.Version(),
		GitCommit:  git("rev-parse", "HEAD"),
		GitDirty:   git("status", "--porcelain") != "",
		LoadBefore: loadAvg(),
	}
	var err error
	if rep.PostgresVersion, rep.PostgresSettings, err = serverVersion(ctx, env.ServerURL); err != nil {
		return rep, err
	}
	fmt.Fprintf(stdout, "crmbench %s: %d CPUs (load %s), %s, PostgreSQL %s, commit %.12s%s\n",
		label, rep.CPUs, rep.LoadBefore, rep.GoVersion, rep.PostgresVersion, rep.GitCommit, dirty(rep.GitDirty))
	parts := make([]string, 0, len(benchSettings))
	for _, name := range benchSettings {
		parts = append(parts, name+"="+rep.PostgresSettings[name])
	}
	fmt.Fprintf(stdout, "PostgreSQL settings: %s\n\n", strings.Join(parts, " "))

	var want []string
	if *only != "" {
		want = strings.Split(*only, ",")
		for _, w := range want {
			if !slices.ContainsFunc(sections, func(s section) bool { return s.name == w }) {
				return rep, fmt.Errorf("no section %q (%s)", w, sectionNames())
			}
		}
	}
	failed, missed := false, false
	for _, s := range sections {
		if want != nil && !slices.Contains(want, s.name) {
			continue
		}
		fmt.Fprintf(stdout, "== %s\n", s.name)
		began := time.Now()
		res, err := s.run(ctx, env, stdout)
		sr := SectionReport{Name: s.name, Seconds: time.Since(began).Seconds(), Result: res}
		if err != nil {
			sr.Error = err.Error()
			failed = true
			fmt.Fprintf(stdout, "error: %v\n", err)
		}
		if r, ok := res.(servicebench.Result); ok {
			for _, c := range r.Targets {
				missed = missed || (c.Met != nil && !*c.Met)
			}
		}
		rep.Sections = append(rep.Sections, sr)
		fmt.Fprintf(stdout, "(%s took %s)\n\n", s.name, time.Since(began).Round(time.Second))
		if ctx.Err() != nil {
			break
		}
	}
	if err := ctx.Err(); err != nil {
		// An interrupted run leaves the last report as it was.
		return rep, fmt.Errorf("interrupted: %w", err)
	}
	rep.Seconds = time.Since(rep.StartedAt).Seconds()
	rep.LoadAfter = loadAvg()
	if *scale != "large" {
		fmt.Fprintf(stdout, "The targets are set for the large scale; at %s they are for information only.\n", *scale)
	}
	fmt.Fprintf(stdout, "load average %s before, %s after; %s in all\n", rep.LoadBefore, rep.LoadAfter,
		time.Duration(rep.Seconds*float64(time.Second)).Round(time.Second))

	path := *out
	if path == "" {
		root := git("rev-parse", "--show-toplevel")
		if root == "" {
			root = "."
		}
		path = filepath.Join(root, "bench", "results", "latest.json")
	}
	if err := writeReport(path, rep); err != nil {
		return rep, err
	}
	fmt.Fprintln(stdout, "wrote", path)
	switch {
	case failed:
		return rep, errors.New("some sections failed")
	case *strict && missed:
		return rep, errTargets
	}
	return rep, nil
}

// writeReport writes rep as indented JSON, through a temporary file so
// that an interrupted write leaves the previous report whole.
func writeReport(path string, rep Report) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

func sectionNames() string {
	names := make([]string, len(sections))
	for i, s := range sections {
		names[i] = s.name
	}
	return strings.Join(names, ", ")
}

func dirty(d bool) string {
	if d {
		return " (with uncommitted changes)"
	}
	return ""
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// git answers the trimmed output of a git command, or "" when it fails
// (no git, or not in a repository).
func git(args ...string) string {
	out, err := exec.Command("git", args...).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// loadAvg answers the 1, 5 and 15 minute load averages, where Linux tells.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// benchSettings are the server settings reported beside the figures.
var benchSettings = []string{"shared_buffers", "max_wal_size", "checkpoint_timeout", "wal_compression", "synchronous_commit",
	"effective_cache_size", "work_mem", "maintenance_work_mem", "autovacuum"}

func serverVersion(ctx context.Context, url string) (string, map[string]string, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return "", nil, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	var v string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&v); err != nil {
		return "", nil, fmt.Errorf("server version: %w", err)
	}
	settings := map[string]string{}
	for _, name := range benchSettings {
		var val string
		if err := conn.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&val); err != nil {
			return "", nil, fmt.Errorf("server setting %s: %w", name, err)
		}
		settings[name] = val
	}
	return v, settings, nil
}
