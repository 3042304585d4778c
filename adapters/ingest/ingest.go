// Package ingest consumes the upstream services' events from Redis Streams
// and hands them to the ingest command in batches.
//
// Each stream (scl.events, teetime.events, messaging.events) is read by the
// consumer group "crm" through a watermill router; every process is one
// consumer of the group under a stable name. An entry's field "payload"
// holds the envelope {"id","type","source","tenantId","occurredAt","data"}
// as JSON: both watermill publishers and a plain
// `XADD scl.events * payload '<json>'` are accepted.
//
// Throughput comes from batching at every stage, with the router and its
// middleware (poison queue → retry → recoverer) left as they are, acting on
// each message:
//
//   - the Subscriber reads up to BatchSize entries per XREADGROUP, delivers
//     them without waiting for each acknowledgement (at most MaxInFlight at
//     a time) and acknowledges in bulk;
//   - the router handles the messages concurrently; the handler queues each
//     with a batcher, which calls the Handler once per batch of up to
//     BatchSize and answers each message its own result;
//   - the batcher keeps each stream in order: a message waits while an
//     earlier one of its stream is being handled or retried (see
//     sequencer).
//
// What becomes of a message:
//
//   - recorded or duplicate: acknowledged;
//   - invalid (not JSON, not the contract, no payload field, or refused by
//     the handler), or the handler panicked on it: published to
//     crm.deadletter (see FieldReason for the entry's shape) and
//     acknowledged at once, so the events behind it keep flowing;
//   - any other error (database down, …): retried with exponential backoff
//     (5 retries from 100 ms), then nacked and redelivered after
//     NackResendSleep, again and again. It is never dead-lettered: see
//     permanent for why.
//
// A batch fails or panics as a whole. The batcher then handles each
// stream's share again, halving it until what fails is alone (see
// batcher.bisect), so a failure holds up what it would have one message
// at a time, and no more: the messages before it are recorded, only a
// message that panics is dead-lettered, and one that fails otherwise
// stalls its own stream, in order, not the others.
//
// Messages left pending by a consumer that died are claimed by a live one
// once idle for MaxIdleTime. A message may therefore be handled more than
// once; the ingest command's inbox makes the second time a duplicate.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/redis/go-redis/v9"

	"github.com/clubcrm/crm/commands"
)

// Handler processes upstream events; *commands.Ingest is one. It answers a
// result per envelope, in order; an error means nothing of the batch may be
// taken as done, and the batch may be handled again.
type Handler interface {
	Handle(ctx context.Context, batch []commands.Envelope) ([]commands.Result, error)
}

// Defaults.
const (
	DefaultGroup           = "crm"
	DefaultNackResendSleep = time.Second
	DefaultClaimInterval   = 5 * time.Second
	DefaultMaxIdleTime     = 30 * time.Second
	DefaultBlockTime       = 100 * time.Millisecond
	DefaultMaxRetries      = 5
	DefaultRetryInterval   = 100 * time.Millisecond
	DefaultMaxRetryWait    = 5 * time.Second
	DefaultCloseTimeout    = 30 * time.Second
	DefaultBatchSize       = 500
	DefaultBatchWait       = 5 * time.Millisecond
)

// DefaultStreams are the streams the upstream services publish on.
var DefaultStreams = []string{"scl.events", "teetime.events", "messaging.events"}

