package ingest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"
)

// Subscriber defaults.
const (
	DefaultReadCount              = 500
	DefaultMaxInFlight            = 2000
	DefaultCheckConsumersInterval = 5 * time.Minute
	DefaultConsumerTimeout        = 10 * time.Minute
)

// SubscriberConfig configures a Subscriber. Zero values take the defaults.
type SubscriberConfig struct {
	Client redis.UniversalClient
	// Unmarshaller turns an entry's fields into a message. Before it is
	// called, the fields are labelled with the entry's id and stream (see
	// label), which the package's own unmarshaller reads.
	Unmarshaller redisstream.Unmarshaller
	Group        string
	Consumer     string // stable across restarts: see Config.ConsumerName
	// OldestID is where a group created by Subscribe starts: "0" (every
	// entry the stream holds, the default) or "$" (new ones only).
	OldestID string

	// ReadCount bounds the entries one XREADGROUP answers.
	ReadCount int
	// MaxInFlight bounds the messages of each stream delivered and not
	// yet acknowledged: what the subscriber holds in memory and what a
	// crash leaves to be claimed. Per stream, so that a busy stream never
	// keeps a quiet one waiting for a slot.
	MaxInFlight int
	// BlockTime bounds each XREADGROUP wait, and so how long Close waits
	// for a read in flight.
	BlockTime time.Duration
	// NackResendSleep is the pause before a nacked message is delivered
	// again (DefaultNackResendSleep).
	NackResendSleep time.Duration
	// ClaimInterval is how often entries pending with other consumers for
	// MaxIdleTime or more are claimed. Entries this subscriber holds are
	// kept from looking idle by re-claiming them for itself once they have
	// been held for MaxIdleTime/2, so a live but slow consumer keeps its
	// messages.
	ClaimInterval time.Duration
	MaxIdleTime   time.Duration
	// Consumers of the group idle for ConsumerTimeout with nothing pending
	// (processes renamed or gone) are removed, checked every
	// CheckConsumersInterval.
	CheckConsumersInterval time.Duration
	ConsumerTimeout        time.Duration

	// Tracker, when set, learns of every delivery and release; a batching
	// handler uses it to keep each stream in order (see sequencer).
	Tracker Tracker
	// ShouldStopOnReadErrors tells read errors that end a subscription
	// (the client closed) from those retried after a pause.
	ShouldStopOnReadErrors func(error) bool
}

// Tracker learns what a Subscriber hands out and lets go of.
type Tracker interface {
	// Delivered is called before a message of the stream's entry id is
	// handed out, again at every redelivery.
	Delivered(stream, id string)
	// Released is called once the entry is acknowledged, or given up on
	// because the subscriber is closing.
	Released(stream, id string)
}

func (c *SubscriberConfig) setDefaults() {
	if c.Unmarshaller == nil {
		c.Unmarshaller = unmarshaller{}
	}
	if c.OldestID == "" {
		c.OldestID = "0"
	}
	if c.ReadCount <= 0 {
		c.ReadCount = DefaultReadCount
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.BlockTime, DefaultBlockTime)
	def(&c.NackResendSleep, DefaultNackResendSleep)
	def(&c.ClaimInterval, DefaultClaimInterval)
	def(&c.MaxIdleTime, DefaultMaxIdleTime)
	def(&c.CheckConsumersInterval, DefaultCheckConsumersInterval)
	def(&c.ConsumerTimeout, DefaultConsumerTimeout)
}

// Subscriber is a watermill subscriber on Redis Streams consumer groups
// built for throughput. Unlike watermill-redisstream's, which reads one
// entry at a time and delivers the next only once the last is
// acknowledged, it
//
//   - reads up to ReadCount entries per XREADGROUP and delivers them
//     without waiting for acknowledgements, at most MaxInFlight at a time
//     (the watermill router handles each in a goroutine of its own);
//   - acknowledges in bulk: one XACK per stream for whatever was
//     acknowledged meanwhile, sent in one pipeline;
//   - delivers a nacked message again after NackResendSleep;
//   - claims, with XAUTOCLAIM, entries another consumer left pending for
//     MaxIdleTime, and at start reads its own pending entries (left by
//     its previous run under the same name) before new ones.
//
// Messages of one stream are delivered in stream order, but handled
// concurrently: a handler that must keep them in order uses the Tracker
// (see batcher). A message's context ends once it is acknowledged or
// nacked, or the subscriber closes.
type Subscriber struct {
	cfg     SubscriberConfig
	log     watermill.LoggerAdapter
	acks    ackQueue
	closing chan struct{}

	mu        sync.Mutex
	closed    bool
	workers   sync.WaitGroup // everything that may deliver or ack
	ackerDone chan struct{}
}

