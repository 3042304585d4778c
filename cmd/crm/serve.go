package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/clubcrm/crm/adapters/auth"
	"github.com/clubcrm/crm/adapters/httpapi"
	"github.com/clubcrm/crm/adapters/ingest"
	"github.com/clubcrm/crm/adapters/postgres"
	app "github.com/clubcrm/crm/commands"
	"github.com/clubcrm/crm/migrations"
	"github.com/clubcrm/crm/projections"
	"github.com/clubcrm/crm/readmodels/customers"
	"github.com/clubcrm/crm/readmodels/metrics"
	"github.com/clubcrm/crm/readmodels/scores"
	"github.com/clubcrm/crm/readmodels/segments"
)

func init() {
	register(command{
		name:    "serve",
		summary: "serve the HTTP API and run the upstream consumers, projectors and schedulers",
		usage:   "[flags]",
		run:     runServe,
	})
}

// everySetting names every configuration variable; serve takes them all.
func everySetting() []string {
	out := make([]string, len(settings))
	for i, s := range settings {
		out[i] = s.env
	}
	return out
}

func runServe(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet(commands["serve"], stdout)
	var cfg Config
	validate := bindConfig(fs, &cfg, everySetting()...)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := validate(); err != nil {
		return err
	}
	if cfg.EventStore == "esdb" && cfg.EventStoreURL == "" {
		return errors.New("EVENTSTORE_URL: must be set when CRM_EVENTSTORE=esdb")
	}
	if cfg.JWTSecret == "" && cfg.JWKSURL == "" {
		return errors.New("CRM_JWT_SECRET or CRM_JWKS_URL: one must be set, or no token can be verified")
	}
	log := newLogger(os.Stderr, cfg.LogLevel)
	slog.SetDefault(log)
	applyMemoryLimit(cfg.MemoryLimit, log)
	return serve(ctx, &cfg, log, nil)
}

