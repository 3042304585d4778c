// Command crmbench runs the service's benchmarks against a real PostgreSQL
// server and writes the figures, with what they were measured on, to
// bench/results/latest.json.
//
//	BENCH_SCALE=small|large  (or -scale) small takes seconds, large minutes
//	TEST_DATABASE_URL        the server (default: the local one)
//
// Each benchmark is a section; add one to sections to have it run and
// reported.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/clubcrm/crm/bench/storebench"
)

// DefaultServerURL is the server used unless TEST_DATABASE_URL says otherwise.
const DefaultServerURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Sizes are the workload sizes of a scale.
type Sizes struct {
	Events int `json:"events"`
}

var scales = map[string]Sizes{
	"small": {Events: 20_000},
	"large": {Events: 1_000_000},
}

// Env is what every section gets.
type Env struct {
	ServerURL string
	Sizes     Sizes
}

type section struct {
	name string
	run  func(ctx context.Context, env Env, w io.Writer) (any, error)
}

var sections = []section{
	{"eventstore", func(ctx context.Context, env Env, w io.Writer) (any, error) {
		return storebench.Run(ctx, env.ServerURL, env.Sizes.Events, w)
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
	GitCommit       string    `json:"gitCommit"`
	GitDirty        bool      `json:"gitDirty"`
	// Load averages before and after the run: figures taken on a busy
	// machine are not comparable with those of an idle one.
	LoadBefore string          `json:"loadBefore,omitempty"`
	LoadAfter  string          `json:"loadAfter,omitempty"`
	Sections   []SectionReport `json:"sections"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "crmbench:", err)
		os.Exit(1)
	}
}

func run() error {
	scale := flag.String("scale", envOr("BENCH_SCALE", "small"), "workload size: small or large")
	out := flag.String("out", "", "report file (default bench/results/latest.json in the repository)")
	only := flag.String("only", "", "comma-separated sections to run (default all)")
	flag.Parse()

	sizes, ok := scales[*scale]
	if !ok {
		return fmt.Errorf("unknown scale %q (small or large)", *scale)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	env := Env{ServerURL: envOr("TEST_DATABASE_URL", DefaultServerURL), Sizes: sizes}
	rep := Report{
		StartedAt:  time.Now().UTC(),
		Scale:      *scale,
		Sizes:      sizes,
		CPUs:       runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		GoVersion:  runtime.Version(),
		GitCommit:  git("rev-parse", "HEAD"),
		GitDirty:   git("status", "--porcelain") != "",
		LoadBefore: loadAvg(),
	}
	var err error
	if rep.PostgresVersion, err = serverVersion(ctx, env.ServerURL); err != nil {
		return err
	}
	fmt.Printf("crmbench %s: %d CPUs (load %s), %s, PostgreSQL %s, commit %.12s\n\n",
		*scale, rep.CPUs, rep.LoadBefore, rep.GoVersion, rep.PostgresVersion, rep.GitCommit)

	var want []string
	if *only != "" {
		want = strings.Split(*only, ",")
	}
	failed := false
	for _, s := range sections {
		if want != nil && !slices.Contains(want, s.name) {
			continue
		}
		fmt.Printf("== %s\n", s.name)
		began := time.Now()
		res, err := s.run(ctx, env, os.Stdout)
		sr := SectionReport{Name: s.name, Seconds: time.Since(began).Seconds(), Result: res}
		if err != nil {
			sr.Error = err.Error()
			failed = true
			fmt.Printf("error: %v\n", err)
		}
		rep.Sections = append(rep.Sections, sr)
		fmt.Println()
	}
	rep.Seconds = time.Since(rep.StartedAt).Seconds()
	rep.LoadAfter = loadAvg()

	path := *out
	if path == "" {
		root := git("rev-parse", "--show-toplevel")
		if root == "" {
			root = "."
		}
		path = filepath.Join(root, "bench", "results", "latest.json")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	fmt.Println("wrote", path)
	if failed {
		return fmt.Errorf("some sections failed")
	}
	return nil
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

func serverVersion(ctx context.Context, url string) (string, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	var v string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&v); err != nil {
		return "", fmt.Errorf("server version: %w", err)
	}
	return v, nil
}