type ackReq struct {
	sub *subscription
	id  string
}

// NewSubscriber answers a subscriber; Subscribe starts reading.
func NewSubscriber(cfg SubscriberConfig, log watermill.LoggerAdapter) (*Subscriber, error) {
	cfg.setDefaults()
	if cfg.Client == nil {
		return nil, errors.New("subscriber: Client missing")
	}
	if cfg.Group == "" || cfg.Consumer == "" {
		return nil, errors.New("subscriber: Group and Consumer are required")
	}
	if log == nil {
		log = watermill.NopLogger{}
	}
	s := &Subscriber{
		cfg:       cfg,
		log:       log,
		acks:      ackQueue{wake: make(chan struct{}, 1)},
		closing:   make(chan struct{}),
		ackerDone: make(chan struct{}),
	}
	go s.acker()
	return s, nil
}

// subscription is one stream's share of the subscriber.
type subscription struct {
	s      *Subscriber
	stream string
	slots  *slots          // messages it may still deliver
	ctx    context.Context // ends when the subscriber closes or Subscribe's ctx ends
	out    chan *message.Message
	fields watermill.LogFields

	senders sync.WaitGroup // goroutines that may send on out

	mu   sync.Mutex
	held map[string]time.Time // entry id → when it was last delivered or re-claimed
}

// Subscribe creates the group on topic if needed (and the stream with it)
// and delivers its entries until ctx ends or the subscriber closes.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("subscriber closed")
	}
	err := s.cfg.Client.XGroupCreateMkStream(ctx, topic, s.cfg.Group, s.cfg.OldestID).Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return nil, fmt.Errorf("create group %s on %s: %w", s.cfg.Group, topic, err)
	}
	subCtx, cancel := context.WithCancel(ctx)
	sub := &subscription{
		s: s, stream: topic, ctx: subCtx, slots: newSlots(s.cfg.MaxInFlight),
		out:    make(chan *message.Message),
		fields: watermill.LogFields{"stream": topic, "group": s.cfg.Group, "consumer": s.cfg.Consumer},
		held:   map[string]time.Time{},
	}
	sub.senders.Add(2)
	s.workers.Add(3)
	go func() {
		defer s.workers.Done()
		select {
		case <-s.closing:
		case <-subCtx.Done():
		}
		cancel()
		// The router reads out until it closes; nothing may send after.
		sub.senders.Wait()
		close(sub.out)
	}()
	go func() {
		defer s.workers.Done()
		defer sub.senders.Done()
		sub.read()
	}()
	go func() {
		defer s.workers.Done()
		defer sub.senders.Done()
		sub.maintain()
	}()
	return sub.out, nil
}

// Close stops reading, lets the messages in flight go (they stay pending,
// to be delivered again), acknowledges what was acknowledged before, and
// closes every subscription's channel. It does not close the client.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.ackerDone
		return nil
	}
	s.closed = true
	close(s.closing)
	s.mu.Unlock()
	s.workers.Wait()
	s.acks.close() // every sender has returned
	<-s.ackerDone
	return nil
}

// read delivers the subscription's own pending entries, then new ones.
func (sub *subscription) read() {
	s := sub.s
	for _, start := range []string{"0", ">"} {
		cursor := start
		for {
			n := sub.slots.acquire(sub.ctx, s.cfg.ReadCount)
			if n == 0 {
				return // closing
			}
			xs, err := s.cfg.Client.XReadGroup(sub.ctx, &redis.XReadGroupArgs{
				Group: s.cfg.Group, Consumer: s.cfg.Consumer,
				Streams: []string{sub.stream, cursor},
				Count:   int64(n), Block: s.cfg.BlockTime,
			}).Result()
			var msgs []redis.XMessage
			if len(xs) > 0 {
				msgs = xs[0].Messages
			}
			sub.slots.release(n - len(msgs))
			if err != nil && !errors.Is(err, redis.Nil) {
				if sub.ctx.Err() != nil {
					return
				}
				if s.cfg.ShouldStopOnReadErrors != nil && s.cfg.ShouldStopOnReadErrors(err) {
					s.log.Error("stop reading after error", err, sub.fields)
					return
				}
				s.log.Error("read failed", err, sub.fields)
				if !sleep(sub.ctx, 500*time.Millisecond) {
					return
				}
				continue
			}
			if start == "0" && len(msgs) == 0 {
				break // own pending entries done: read new ones
			}
			if start == "0" {
				cursor = msgs[len(msgs)-1].ID
			}
			// The claimer may have taken some of its own pending
			// entries already.
			msgs = sub.take(msgs)
			sub.announce(msgs)
			for i := range msgs {
				if !sub.deliver(msgs[i]) {
					sub.abandon(msgs[i+1:])
					return
				}
			}
		}
	}
}

