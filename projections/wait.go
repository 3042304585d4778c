package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/clubcrm/crm/eventstore"
)

// ErrNotCaughtUp is answered by WaitFor when the projector has not passed
// the position within the time allowed. The read model is then older than
// the caller's write: an HTTP handler might answer 503 with Retry-After, or
// serve the older data and say so.
var ErrNotCaughtUp = errors.New("projection has not caught up")

// checkpointChannel is the channel the checkpoint trigger notifies on (see
// migrations/00003_projections.sql).
const checkpointChannel = "crm_projection_checkpoints"

// Fallback polling for WaitFor: slow while notifications flow, since they
// are only missed around a reconnect; quick while the listener is down.
const (
	pollListening = time.Second
	pollDeaf      = 100 * time.Millisecond
)

// WaitFor blocks until the named projector's checkpoint has reached pos (a
// position a command answered, decoded from a token with DecodeToken), so
// that a query of its read model sees the command's writes. It gives up
// after timeout with an error wrapping ErrNotCaughtUp. The projector may run in
// any process: WaitFor learns of checkpoint commits through PostgreSQL
// notifications, polling as a fallback. The zero position is passed at once.
func (r *Runtime) WaitFor(ctx context.Context, projector string, pos eventstore.Position, timeout time.Duration) error {
	if _, ok := r.runners[projector]; !ok {
		return fmt.Errorf("wait for %s: %w", projector, ErrUnknownProjector)
	}
	if pos == eventstore.Start {
		return nil
	}
	r.watch.start()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var (
		polled time.Time
		gen    = -1
		poll   = time.NewTimer(0)
	)
	defer poll.Stop()
	for {
		// Take the signal before looking, so a change right after the
		// look still wakes us.
		changed, seen, g, listening := r.watch.state(projector)
		if !seen.Less(pos) {
			return nil
		}
		// Poll the row now unless notifications cover this: a new listener
		// generation may have missed what committed before it listened.
		interval := pollDeaf
		if listening {
			interval = pollListening
		}
		if g != gen || time.Since(polled) >= interval {
			gen, polled = g, time.Now()
			cp, err := loadCheckpoint(ctx, r.pool, projector)
			if err != nil {
				return fmt.Errorf("wait for %s to reach %s: %w", projector, pos, err)
			}
			r.watch.observe(projector, cp)
			if !cp.Less(pos) {
				return nil
			}
			poll.Reset(interval)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s to reach %s: %w", projector, pos, ctx.Err())
		case <-deadline.C:
			cp, _ := r.watch.position(projector)
			return fmt.Errorf("%s is at %s, not yet at %s after %s: %w", projector, cp, pos, timeout, ErrNotCaughtUp)
		case <-changed:
		case <-poll.C:
		}
	}
}

// watcher follows checkpoint notifications on a connection of its own and
// keeps the newest checkpoint seen per projector for WaitFor. It starts with
// the first WaitFor and stops with the Runtime.
type watcher struct {
	cfg *pgx.ConnConfig
	log *slog.Logger

	once   sync.Once
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	seen      map[string]eventstore.Position
	changed   chan struct{} // closed and replaced on every change
	gen       int           // counts (re)connections of the listener
	listening bool
}

func newWatcher(cfg *pgx.ConnConfig, log *slog.Logger) *watcher {
	ctx, cancel := context.WithCancel(context.Background())
	return &watcher{cfg: cfg, log: log, ctx: ctx, cancel: cancel, done: make(chan struct{}),
		seen: map[string]eventstore.Position{}, changed: make(chan struct{})}
}

func (w *watcher) start() {
	w.once.Do(func() { go w.listen() })
}

// stop ends the listener, if it started, and waits for it.
func (w *watcher) stop() {
	w.cancel()
	started := true
	w.once.Do(func() { started = false })
	if started {
		<-w.done
	}
}

// state answers a channel closed at the next change, the newest checkpoint
// seen for name, the listener's generation and whether it listens now.
func (w *watcher) state(name string) (<-chan struct{}, eventstore.Position, int, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.changed, w.seen[name], w.gen, w.listening
}

func (w *watcher) position(name string) (eventstore.Position, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	p, ok := w.seen[name]
	return p, ok
}

// observe records a checkpoint of name. Checkpoints only move forward, and
// notifications and polls may arrive out of order, so the newest wins.
func (w *watcher) observe(name string, p eventstore.Position) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen[name].Less(p) {
		w.seen[name] = p
		w.signal()
	}
}

func (w *watcher) setListening(on bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.listening = on
	if on {
		w.gen++
	}
	w.signal()
}

// signal wakes every waiter; w.mu must be held.
func (w *watcher) signal() {
	close(w.changed)
	w.changed = make(chan struct{})
}

func (w *watcher) listen() {
	defer close(w.done)
	retry := backoff{min: 100 * time.Millisecond, max: 5 * time.Second}
	for w.ctx.Err() == nil {
		err := w.listenOnce()
		w.setListening(false)
		if w.ctx.Err() != nil {
			return
		}
		w.log.Warn("projection checkpoint listener lost; waiters poll meanwhile", "err", err)
		sleep(w.ctx, retry.next())
	}
}

func (w *watcher) listenOnce() error {
	conn, err := pgx.ConnectConfig(w.ctx, w.cfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer closeConn(conn)
	if _, err := conn.Exec(w.ctx, "LISTEN "+checkpointChannel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	w.setListening(true)
	for {
		n, err := conn.WaitForNotification(w.ctx)
		if err != nil {
			return fmt.Errorf("wait for notification: %w", err)
		}
		name, p, err := ParseNotification(n.Payload)
		if err != nil {
			w.log.Warn("ignoring malformed checkpoint notification", "payload", n.Payload, "err", err)
			continue
		}
		w.observe(name, p)
	}
}

// ParseNotification reads the trigger's payload "name commit prepare".
func ParseNotification(payload string) (string, eventstore.Position, error) {
	f := strings.Fields(payload)
	if len(f) != 3 {
		return "", eventstore.Position{}, fmt.Errorf("want 3 fields, got %d", len(f))
	}
	c, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return "", eventstore.Position{}, fmt.Errorf("commit position: %w", err)
	}
	p, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return "", eventstore.Position{}, fmt.Errorf("prepare position: %w", err)
	}
	return f[0], pos(c, p), nil
}
