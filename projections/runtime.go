package projections

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/clubcrm/crm/eventstore"
)

// ErrUnknownProjector is wrapped by errors about a projector name the
// Runtime was not given.
var ErrUnknownProjector = errors.New("unknown projector")

// Defaults of the options.
const (
	DefaultBatchSize        = 1000
	DefaultElectionInterval = time.Second
	DefaultLagInterval      = 5 * time.Second
	DefaultRetryMin         = 100 * time.Millisecond
	DefaultRetryMax         = 30 * time.Second
)

// Option configures a Runtime.
type Option func(*options)

type options struct {
	batchSize        int
	log              *slog.Logger
	reg              prometheus.Registerer
	electionInterval time.Duration
	lagInterval      time.Duration
	retryMin         time.Duration
	retryMax         time.Duration
	progress         io.Writer
}

// WithBatchSize sets the most events applied in one transaction.
func WithBatchSize(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.batchSize = n
		}
	}
}

// WithLogger sets the logger; the default is slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// WithRegisterer registers the runtime's metrics with reg; without it they
// are kept but not exported.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(o *options) { o.reg = reg }
}

// WithElectionInterval sets how often a process tries to take over the
// projectors it does not run; it bounds how long a dead leader's projectors
// stay idle.
func WithElectionInterval(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.electionInterval = d
		}
	}
}

// WithLagInterval sets how often Run measures lag for the metrics.
func WithLagInterval(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.lagInterval = d
		}
	}
}

// WithRetryBackoff sets the first and the longest wait before retrying a
// failed batch.
func WithRetryBackoff(first, longest time.Duration) Option {
	return func(o *options) {
		if first > 0 && longest >= first {
			o.retryMin, o.retryMax = first, longest
		}
	}
}

// WithProgress makes Rebuild draw a progress bar on w when w is a terminal;
// otherwise, and by default, Rebuild logs its progress periodically.
func WithProgress(w io.Writer) Option {
	return func(o *options) { o.progress = w }
}

// Runtime runs a set of projectors against one event store and database.
// Every process of the service builds one with the same projectors: Run
// makes each projector run in exactly one of them, and WaitFor, Rebuild and
// Status work from any of them.
type Runtime struct {
	pool    *pgxpool.Pool
	store   eventstore.Store
	opts    options
	log     *slog.Logger
	metrics *metrics
	names   []string // in the order given
	runners map[string]*runner
	elector *elector
	watch   *watcher

	runMu   sync.Mutex
	running bool
}

// New answers a Runtime for projectors, whose read models and checkpoints
// live in the database pool reaches (migrated with the service's
// migrations); it reads events from store.
func New(pool *pgxpool.Pool, store eventstore.Store, projectors []Projector, opts ...Option) (*Runtime, error) {
	o := options{
		batchSize:        DefaultBatchSize,
		log:              slog.Default(),
		electionInterval: DefaultElectionInterval,
		lagInterval:      DefaultLagInterval,
		retryMin:         DefaultRetryMin,
		retryMax:         DefaultRetryMax,
	}
	for _, opt := range opts {
		opt(&o)
	}
	m, err := newMetrics(o.reg)
	if err != nil {
		return nil, err
	}
	r := &Runtime{pool: pool, store: store, opts: o, log: o.log, metrics: m, runners: map[string]*runner{}}
	keys := map[string]int32{}
	owner := map[int32]string{}
	tables := map[string]string{}
	for _, p := range projectors {
		if err := check(p); err != nil {
			return nil, err
		}
		name := p.Name()
		if _, dup := r.runners[name]; dup {
			return nil, fmt.Errorf("projector %s listed twice", name)
		}
		key := lockKey(name)
		if other, clash := owner[key]; clash {
			return nil, fmt.Errorf("projectors %s and %s share a lock key: rename one", other, name)
		}
		owner[key], keys[name] = name, key
		for _, t := range p.Tables() {
			if other, clash := tables[t]; clash {
				return nil, fmt.Errorf("projectors %s and %s both claim table %s", other, name, t)
			}
			tables[t] = name
		}
		r.names = append(r.names, name)
		var after []string
		if f, ok := p.(Follower); ok {
			after = f.After()
		}
		r.runners[name] = &runner{
			after: after, wait: r.WaitFor,
			p: p, name: name, tables: identity(p.Tables()),
			pool: pool, store: store, batchSize: o.batchSize,
			retry:   backoff{min: o.retryMin, max: o.retryMax},
			log:     o.log,
			metrics: m,
		}
		m.init(name)
	}
	for _, name := range r.names {
		for _, dep := range r.runners[name].after {
			if _, ok := r.runners[dep]; !ok || dep == name {
				return nil, fmt.Errorf("projector %s follows %s, which is not another projector of this runtime", name, dep)
			}
		}
	}
	cfg := sessionConfig(pool.Config().ConnConfig)
	r.elector = &elector{cfg: cfg, keys: keys, interval: o.electionInterval, log: o.log, metrics: m,
		lead: func(ctx context.Context, name string) { r.runners[name].run(ctx) }}
	r.watch = newWatcher(cfg, o.log)
	return r, nil
}

// Projectors answers the names of the runtime's projectors, in the order
// given to New.
func (r *Runtime) Projectors() []string { return append([]string(nil), r.names...) }

// Run runs the projectors this process is elected for, and measures every
// projector's lag for the metrics, until ctx is done; it then stops them
// (rolling back batches in flight) and answers nil. It fails early only when
// the checkpoint table cannot be used. Run may be called once.
func (r *Runtime) Run(ctx context.Context) error {
	r.runMu.Lock()
	if r.running {
		r.runMu.Unlock()
		return errors.New("projections: Run called twice")
	}
	r.running = true
	r.runMu.Unlock()

	if len(r.names) == 0 {
		<-ctx.Done() // nothing to run: hold no connection for it
		return nil
	}
	for _, name := range r.names {
		if err := ensureCheckpoint(ctx, r.pool, name); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { r.elector.run(ctx) })
	wg.Go(func() { r.sampleLag(ctx) })
	wg.Wait()
	return nil
}

// Close stops what WaitFor started. Stop Run first by cancelling its context.
func (r *Runtime) Close() {
	r.watch.stop()
}

// sampleLag measures lag for the metrics every lag interval.
func (r *Runtime) sampleLag(ctx context.Context) {
	for {
		if err := r.measureAll(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("could not measure projection lag", "err", err)
		}
		if !sleep(ctx, r.opts.lagInterval) {
			return
		}
	}
}

func (r *Runtime) measureAll(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, max(r.opts.lagInterval, 10*time.Second))
	defer cancel()
	cps, now, err := r.checkpoints(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range r.names {
		lag, err := measureLag(ctx, r.store, cps[name].pos, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("projector %s: %w", name, err))
			continue
		}
		r.metrics.observeLag(name, cps[name].pos, lag)
	}
	return errors.Join(errs...)
}

func (r *Runtime) runner(name string) (*runner, error) {
	rn, ok := r.runners[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownProjector, name)
	}
	return rn, nil
}