// deliver hands out one entry, holding the slot taken for it, and watches
// what becomes of it. It answers false when the subscriber is closing.
func (sub *subscription) deliver(xm redis.XMessage) bool {
	s := sub.s
	if xm.Values == nil {
		// Deleted from the stream while pending (XDEL, trimming): there
		// is nothing to handle, only the pending entry to clear.
		s.log.Info("pending entry no longer in the stream: acknowledged", sub.fields.Add(watermill.LogFields{"id": xm.ID}))
		s.acks.push(ackReq{sub: sub, id: xm.ID})
		return true
	}
	label(sub.stream, []redis.XMessage{xm})
	msg, err := s.cfg.Unmarshaller.Unmarshal(xm.Values)
	if err != nil {
		// Left pending: it is claimed again after MaxIdleTime and, if
		// it still cannot be read, logged again.
		s.log.Error("unmarshal entry", err, sub.fields.Add(watermill.LogFields{"id": xm.ID}))
		sub.giveUp(xm.ID)
		return true
	}
	// Sent from here, not from the watching goroutine, so that messages
	// go out, and the Tracker learns of them, in stream order.
	ctx, cancel := sub.send(msg, xm.ID)
	if ctx == nil {
		sub.giveUp(xm.ID)
		return false
	}
	sub.senders.Add(1)
	s.workers.Add(1)
	go func() {
		defer s.workers.Done()
		defer sub.senders.Done()
		sub.watch(msg, xm.ID, cancel)
	}()
	return true
}

// send hands msg out under a context of its own, which it answers with
// its cancel; nil once the subscription is ending.
func (sub *subscription) send(msg *message.Message, id string) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(sub.ctx)
	msg.SetContext(ctx)
	if t := sub.s.cfg.Tracker; t != nil {
		t.Delivered(sub.stream, id)
	}
	select {
	case sub.out <- msg:
		return ctx, cancel
	case <-sub.ctx.Done():
		cancel()
		return nil, nil
	}
}

// giveUp lets go of an entry without acknowledging it: it stays pending,
// for this consumer's next run or another consumer to claim.
func (sub *subscription) giveUp(id string) {
	sub.forget([]string{id})
	if t := sub.s.cfg.Tracker; t != nil {
		t.Released(sub.stream, id)
	}
	sub.slots.release(1)
}

// announce tells the Tracker of every entry of a read before the first is
// handed out, so that a batching handler knows more is coming while it
// gathers the first ones.
func (sub *subscription) announce(msgs []redis.XMessage) {
	if t := sub.s.cfg.Tracker; t != nil {
		for _, m := range msgs {
			t.Delivered(sub.stream, m.ID)
		}
	}
}

// abandon lets go of entries taken and announced but not handed out: the
// subscriber is closing, and they stay pending.
func (sub *subscription) abandon(msgs []redis.XMessage) {
	for _, m := range msgs {
		sub.giveUp(m.ID)
	}
}

// take marks the entries of msgs not held here yet as held, releases the
// slots of the others, and answers the former: the reader and the claimer
// may both come across an entry, and only one may hand it out.
func (sub *subscription) take(msgs []redis.XMessage) []redis.XMessage {
	now := time.Now()
	sub.mu.Lock()
	kept := slices.DeleteFunc(msgs, func(m redis.XMessage) bool {
		if _, ok := sub.held[m.ID]; ok {
			return true
		}
		sub.held[m.ID] = now
		return false
	})
	sub.mu.Unlock()
	sub.slots.release(len(msgs) - len(kept))
	return kept
}

// forget drops entries no longer held.
func (sub *subscription) forget(ids []string) {
	sub.mu.Lock()
	for _, id := range ids {
		delete(sub.held, id)
	}
	sub.mu.Unlock()
}

// watch acknowledges or redelivers msg, sent already, as the handler
// says, until it is acknowledged or the subscriber closes.
func (sub *subscription) watch(msg *message.Message, id string, cancel context.CancelFunc) {
	s := sub.s
	for {
		select {
		case <-msg.Acked():
			cancel()
			s.acks.push(ackReq{sub: sub, id: id})
			return
		case <-msg.Nacked():
			cancel()
		case <-sub.ctx.Done():
			cancel()
			// An acknowledgement that raced the close still counts.
			select {
			case <-msg.Acked():
				s.acks.push(ackReq{sub: sub, id: id})
			default:
				sub.giveUp(id)
			}
			return
		}
		if !sleep(sub.ctx, s.cfg.NackResendSleep) {
			sub.giveUp(id)
			return
		}
		msg = msg.Copy() // a fresh message: acks are once only
		var ctx context.Context
		if ctx, cancel = sub.send(msg, id); ctx == nil {
			sub.giveUp(id)
			return
		}
	}
}