// Config configures a Consumer. Zero durations take the defaults.
type Config struct {
	// Redis is the client to read and dead-letter with. The consumer does
	// not close it.
	Redis   redis.UniversalClient
	Handler Handler
	Logger  *slog.Logger // slog.Default() when nil

	Streams          []string // DefaultStreams when empty
	Group            string   // DefaultGroup when empty
	DeadLetterStream string   // DefaultDeadLetterStream when empty
	// ConsumerName names this process in the group, and must be stable
	// across restarts and unique among live processes (see ConsumerName).
	// A restarted consumer under a new name leaves its pending messages
	// to be claimed after MaxIdleTime; under its old name it does the same,
	// and the old name is not left behind in the group.
	ConsumerName string

	// NackResendSleep is the pause before a nacked message is delivered
	// again. The library's default is no pause at all: a hot loop against
	// a database that is down.
	NackResendSleep time.Duration
	// ClaimInterval is how often pending messages of other consumers are
	// looked at; MaxIdleTime is how long one must have been pending before
	// it is claimed: how long a dead consumer's messages wait. A live
	// consumer renews what it holds every MaxIdleTime/4 or so, however
	// long the messages wait their turn or are retried, so that no other
	// consumer takes them; should it miss that (a pause longer than
	// MaxIdleTime/2), a message is handled twice, harmlessly: the second
	// time is a duplicate.
	ClaimInterval time.Duration
	MaxIdleTime   time.Duration
	// BlockTime bounds each XREADGROUP wait, and so how long shutdown waits
	// for a read in flight.
	BlockTime time.Duration

	// Retries of a transient failure before the message is nacked: at most
	// MaxRetries, starting RetryInterval apart and doubling up to
	// MaxRetryWait. MaxRetries < 0 means none.
	MaxRetries    int
	RetryInterval time.Duration
	MaxRetryWait  time.Duration

	// CloseTimeout bounds how long Run waits for messages in flight once
	// its context ends.
	CloseTimeout time.Duration

	// BatchSize bounds the envelopes of one Handler call, and the entries
	// of one read (DefaultBatchSize).
	BatchSize int
	// BatchWait is how long a batch waits for more messages once some are
	// ready, unless it is full or every message delivered is in it
	// (DefaultBatchWait). It bounds the latency batching adds.
	BatchWait time.Duration
	// MaxInFlight bounds the messages delivered and not yet acknowledged
	// (2*BatchSize by default): while one batch is handled, the next is
	// read and gathered. More only costs memory and goroutines.
	MaxInFlight int
}

// ConsumerName answers a consumer name stable across restarts on the same
// host: the host name, and suffix after it when not empty (to run several
// consumers on one host).
func ConsumerName(suffix string) (string, error) {
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("consumer name: %w", err)
	}
	if suffix == "" {
		return host, nil
	}
	return host + "-" + suffix, nil
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if len(c.Streams) == 0 {
		c.Streams = DefaultStreams
	}
	if c.Group == "" {
		c.Group = DefaultGroup
	}
	if c.DeadLetterStream == "" {
		c.DeadLetterStream = DefaultDeadLetterStream
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.NackResendSleep, DefaultNackResendSleep)
	def(&c.ClaimInterval, DefaultClaimInterval)
	def(&c.MaxIdleTime, DefaultMaxIdleTime)
	def(&c.BlockTime, DefaultBlockTime)
	def(&c.RetryInterval, DefaultRetryInterval)
	def(&c.MaxRetryWait, DefaultMaxRetryWait)
	def(&c.CloseTimeout, DefaultCloseTimeout)
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	def(&c.BatchWait, DefaultBatchWait)
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 2 * c.BatchSize
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = DefaultMaxRetries
	} else if c.MaxRetries < 0 {
		c.MaxRetries = 0
	}
}

