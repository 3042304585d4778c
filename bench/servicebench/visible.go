package servicebench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/clubcrm/crm/bench/population"
	"github.com/clubcrm/crm/readmodels/customers"
	"github.com/clubcrm/crm/readmodels/segments"
)

// sendTick is how often the event → visible phase sends the events due.
const sendTick = 5 * time.Millisecond

// VisibleResult is how long an upstream event takes to show in the profile
// read model while events arrive at a steady rate.
type VisibleResult struct {
	Rate     int     `json:"rate"` // events/s asked for
	Seconds  float64 `json:"seconds"`
	Sent     int     `json:"sent"`
	Achieved float64 `json:"achievedRate"` // events/s actually published
	Latency  Latency `json:"latency"`
	Missing  int     `json:"missing"` // not visible 15 s after the last was sent
	// PerSecondP50 is the median latency of the events sent in each
	// second: flat when the service keeps up, climbing when it does not.
	PerSecondP50 []float64 `json:"perSecondP50Ms"`
	// The latency in two: from XADD until the event store recorded the
	// domain event (recorded_at, the append statement's time), and from
	// then until the read model showed it.
	Recorded  Latency `json:"toRecorded"`
	Projected Latency `json:"recordedToVisible"`
	// Membership is from the XADD until the member showed in its club's
	// latency segment (segmentService), when segments are built: event →
	// membership change. MembershipMissing did not within 15 s of the last
	// event sent.
	Membership        *Latency `json:"membership,omitempty"`
	MembershipMissing int      `json:"membershipMissing,omitempty"`
	// CPU is the processor time from the first event sent until the last
	// was seen (or 15 s after it was sent), per 1,000 sent.
	CPU *CPUCost `json:"cpuPer1000Events,omitempty"`
}