// ackQueue holds acknowledgements until the acker sends them. It never
// blocks: a watcher is done once it has queued its acknowledgement, even
// while Redis is down.
type ackQueue struct {
	mu     sync.Mutex
	items  []ackReq
	closed bool
	wake   chan struct{}
}

func (q *ackQueue) push(a ackReq) {
	q.mu.Lock()
	q.items = append(q.items, a)
	q.mu.Unlock()
	q.signal()
}

func (q *ackQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

func (q *ackQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take waits for acknowledgements and answers all there are; nil once the
// queue is closed and empty.
func (q *ackQueue) take() []ackReq {
	for {
		q.mu.Lock()
		items, closed := q.items, q.closed
		q.items = nil
		q.mu.Unlock()
		if len(items) > 0 || closed {
			return items
		}
		<-q.wake
	}
}

// acker acknowledges in bulk: whatever was acknowledged while the last
// XACKs were on their way goes in the next pipeline, one XACK per stream.
func (s *Subscriber) acker() {
	defer close(s.ackerDone)
	for {
		batch := s.acks.take()
		if batch == nil {
			return
		}
		s.flush(batch)
	}
}

// flush sends the XACKs of batch, retrying while Redis fails; on closing
// it tries once more and gives up (the entries are delivered again later,
// and handled as duplicates).
func (s *Subscriber) flush(batch []ackReq) {
	bySub := map[*subscription][]string{}
	var order []*subscription
	for _, a := range batch {
		if _, ok := bySub[a.sub]; !ok {
			order = append(order, a.sub)
		}
		bySub[a.sub] = append(bySub[a.sub], a.id)
	}
	wait := 100 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := s.cfg.Client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, sub := range order {
				p.XAck(ctx, sub.stream, s.cfg.Group, bySub[sub]...)
			}
			return nil
		})
		cancel()
		if err == nil {
			break
		}
		closing := false
		select {
		case <-s.closing:
			closing = true
		default:
		}
		if closing {
			s.log.Error("acknowledge on closing: the entries will be delivered again", err, watermill.LogFields{"count": len(batch)})
			break
		}
		s.log.Error("acknowledge: retrying", err, watermill.LogFields{"count": len(batch), "retryIn": wait.String()})
		select {
		case <-s.closing:
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
	for _, sub := range order {
		ids := bySub[sub]
		sub.forget(ids)
		if s.cfg.Tracker != nil {
			for _, id := range ids {
				s.cfg.Tracker.Released(sub.stream, id)
			}
		}
		sub.slots.release(len(ids))
	}
}

// maintain claims idle entries of other consumers, keeps this one's from
// looking idle, and removes consumers long gone, until the subscription
// ends.
func (sub *subscription) maintain() {
	s := sub.s
	claim := time.NewTicker(s.cfg.ClaimInterval)
	defer claim.Stop()
	beat := time.NewTicker(max(s.cfg.MaxIdleTime/4, time.Millisecond))
	defer beat.Stop()
	check := time.NewTicker(s.cfg.CheckConsumersInterval)
	defer check.Stop()
	sub.claim() // at once: a restarted process picks up a dead one's work
	for {
		select {
		case <-sub.ctx.Done():
			return
		case <-claim.C:
			sub.claim()
		case <-beat.C:
			sub.heartbeat()
		case <-check.C:
			sub.removeGoneConsumers()
		}
	}
}

// claim takes over entries pending with any consumer for MaxIdleTime, as
// many as there are free slots, and delivers them.
func (sub *subscription) claim() {
	s := sub.s
	for cursor := "0-0"; ; {
		n := sub.slots.tryAcquire(s.cfg.ReadCount)
		if n == 0 {
			return // full: the next round claims the rest
		}
		msgs, next, err := s.cfg.Client.XAutoClaim(sub.ctx, &redis.XAutoClaimArgs{
			Stream: sub.stream, Group: s.cfg.Group, Consumer: s.cfg.Consumer,
			MinIdle: s.cfg.MaxIdleTime, Start: cursor, Count: int64(n),
		}).Result()
		if err != nil {
			sub.slots.release(n)
			if sub.ctx.Err() == nil {
				s.log.Error("claim idle entries", err, sub.fields)
			}
			return
		}
		sub.slots.release(n - len(msgs))
		// Entries held here already (the heartbeat was late) are not
		// handed out again: the claim only renewed them.
		msgs = sub.take(msgs)
		sub.announce(msgs)
		for i, m := range msgs {
			s.log.Info("claimed an idle entry", sub.fields.Add(watermill.LogFields{"id": m.ID}))
			if !sub.deliver(m) {
				sub.abandon(msgs[i+1:])
				return
			}
		}
		if next == "0-0" || next == "" {
			return
		}
		cursor = next
	}
}

// heartbeat re-claims, for this consumer, entries held here for
// MaxIdleTime/2, so no other consumer takes them as abandoned while they
// wait their turn or are retried. An entry another consumer claimed
// meanwhile is not taken back (its idle time is below the minimum).
func (sub *subscription) heartbeat() {
	s := sub.s
	limit := s.cfg.MaxIdleTime / 2
	now := time.Now()
	var ids []string
	sub.mu.Lock()
	for id, at := range sub.held {
		if now.Sub(at) >= limit {
			ids = append(ids, id)
		}
	}
	sub.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	renewed, err := s.cfg.Client.XClaimJustID(sub.ctx, &redis.XClaimArgs{
		Stream: sub.stream, Group: s.cfg.Group, Consumer: s.cfg.Consumer, MinIdle: limit, Messages: ids,
	}).Result()
	if err != nil {
		if sub.ctx.Err() == nil {
			s.log.Error("renew held entries", err, sub.fields)
		}
		return
	}
	sub.mu.Lock()
	for _, id := range renewed {
		if _, ok := sub.held[id]; ok {
			sub.held[id] = now
		}
	}
	sub.mu.Unlock()
	if lost := len(ids) - len(renewed); lost > 0 {
		s.log.Info("held entries claimed by another consumer; handling them anyway (idempotent)", sub.fields.Add(watermill.LogFields{"count": lost}))
	}
}

// removeGoneConsumers deletes consumers of the group idle for
// ConsumerTimeout with nothing pending: a process renamed or retired.
func (sub *subscription) removeGoneConsumers() {
	s := sub.s
	cs, err := s.cfg.Client.XInfoConsumers(sub.ctx, sub.stream, s.cfg.Group).Result()
	if err != nil {
		if sub.ctx.Err() == nil {
			s.log.Error("list consumers", err, sub.fields)
		}
		return
	}
	for _, c := range cs {
		if c.Name == s.cfg.Consumer || c.Pending > 0 || c.Idle < s.cfg.ConsumerTimeout {
			continue
		}
		if err := s.cfg.Client.XGroupDelConsumer(sub.ctx, sub.stream, s.cfg.Group, c.Name).Err(); err != nil && sub.ctx.Err() == nil {
			s.log.Error("remove a gone consumer", err, sub.fields.Add(watermill.LogFields{"gone": c.Name}))
		}
	}
}

// slots counts the messages a subscriber may still deliver.
type slots struct {
	mu   sync.Mutex
	free int
	wake chan struct{} // a token: some slot was released
}

func newSlots(n int) *slots { return &slots{free: n, wake: make(chan struct{}, 1)} }

// acquire waits until a slot is free, then takes up to want of them; it
// answers 0 once ctx ends.
func (s *slots) acquire(ctx context.Context, want int) int {
	for {
		if n := s.tryAcquire(want); n > 0 {
			return n
		}
		select {
		case <-ctx.Done():
			return 0
		case <-s.wake:
		}
	}
}

// tryAcquire takes up to want free slots, maybe none.
func (s *slots) tryAcquire(want int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := min(s.free, want)
	s.free -= n
	if s.free > 0 {
		s.signal() // another waiter may take the rest
	}
	return n
}

func (s *slots) release(n int) {
	if n <= 0 {
		return
	}
	s.mu.Lock()
	s.free += n
	s.mu.Unlock()
	s.signal()
}

func (s *slots) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// sleep waits d unless ctx ends first; it reports whether it slept.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// entryID is a stream entry id, "<milliseconds>-<sequence>", comparable.
type entryID struct{ ms, seq uint64 }

func parseEntryID(s string) (entryID, bool) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return entryID{}, false
	}
	ms, err1 := strconv.ParseUint(a, 10, 64)
	seq, err2 := strconv.ParseUint(b, 10, 64)
	return entryID{ms, seq}, err1 == nil && err2 == nil
}

func (e entryID) less(f entryID) bool {
	return e.ms < f.ms || e.ms == f.ms && e.seq < f.seq
}
