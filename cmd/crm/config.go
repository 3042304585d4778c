package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"

	app "github.com/clubcrm/crm/commands"
)

// Config is the service's configuration, read from environment variables
// that flags of the same meaning override.
type Config struct {
	DatabaseURL   string
	RedisURL      string
	HTTPAddr      string
	EventStore    string
	EventStoreURL string
	JWTSecret     string
	JWKSURL       string
	LogLevel      slog.Level
	Roles         []string
	ConsumerName  string
	// SegmentRefresh is how often every rule-based segment is recomputed
	// whole (events move membership at once; this catches time passing).
	SegmentRefresh time.Duration
	// MemoryLimit is the Go runtime's soft memory limit in bytes, 0 for
	// none; GOMEMLIMIT, when set, wins (see applyMemoryLimit).
	MemoryLimit int64
	// ProfileCacheSize is how many folded profiles ingestion keeps between
	// batches, 0 for none (commands.Ingest.ProfileCacheSize).
	ProfileCacheSize int

	logLevel         string
	roles            string
	segmentRefresh   string
	memoryLimit      string
	profileCacheSize string

	// Tests point ingestion at streams of their own; empty means the
	// upstream services' streams (ingest.DefaultStreams).
	streams          []string
	deadLetterStream string
	// Tests publish to streams of their own too: topicPrefix goes before
	// every topic published to (crm.events, messaging.segments).
	topicPrefix string
}

// Service roles that serve can run; each may run as its own process.
const (
	roleAPI       = "api"
	roleIngest    = "ingest"
	roleProjector = "projector"
	roleScheduler = "scheduler"
)

var allRoles = []string{roleAPI, roleIngest, roleProjector, roleScheduler}

// setting is one configuration variable.
type setting struct {
	env, flag, def, usage string
	dst                   func(*Config) *string
	check                 func(string) error
}

var settings = []setting{
	{"DATABASE_URL", "database-url", "postgres://postgres@127.0.0.1:5432/crm?sslmode=disable",
		"PostgreSQL URL (read models; the event store when CRM_EVENTSTORE=postgres)",
		func(c *Config) *string { return &c.DatabaseURL }, checkURL("postgres", "postgresql")},
	{"REDIS_URL", "redis-url", "redis://127.0.0.1:6379/0",
		"Redis URL (upstream event streams in, crm.events out)",
		func(c *Config) *string { return &c.RedisURL }, checkURL("redis", "rediss")},
	{"CRM_HTTP_ADDR", "http-addr", ":8080", "HTTP listen address",
		func(c *Config) *string { return &c.HTTPAddr }, checkAddr},
	{"CRM_EVENTSTORE", "eventstore", "postgres", "event store backend: postgres or esdb",
		func(c *Config) *string { return &c.EventStore }, checkOneOf("postgres", "esdb")},
	{"EVENTSTORE_URL", "eventstore-url", "", "EventStoreDB connection string (esdb://...), required when CRM_EVENTSTORE=esdb",
		func(c *Config) *string { return &c.EventStoreURL }, checkOptional(checkURL("esdb", "esdb+discover"))},
	{"CRM_JWT_SECRET", "jwt-secret", "", "HS256 key for development tokens",
		func(c *Config) *string { return &c.JWTSecret }, checkSecret},
	{"CRM_JWKS_URL", "jwks-url", "", "identity provider JWKS URL; RS256/ES256 tokens are verified against it",
		func(c *Config) *string { return &c.JWKSURL }, checkOptional(checkURL("http", "https"))},
	{"CRM_LOG_LEVEL", "log-level", "info", "log level: debug, info, warn or error",
		func(c *Config) *string { return &c.logLevel }, checkOneOf("debug", "info", "warn", "error")},
	{"CRM_CONSUMER_NAME", "consumer-name", "", "stable Redis consumer name of this process in group crm (default: the host name)",
		func(c *Config) *string { return &c.ConsumerName }, checkOptional(checkConsumerName)},
	{"CRM_ROLES", "roles", strings.Join(allRoles, ","), "parts of the service to run: api, ingest, projector, scheduler",
		func(c *Config) *string { return &c.roles }, checkRoles},
	{"CRM_SEGMENT_REFRESH_INTERVAL", "segment-refresh-interval", "15m",
		"how often the scheduler recomputes every DYNAMIC and SMART segment whole (Go duration, at least 1m)",
		func(c *Config) *string { return &c.segmentRefresh }, checkInterval(time.Minute)},
	{"CRM_MEMORY_LIMIT", "memory-limit", "200MiB",
		"soft limit of the Go runtime's memory, as GOMEMLIMIT writes it (200MiB, 1GiB) or off; GOMEMLIMIT, when set, wins",
		func(c *Config) *string { return &c.memoryLimit }, checkMemoryLimit},
	{"CRM_PROFILE_CACHE_SIZE", "profile-cache-size", strconv.Itoa(app.DefaultProfileCacheSize),
		"folded profiles ingestion keeps between batches, so an event about someone seen recently reads no stream (0: none)",
		func(c *Config) *string { return &c.profileCacheSize }, checkCount(1_000_000)},
}