// visible publishes member.updated events at rate per second for d, each
// giving a member a membership tier of its own, and times each from its
// XADD until the customers read model shows that tier. It watches the
// projectors' checkpoint notifications (crm_projection_checkpoints) and
// looks the waiting profiles up whenever the customers projector's moves
// (the waiting segment members when segment membership's does), so the
// time taken is when the projector's transaction committed, give or take
// a query. Looking up at every notification of any projector, or every
// 50 ms without one, cost the database as much as the service's own
// stream reads once a backlog had built up, and so lengthened the backlog
// it measured.
func (b *bench) visible(ctx context.Context, rate int, d time.Duration) (VisibleResult, error) {
	res := VisibleResult{Rate: rate}
	type member struct {
		key profileKey
		id  int64
	}
	rows, err := b.pool.Query(ctx, `SELECT tenant_id, id, scl_member_id FROM customers
WHERE scl_member_id IS NOT NULL AND status = 'ACTIVE' ORDER BY tenant_id, id`)
	if err != nil {
		return res, fmt.Errorf("members: %w", err)
	}
	members, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (member, error) {
		var m member
		return m, r.Scan(&m.key.tenant, &m.key.id, &m.id)
	})
	if err != nil {
		return res, fmt.Errorf("members: %w", err)
	}
	if len(members) == 0 {
		return res, errors.New("visible: no members")
	}
	rng := rand.New(rand.NewPCG(b.cfg.Seed, 3))
	rng.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })

	// Events in flight, per member, oldest first. A member's events
	// travel one stream and one consumer in order, and the projector
	// applies a stream in order: once the row shows the tier of event i,
	// every earlier event of that member is visible too.
	type waiting struct {
		seq  int
		sent time.Time
	}
	total := int(d.Seconds() * float64(rate))
	bySecond := make([][]time.Duration, (total+rate-1)/rate)

	var mu sync.Mutex
	pending := map[profileKey][]waiting{}
	inFlight := 0
	var seen []time.Duration
	// Members on their way into a latency segment: their first event
	// moves them in.
	segPending := map[profileKey]time.Time{}
	segSent := map[profileKey]bool{}
	var segSeen []time.Duration
	sentAt, visibleAt := make([]time.Time, total), make([]time.Time, total)
	streams := map[string]bool{}

	conn, err := pgx.Connect(ctx, b.dsn)
	if err != nil {
		return res, fmt.Errorf("visible: listen: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `LISTEN crm_projection_checkpoints`); err != nil {
		return res, fmt.Errorf("visible: listen: %w", err)
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	watchDone := make(chan struct{})
	var watchErr error
	go func() {
		defer close(watchDone)
		watchErr = func() error {
			for watchCtx.Err() == nil {
				n, err := conn.WaitForNotification(watchCtx)
				at := time.Now()
				if err != nil {
					if watchCtx.Err() != nil {
						return nil
					}
					return fmt.Errorf("visible: wait for notification: %w", err)
				}
				projector, _, _ := strings.Cut(n.Payload, " ")
				if projector == segments.MembershipName {
					if err := lookUpMembers(watchCtx, conn, b.latencySegments, &mu, segPending, &segSeen, at); err != nil {
						if watchCtx.Err() != nil {
							return nil
						}
						return err
					}
					continue
				}
				if projector != customers.Name {
					continue
				}
				mu.Lock()
				tenants, ids := make([]string, 0, len(pending)), make([]uuid.UUID, 0, len(pending))
				for k := range pending {
					tenants, ids = append(tenants, k.tenant), append(ids, k.id)
				}
				mu.Unlock()
				if len(ids) == 0 {
					continue
				}
				rows, err := conn.Query(watchCtx, `SELECT tenant_id, id, membership_tier FROM customers
WHERE (tenant_id, id) IN (SELECT * FROM unnest($1::text[], $2::uuid[]))`, tenants, ids)
				if err != nil {
					if watchCtx.Err() != nil {
						return nil
					}
					return fmt.Errorf("visible: look up: %w", err)
				}
				mu.Lock()
				for rows.Next() {
					var k profileKey
					var tier *string
					if err := rows.Scan(&k.tenant, &k.id, &tier); err != nil {
						mu.Unlock()
						rows.Close()
						if watchCtx.Err() != nil {
							return nil
						}
						return fmt.Errorf("visible: look up: %w", err)
					}
					if tier == nil {
						continue
					}
					num, ok := strings.CutPrefix(*tier, latencyTier(b.run))
					if !ok {
						continue
					}
					upTo, err := strconv.Atoi(num)
					if err != nil {
						continue
					}
					ws := pending[k]
					n := 0
					for n < len(ws) && ws[n].seq <= upTo {
						seen = append(seen, at.Sub(ws[n].sent))
						visibleAt[ws[n].seq] = at
						sec := ws[n].seq / rate
						bySecond[sec] = append(bySecond[sec], at.Sub(ws[n].sent))
						n++
					}
					inFlight -= n
					if n == len(ws) {
						delete(pending, k)
					} else {
						pending[k] = ws[n:]
					}
				}
				mu.Unlock()
				rows.Close()
				if err := rows.Err(); err != nil {
					// Stopped while a look-up was reading: a long one, when
					// the service has fallen behind.
					if watchCtx.Err() != nil {
						return nil
					}
					return fmt.Errorf("visible: look up: %w", err)
				}
			}
			return nil
		}()
	}()
	// The watcher must be done with conn before it closes.
	defer func() { stopWatch(); <-watchDone }()

	interval := time.Second / time.Duration(rate)
	prog := b.progress(fmt.Sprintf("event → visible at %d events/s", rate), total)
	began := time.Now()
	// Ids and tiers of this run's own: a run resumed on a database an
	// earlier run sent these events to would otherwise send duplicates,
	// which the service drops at its inbox, and find their tiers in place.
	prefix := "visible-" + b.run + "-"
	next := 0
	// The events due in each tick go out in one pipeline: one XADD a
	// round trip, with a sleep before each, cost the harness a tenth of
	// the machine at 1,000/s, processors the service then lacked.
	tick := max(interval, sendTick)
	for i := 0; i < total; {
		if due := began.Add(time.Duration(i) * interval); time.Until(due) > 0 {
			if err := sleep(ctx, max(time.Until(due), tick)); err != nil {
				return res, err
			}
		}
		pipe := b.redis.client.Pipeline()
		from := i
		now := time.Now()
		mu.Lock()
		for ; i < total && !began.Add(time.Duration(i)*interval).After(now); i++ {
			m := members[next%len(members)]
			next++
			tier := latencyTier(b.run) + strconv.Itoa(i)
			e := population.Event{
				Stream: 0, ID: prefix + strconv.Itoa(i), Type: "member.updated", Source: "scl", Tenant: m.key.tenant,
				OccurredAt: now.UTC().Truncate(time.Second),
				Data:       []byte(`{"memberId":` + strconv.FormatInt(m.id, 10) + `,"membershipTier":"` + tier + `"}`),
			}
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: population.StreamSCL, Values: []any{"payload", e.Payload()}})
			sentAt[i] = now
			pending[m.key] = append(pending[m.key], waiting{seq: i, sent: now})
			inFlight++
			if len(b.latencySegments) > 0 && !segSent[m.key] {
				segSent[m.key] = true
				segPending[m.key] = now
			}
			streams["customer-"+m.key.id.String()] = true
		}
		mu.Unlock()
		if _, err := pipe.Exec(ctx); err != nil {
			return res, fmt.Errorf("visible: xadd: %w", err)
		}
		res.Sent += i - from
		if i/100 != from/100 {
			prog.set(i)
		}
		select {
		case <-watchDone:
			if watchErr != nil {
				return res, watchErr
			}
			return res, errors.New("visible: the watcher stopped")
		default:
		}
	}
	res.Seconds = time.Since(began).Seconds()
	res.Achieved = float64(res.Sent) / res.Seconds
	prog.done()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := inFlight + len(segPending)
		mu.Unlock()
		if n == 0 {
			break
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return res, err
		}
	}
	stopWatch()
	<-watchDone
	if watchErr != nil {
		return res, watchErr
	}
	mu.Lock()
	defer mu.Unlock()
	res.Missing = inFlight
	res.Latency = summarize(seen)
	if len(b.latencySegments) > 0 {
		m := summarize(segSeen)
		res.Membership, res.MembershipMissing = &m, len(segPending)
	}
	for _, ds := range bySecond {
		res.PerSecondP50 = append(res.PerSecondP50, summarize(ds).P50)
	}

	// When the store recorded each: the domain event caused by
	// visible-<i> on the member's stream.
	list := make([]string, 0, len(streams))
	for s := range streams {
		list = append(list, s)
	}
	rows, err = b.pool.Query(ctx, `SELECT metadata->>'causationId', recorded_at FROM events
WHERE stream = ANY($1) AND type = 'member.updated' AND starts_with(metadata->>'causationId', $3) AND recorded_at >= $2`, list, began, prefix)
	if err != nil {
		return res, fmt.Errorf("visible: recorded times: %w", err)
	}
	var toRecorded, toVisible []time.Duration
	for rows.Next() {
		var cause string
		var at time.Time
		if err := rows.Scan(&cause, &at); err != nil {
			rows.Close()
			return res, fmt.Errorf("visible: recorded times: %w", err)
		}
		i, err := strconv.Atoi(strings.TrimPrefix(cause, prefix))
		if err != nil || i < 0 || i >= total || sentAt[i].IsZero() {
			continue
		}
		toRecorded = append(toRecorded, at.Sub(sentAt[i]))
		if !visibleAt[i].IsZero() {
			toVisible = append(toVisible, visibleAt[i].Sub(at))
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return res, fmt.Errorf("visible: recorded times: %w", err)
	}
	res.Recorded, res.Projected = summarize(toRecorded), summarize(toVisible)
	return res, nil
}