// serve runs the service until ctx ends. When ready is not nil it receives
// the HTTP address once the listener is open (tests serve on :0).
func serve(ctx context.Context, cfg *Config, log *slog.Logger, ready chan<- string) error {
	if err := migrations.EnsureDatabase(ctx, cfg.DatabaseURL); err != nil {
		return err
	}
	n, err := migrations.Up(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	log.Info("database migrated", slog.Int("applied", n))

	pool, err := postgres.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	defer pool.Close()
	rdb, err := openRedis(ctx, cfg)
	if err != nil {
		return err
	}
	defer rdb.Close()
	store, err := openEventStore(ctx, cfg, pool)
	if err != nil {
		return err
	}
	defer store.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	index := &postgres.IdentityIndex{Pool: pool}
	settings := &app.Settings{Store: store}
	cache := cfg.ProfileCacheSize
	if cache == 0 {
		cache = -1 // none: the field's zero means its default
	}
	ingestCmd := &app.Ingest{Store: store, Index: index, Inbox: index, Settings: settings, Log: log, ProfileCacheSize: cache,
		Snapshots: customers.Snapshots{DB: pool}}
	wlog := watermill.NewSlogLogger(log)
	// The publisher is never closed: redisstream's Close would close the
	// shared Redis client, which serve closes itself.
	var pub message.Publisher
	pub, err = redisstream.NewPublisher(redisstream.PublisherConfig{Client: rdb}, wlog)
	if err != nil {
		return fmt.Errorf("redis publisher: %w", err)
	}
	if cfg.topicPrefix != "" {
		pub = prefixed{Publisher: pub, prefix: cfg.topicPrefix}
	}
	models := &app.ScoringModels{Store: store}
	rt, err := projections.New(pool, store, allProjectors(pub, models), projections.WithLogger(log), projections.WithRegisterer(reg))
	if err != nil {
		return err
	}
	defer rt.Close()

	refresher := &segments.Refresher{Pool: pool, Log: log}
	g, ctx := errgroup.WithContext(ctx)
	if cfg.has(roleAPI) {
		verifier, err := auth.NewVerifier(ctx, auth.Config{HMACSecret: []byte(cfg.JWTSecret), JWKSURL: cfg.JWKSURL})
		if err != nil {
			return fmt.Errorf("token verification: %w", err)
		}
		api := httpapi.New(log, verifier, reg)
		api.Operability(reg,
			httpapi.Check{Name: "postgres", Ping: pool.Ping},
			httpapi.Check{Name: "redis", Ping: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }},
			httpapi.Check{Name: "eventstore", Ping: func(ctx context.Context) error { _, err := store.Head(ctx); return err }},
		)
		api.UseIdempotency(&postgres.Idempotency{Pool: pool})
		api.UseConsistency(func(ctx context.Context, token string) error { return waitReadModels(ctx, rt, token) })
		api.RegisterMe()
		api.RegisterEvents(ingestCmd)
		merge := &app.Merge{Store: store, Index: index}
		reader := customers.Reader{DB: pool}
		api.RegisterCustomerCommands(httpapi.CustomerCommands{
			Register:  &app.Register{Store: store, Index: index, Settings: settings},
			Edit:      &app.Edit{Store: store},
			Merge:     merge,
			Resolve:   &app.ResolveDuplicate{Store: store, Merge: merge},
			Settings:  settings,
			Duplicate: reader.DuplicateByID,
			Computed:  reader.Computed,
		})
		api.RegisterCustomerQueries(httpapi.CustomerQueries{DB: pool, Store: store, Settings: settings})
		api.RegisterTimeline(httpapi.TimelineEndpoints{DB: pool, Record: &app.RecordActivity{Store: store}})
		api.RegisterNotes(httpapi.NoteEndpoints{DB: pool, Notes: &app.Notes{Store: store}})
		api.RegisterTags(httpapi.TagEndpoints{DB: pool, Tags: &app.Tags{Store: store}})
		api.RegisterScores(httpapi.ScoreEndpoints{Reader: scores.Reader{DB: pool, Models: models}, Models: models})
		api.RegisterSegments(httpapi.SegmentEndpoints{Segments: &app.Segments{Store: store}, Reader: segments.Reader{DB: pool},
			Refresher: refresher, Unknown: reader.Unknown})
		g.Go(func() error { return serveHTTP(ctx, cfg.HTTPAddr, api, log, ready) })
	}
	if cfg.has(roleIngest) {
		name := cfg.ConsumerName
		if name == "" {
			if name, err = ingest.ConsumerName(""); err != nil {
				return err
			}
		}
		consumer, err := ingest.New(ingest.Config{Redis: rdb, Handler: ingestCmd, ConsumerName: name, Logger: log,
			Streams: cfg.streams, DeadLetterStream: cfg.deadLetterStream})
		if err != nil {
			return fmt.Errorf("ingest: %w", err)
		}
		g.Go(func() error { return consumer.Run(ctx) })
	}
	if cfg.has(roleProjector) {
		g.Go(func() error { return rt.Run(ctx) })
		// Publishes segment membership changes and the Messaging sync
		// (one process at a time).
		relay := &segments.Relay{Pool: pool, Publisher: pub, Log: log}
		g.Go(func() error { return relay.Run(ctx) })
	}
	if cfg.has(roleScheduler) {
		// Moves the rolling 30-day activity windows as days pass; one
		// process at a time runs it (a PostgreSQL advisory lock).
		job := &metrics.Job{Pool: pool, Log: log}
		g.Go(func() error { return job.Run(ctx) })
		// Rescores as days pass and after model changes, and takes the
		// daily snapshots (one process at a time); the alerter turns score
		// changes into churn-risk and engagement-drop events.
		sjob := &scores.Job{Pool: pool, Models: models, Log: log}
		g.Go(func() error { return sjob.Run(ctx) })
		alerter := &scores.Alerter{Pool: pool, Store: store, Models: models, Log: log}
		g.Go(func() error { return alerter.Run(ctx) })
		// Recomputes rule-based segments whole for what time alone moves
		// (withinLast windows, the daily rescoring).
		segJob := &segments.Job{Refresher: refresher, Interval: cfg.SegmentRefresh}
		g.Go(func() error { return segJob.Run(ctx) })
	}
	log.Info("crm serving", slog.String("version", version), slog.Any("roles", cfg.Roles), slog.String("eventstore", cfg.EventStore))
	return g.Wait()
}

// readModelWait bounds how long a query waits for its read models.
const readModelWait = 2 * time.Second

// waitReadModels waits until every read model has passed the position in
// token (an X-CRM-Position a command answered).
func waitReadModels(ctx context.Context, rt *projections.Runtime, token string) error {
	pos, err := projections.DecodeToken(token)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(readModelWait)
	for _, p := range allProjectors(nil, nil) {
		if !readModel(p) {
			continue
		}
		if err := rt.WaitFor(ctx, p.Name(), pos, time.Until(deadline)); err != nil {
			return err
		}
	}
	return nil
}

// serveHTTP serves h on addr until ctx ends, then drains in-flight requests.
func serveHTTP(ctx context.Context, addr string, h http.Handler, log *slog.Logger, ready chan<- string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("CRM_HTTP_ADDR: %w", err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("http listening", slog.String("addr", ln.Addr().String()))
	if ready != nil {
		ready <- ln.Addr().String()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down http")
	shut, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(shut); err != nil {
		return fmt.Errorf("http shutdown: %w", err)
	}
	return nil
}