// bindConfig adds the named settings' flags to fs, each defaulting to its
// environment variable, and answers a function that validates them after
// parsing, naming the variable (or flag) at fault.
func bindConfig(fs *flag.FlagSet, cfg *Config, envs ...string) func() error {
	var bound []setting
	for _, s := range settings {
		for _, e := range envs {
			if s.env == e {
				bound = append(bound, s)
			}
		}
	}
	for _, s := range bound {
		def := s.def
		if v, ok := os.LookupEnv(s.env); ok {
			def = v
		}
		shown := s.def
		if strings.Contains(s.env, "SECRET") {
			shown = "" // never print a secret in -h output
			def = os.Getenv(s.env)
		}
		fs.StringVar(s.dst(cfg), s.flag, def, fmt.Sprintf("%s [%s]", s.usage, s.env))
		if f := fs.Lookup(s.flag); f != nil {
			f.DefValue = shown
		}
	}
	return func() error {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		var errs []error
		for _, s := range bound {
			if err := s.check(*s.dst(cfg)); err != nil {
				name := s.env
				if set[s.flag] {
					name = "--" + s.flag
				}
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
		cfg.LogLevel = parseLevel(cfg.logLevel)
		cfg.Roles = splitList(cfg.roles)
		cfg.SegmentRefresh, _ = time.ParseDuration(cfg.segmentRefresh)
		cfg.MemoryLimit, _ = parseMemoryLimit(cfg.memoryLimit)
		cfg.ProfileCacheSize, _ = strconv.Atoi(cfg.profileCacheSize)
		return nil
	}
}

func checkURL(schemes ...string) func(string) error {
	return func(v string) error {
		u, err := url.Parse(v)
		if err != nil || u.Host == "" {
			return fmt.Errorf("%q is not a URL with a host", v)
		}
		for _, s := range schemes {
			if u.Scheme == s {
				return nil
			}
		}
		return fmt.Errorf("%q: scheme must be %s", v, strings.Join(schemes, " or "))
	}
}

func checkOptional(check func(string) error) func(string) error {
	return func(v string) error {
		if v == "" {
			return nil
		}
		return check(v)
	}
}

func checkOneOf(values ...string) func(string) error {
	return func(v string) error {
		for _, x := range values {
			if v == x {
				return nil
			}
		}
		return fmt.Errorf("%q: must be one of %s", v, strings.Join(values, ", "))
	}
}

func checkAddr(v string) error {
	if _, _, err := net.SplitHostPort(v); err != nil {
		return fmt.Errorf("%q is not host:port: %v", v, err)
	}
	return nil
}

func checkInterval(least time.Duration) func(string) error {
	return func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < least {
			return fmt.Errorf("%q: must be a duration of at least %s, such as 15m or 1h", v, least)
		}
		return nil
	}
}

func checkCount(most int) func(string) error {
	return func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > most {
			return fmt.Errorf("%q: must be a whole number from 0 to %d", v, most)
		}
		return nil
	}
}

func checkConsumerName(v string) error {
	if strings.ContainsAny(v, " \t\n") || len(v) > 100 {
		return errors.New("must be at most 100 characters without spaces")
	}
	return nil
}

func checkSecret(v string) error {
	if v != "" && len(v) < 16 {
		return errors.New("must be at least 16 characters")
	}
	return nil
}

func checkRoles(v string) error {
	roles := splitList(v)
	if len(roles) == 0 {
		return errors.New("names no role")
	}
	for _, r := range roles {
		if err := checkOneOf(allRoles...)(r); err != nil {
			return err
		}
	}
	return nil
}

func parseLevel(s string) slog.Level {
	var l slog.Level
	_ = l.UnmarshalText([]byte(s)) // validated by checkOneOf
	return l
}

// newLogger answers a JSON logger, or a text one when w is a terminal.
func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// has reports whether the configuration runs role.
func (c *Config) has(role string) bool {
	for _, r := range c.Roles {
		if r == role {
			return true
		}
	}
	return false
}