// lookUpMembers finds which of the members pending (with when their event
// was sent) are now in one of segments, records their latency as of at and
// forgets them.
func lookUpMembers(ctx context.Context, conn *pgx.Conn, segments []uuid.UUID, mu *sync.Mutex, pending map[profileKey]time.Time, seen *[]time.Duration, at time.Time) error {
	if len(segments) == 0 {
		return nil
	}
	mu.Lock()
	tenants, ids := make([]string, 0, len(pending)), make([]uuid.UUID, 0, len(pending))
	for k := range pending {
		tenants, ids = append(tenants, k.tenant), append(ids, k.id)
	}
	mu.Unlock()
	if len(ids) == 0 {
		return nil
	}
	rows, err := conn.Query(ctx, `SELECT tenant_id, customer_id FROM segment_members
WHERE segment_id = ANY($1) AND (tenant_id, customer_id) IN (SELECT * FROM unnest($2::text[], $3::uuid[]))`, segments, tenants, ids)
	if err != nil {
		return fmt.Errorf("visible: segment members: %w", err)
	}
	defer rows.Close()
	mu.Lock()
	defer mu.Unlock()
	for rows.Next() {
		var k profileKey
		if err := rows.Scan(&k.tenant, &k.id); err != nil {
			return fmt.Errorf("visible: segment members: %w", err)
		}
		if sent, ok := pending[k]; ok {
			*seen = append(*seen, at.Sub(sent))
			delete(pending, k)
		}
	}
	return rows.Err()
}