func (c *Config) validate() error {
	var problems []string
	if c.Redis == nil {
		problems = append(problems, "Redis: missing")
	}
	if c.Handler == nil {
		problems = append(problems, "Handler: missing")
	}
	if strings.TrimSpace(c.ConsumerName) == "" {
		problems = append(problems, "ConsumerName: missing (a random one would orphan pending messages at every restart)")
	}
	for i, s := range c.Streams {
		switch {
		case strings.TrimSpace(s) == "":
			problems = append(problems, fmt.Sprintf("Streams[%d]: empty", i))
		case s == c.DeadLetterStream:
			problems = append(problems, fmt.Sprintf("Streams[%d]: %s is the dead-letter stream", i, s))
		case slices.Index(c.Streams, s) != i:
			problems = append(problems, fmt.Sprintf("Streams[%d]: %s is listed twice", i, s))
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"NackResendSleep", c.NackResendSleep}, {"ClaimInterval", c.ClaimInterval}, {"MaxIdleTime", c.MaxIdleTime}, {"BlockTime", c.BlockTime}, {"RetryInterval", c.RetryInterval}, {"MaxRetryWait", c.MaxRetryWait}, {"CloseTimeout", c.CloseTimeout}, {"BatchWait", c.BatchWait}} {
		if d.v < 0 {
			problems = append(problems, d.name+": negative")
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("ingest consumer: %s", strings.Join(problems, "; "))
	}
	return nil
}

// Consumer reads the upstream streams until its context ends.
type Consumer struct {
	cfg         Config
	router      *message.Router
	client      *sharedClient
	subscriber  *Subscriber
	deadLetters deadLetterPublisher
	order       *sequencer
	batcher     *batcher
}

// New answers a consumer of cfg.Streams; Run starts it.
func New(cfg Config) (*Consumer, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.Streams = slices.Clone(cfg.Streams)
	// Watermill logs every subscription start and handler at Info: that
	// is debugging detail here. Its errors stay errors.
	wlog := watermill.NewSlogLoggerWithLevelMapping(cfg.Logger.With(slog.String("component", "ingest")),
		map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug})
	client := &sharedClient{UniversalClient: cfg.Redis}

	order := newSequencer()
	sub, err := NewSubscriber(SubscriberConfig{
		Client:          client,
		Unmarshaller:    unmarshaller{},
		Group:           cfg.Group,
		Consumer:        cfg.ConsumerName,
		ReadCount:       cfg.BatchSize,
		MaxInFlight:     cfg.MaxInFlight,
		NackResendSleep: cfg.NackResendSleep,
		BlockTime:       cfg.BlockTime,
		ClaimInterval:   cfg.ClaimInterval,
		MaxIdleTime:     cfg.MaxIdleTime,
		// A new group starts at the beginning of the stream: events
		// published before the CRM's first start are not skipped.
		OldestID: "0",
		Tracker:  order,
		// A closed client will not open again: stop instead of logging
		// the same error twice a second.
		ShouldStopOnReadErrors: func(err error) bool { return errors.Is(err, redis.ErrClosed) },
	}, wlog)
	if err != nil {
		return nil, fmt.Errorf("ingest consumer: subscriber: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = sub.Close() // its acknowledging goroutine runs until closed
		}
	}()
	pub, err := redisstream.NewPublisher(redisstream.PublisherConfig{
		Client:     client,
		Marshaller: deadLetterMarshaller{consumer: cfg.ConsumerName, now: time.Now},
		// No MAXLEN: trimming would delete dead letters nobody has seen.
	}, wlog)
	if err != nil {
		return nil, fmt.Errorf("ingest consumer: dead-letter publisher: %w", err)
	}
	dl := deadLetterPublisher{pub: pub, timeout: 10 * time.Second}

	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: cfg.CloseTimeout}, wlog)
	if err != nil {
		return nil, fmt.Errorf("ingest consumer: router: %w", err)
	}
	poison, err := middleware.PoisonQueueWithFilter(dl, cfg.DeadLetterStream, permanent)
	if err != nil {
		return nil, fmt.Errorf("ingest consumer: poison queue: %w", err)
	}
	c := &Consumer{cfg: cfg, router: router, client: client, subscriber: sub, deadLetters: dl,
		order: order, batcher: newBatcher(cfg.Handler, cfg.BatchSize, cfg.BatchWait, order)}
	// The first middleware added is the outermost: observe sees the final
	// outcome, the poison queue sees an error only once retries are
	// exhausted (or skipped, for permanent errors), and a panic becomes an
	// error before Retry and PoisonQueue look at it.
	router.AddMiddleware(
		c.observe,
		poison,
		middleware.Retry{
			MaxRetries:          cfg.MaxRetries,
			InitialInterval:     cfg.RetryInterval,
			MaxInterval:         cfg.MaxRetryWait,
			Multiplier:          2,
			RandomizationFactor: 0.2,
			ShouldRetry:         func(p middleware.RetryParams) bool { return !permanent(p.Err) },
		}.Middleware,
		middleware.Recoverer,
	)
	for _, s := range cfg.Streams {
		router.AddConsumerHandler("ingest "+s, s, sub, c.handle)
	}
	ok = true
	return c, nil
}

// Run consumes until ctx ends. The handling in flight then sees its
// context end too and is abandoned, not acknowledged: the message stays
// pending and is handled again later (idempotently), by a live consumer
// after MaxIdleTime or by this one when it starts again. Run waits up to
// CloseTimeout for handlers to return, and answers an error if the
// consumer could not start or stopped before ctx ended. Once it has
// returned, the caller may close its Redis client. A Consumer runs once.
func (c *Consumer) Run(ctx context.Context) error {
	batchCtx, stopBatches := context.WithCancel(ctx)
	batches := make(chan struct{})
	go func() {
		defer close(batches)
		c.batcher.run(batchCtx)
	}()
	defer func() {
		stopBatches()
		<-batches
		// Neither closes the caller's client (see sharedClient); their
		// errors could only be about it.
		_ = c.subscriber.Close()
		_ = c.deadLetters.Close()
		// The caller may close its client once Run has returned.
		c.client.release()
	}()
	if err := c.router.Run(ctx); err != nil {
		return fmt.Errorf("ingest consumer: %w", err)
	}
	if ctx.Err() == nil {
		return errors.New("ingest consumer: every stream subscription ended")
	}
	return nil
}

