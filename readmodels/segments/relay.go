package segments

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/clubcrm/crm/adapters/postgres"
)

// RelayLockKey is the session advisory lock the relay's leader holds
// ("crm-sgob").
const RelayLockKey = 0x63726d2d73676f62

// Defaults of Relay.
const (
	DefaultRelayPoll  = 100 * time.Millisecond
	DefaultRelayBatch = 500
	DefaultRelayKeep  = 24 * time.Hour
)

// Relay publishes the segment outbox (crm.segment.membership.changed to
// crm.events, snapshots and diffs to messaging.segments) in the order the
// rows were written, marks them published, and deletes published rows
// after Keep. Delivery is at least once: a crash between publishing and
// marking publishes the rows again with the same message ids. One process
// at a time relays (RelayLockKey); the others stand by.
type Relay struct {
	Pool      *pgxpool.Pool
	Publisher message.Publisher
	// Topics maps an outbox topic to the stream it is published to
	// (tests); unmapped topics keep their names.
	Topics map[string]string
	Poll   time.Duration
	Batch  int
	Keep   time.Duration
	Log    *slog.Logger
}

func (r *Relay) log() *slog.Logger {
	if r.Log == nil {
		return slog.Default()
	}
	return r.Log
}

// Run relays until ctx ends.
func (r *Relay) Run(ctx context.Context) error {
	poll := r.Poll
	if poll <= 0 {
		poll = DefaultRelayPoll
	}
	var lastSweep time.Time
	for ctx.Err() == nil {
		n := 0
		_, err := postgres.Leading(ctx, r.Pool, RelayLockKey, func(conn *pgx.Conn) error {
			// Drain what is pending while leading, on the lock's own
			// connection; let go when nothing is, so a standby can lead.
			for ctx.Err() == nil {
				k, err := r.relay(ctx, conn)
				if err != nil {
					return err
				}
				n += k
				if k == 0 {
					break
				}
			}
			if time.Since(lastSweep) > time.Minute {
				lastSweep = time.Now()
				return r.sweep(ctx, conn)
			}
			return nil
		})
		if err != nil && ctx.Err() == nil {
			r.log().Warn("segment outbox relay failed; retrying", slog.Any("error", err))
			sleepCtx(ctx, time.Second)
			continue
		}
		if n == 0 {
			sleepCtx(ctx, poll)
		}
	}
	return nil
}

// RelayOnce publishes the oldest unpublished rows, at most Batch, and
// answers how many.
func (r *Relay) RelayOnce(ctx context.Context) (int, error) {
	conn, err := r.Pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	return r.relay(ctx, conn.Conn())
}

func (r *Relay) relay(ctx context.Context, conn *pgx.Conn) (int, error) {
	batch := r.Batch
	if batch <= 0 {
		batch = DefaultRelayBatch
	}
	rows, err := conn.Query(ctx, `SELECT id, topic, message_id, type, tenant_id, payload FROM `+OutboxTable+`
WHERE published_at IS NULL ORDER BY id LIMIT $1`, batch)
	if err != nil {
		return 0, fmt.Errorf("read segment outbox: %w", err)
	}
	type row struct {
		id          int64
		topic       string
		msg         *message.Message
		typ, tenant string
		payload     []byte
	}
	var (
		ids   []int64
		queue []row
	)
	for rows.Next() {
		var (
			x   row
			mid uuid.UUID
		)
		if err := rows.Scan(&x.id, &x.topic, &mid, &x.typ, &x.tenant, &x.payload); err != nil {
			rows.Close()
			return 0, fmt.Errorf("read segment outbox: %w", err)
		}
		x.msg = message.NewMessage(mid.String(), x.payload)
		x.msg.Metadata.Set("type", x.typ)
		x.msg.Metadata.Set("tenantId", x.tenant)
		x.msg.SetContext(ctx)
		queue = append(queue, x)
		ids = append(ids, x.id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("read segment outbox: %w", err)
	}
	// Publish runs of one topic together, keeping the rows' order.
	for i := 0; i < len(queue); {
		j := i
		var msgs []*message.Message
		for ; j < len(queue) && queue[j].topic == queue[i].topic; j++ {
			msgs = append(msgs, queue[j].msg)
		}
		topic := queue[i].topic
		if t, ok := r.Topics[topic]; ok {
			topic = t
		}
		if err := r.Publisher.Publish(topic, msgs...); err != nil {
			return 0, fmt.Errorf("publish to %s: %w", topic, err)
		}
		i = j
	}
	if len(ids) == 0 {
		return 0, nil
	}
	if _, err := conn.Exec(ctx, `UPDATE `+OutboxTable+` SET published_at = now() WHERE id = ANY($1)`, ids); err != nil {
		return 0, fmt.Errorf("mark segment outbox published: %w", err)
	}
	return len(ids), nil
}

// sweep deletes rows published more than Keep ago.
func (r *Relay) sweep(ctx context.Context, conn *pgx.Conn) error {
	keep := r.Keep
	if keep <= 0 {
		keep = DefaultRelayKeep
	}
	if _, err := conn.Exec(ctx, `DELETE FROM `+OutboxTable+` WHERE published_at < now() - make_interval(secs => $1)`, keep.Seconds()); err != nil {
		return fmt.Errorf("sweep segment outbox: %w", err)
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