// Running is closed once every stream is subscribed (and stays closed
// after Run returns).
func (c *Consumer) Running() <-chan struct{} { return c.router.Running() }

// handle ingests one message, as part of a batch. Its errors say what
// happens next: see permanent.
func (c *Consumer) handle(msg *message.Message) error {
	n := noteFrom(msg)
	stream, entry := msg.Metadata.Get(metaStream), msg.Metadata.Get(metaEntryID)
	if reason := msg.Metadata.Get(metaUnreadable); reason != "" {
		c.order.settle(stream, entry)
		return fmt.Errorf("%w: %s", errUnreadable, reason)
	}
	o := c.batcher.submit(msg.Context(), stream, entry, msg.Payload)
	n.eventID, n.tenant, n.typ = o.env.ID, o.env.TenantID, o.env.Type
	if o.err != nil {
		if errors.Is(o.err, commands.ErrInvalidEnvelope) {
			return o.err // not JSON of the envelope's shape
		}
		return fmt.Errorf("ingest %s: %w", o.env.ID, o.err)
	}
	n.result = &o.res
	if o.res.Status == commands.Invalid {
		// The handler checked the envelope against the contract.
		return invalidError{reason: o.res.Error}
	}
	return nil
}

type noteKey struct{}

// note is what the handler learnt about a message, for observe to log.
type note struct {
	eventID, tenant, typ string
	result               *commands.Result
	deadLettered         string // the reason, once published to the dead letters
}

func noteFrom(msg *message.Message) *note {
	if n, ok := msg.Context().Value(noteKey{}).(*note); ok {
		return n
	}
	return &note{}
}

// observe logs one line per message with what became of it, under the
// message's correlation id (the publisher's, or else its UUID) and the
// envelope's id, which the domain events carry as their correlation id.
func (c *Consumer) observe(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		start := time.Now()
		n := &note{}
		msg.SetContext(context.WithValue(msg.Context(), noteKey{}, n))
		out, err := h(msg)

		ctx := msg.Context()
		level := slog.LevelDebug // recorded, duplicate, left at shutdown
		if err != nil && !errors.Is(err, context.Canceled) || n.deadLettered != "" {
			level = slog.LevelWarn
		}
		if !c.cfg.Logger.Enabled(ctx, level) {
			return out, err // thousands a second: build nothing for nobody
		}
		corr := middleware.MessageCorrelationID(msg)
		if corr == "" {
			corr = msg.UUID
		}
		attrs := []slog.Attr{
			slog.String("stream", msg.Metadata.Get(metaStream)),
			slog.String("messageId", msg.Metadata.Get(metaEntryID)),
			slog.String("correlationId", corr),
			slog.String("eventId", n.eventID),
			slog.String("tenant", n.tenant),
			slog.String("type", n.typ),
			slog.Duration("duration", time.Since(start)),
		}
		switch {
		case err != nil:
			if errors.Is(err, context.Canceled) {
				c.cfg.Logger.LogAttrs(ctx, slog.LevelDebug, "upstream event left for redelivery: shutting down", attrs...)
				break
			}
			// Warn, not Error: nothing is lost (the router logs the
			// error itself as well).
			c.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "upstream event not processed; it will be redelivered",
				append(attrs, slog.Any("error", err), slog.Duration("redeliverAfter", c.cfg.NackResendSleep))...)
		case n.deadLettered != "":
			c.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "upstream event dead-lettered",
				append(attrs, slog.String("reason", n.deadLettered), slog.String("deadLetterStream", c.cfg.DeadLetterStream))...)
		case n.result != nil:
			a := append(attrs, slog.String("status", string(n.result.Status)))
			if n.result.CustomerID != nil {
				a = append(a, slog.String("customerId", n.result.CustomerID.String()), slog.String("matchedBy", n.result.MatchedBy))
			}
			c.cfg.Logger.LogAttrs(ctx, slog.LevelDebug, "upstream event ingested", a...)
		}
		return out, err
	}
}
