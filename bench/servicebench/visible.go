package servicebench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/clubcrm/crm/bench/population"
	"github.com/clubcrm/crm/eventstore"
	"github.com/clubcrm/crm/projections"
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
// XADD until the customers read model shows it, and each member's first
// from its XADD until the member is in its club's latency segment.
//
// It learns when by positions, not by looking rows up: it follows the
// event log (the harness's own store, reading only what is new) to learn
// at which position each event was recorded, and listens to the
// projectors' checkpoint notifications (crm_projection_checkpoints), which
// carry the position each projector's transaction committed, with its
// rows, up to. An event is visible once the customers checkpoint has
// passed its position. Looking every waiting profile up at each
// checkpoint instead cost the database a twelfth of its time in this
// phase, more the further the service fell behind, lengthening the very
// backlog it measured. At the end, one query checks that every profile
// counted visible shows its last event's tier and every member counted in
// its latency segment is in it: the rows, not only the checkpoints.
func (b *bench) visible(ctx context.Context, rate int, d time.Duration) (VisibleResult, error) {
	res := VisibleResult{Rate: rate}
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

	total := int(d.Seconds() * float64(rate))
	// Ids and tiers of this run's own: a run resumed on a database an
	// earlier run sent these events to would otherwise send duplicates,
	// which the service drops at its inbox, and find their tiers in place.
	prefix := "visible-" + b.run + "-"
	w := &watch{
		prefix: prefix, segments: len(b.latencySegments) > 0,
		sent: make([]time.Time, total), recorded: make([]time.Time, total), visible: make([]time.Time, total),
		at: make([]eventstore.Position, total), known: make([]bool, total), joined: make([]time.Time, total),
		waiting: map[int]bool{}, segWaiting: map[int]bool{},
	}
	if w.from, err = b.store.Head(ctx); err != nil {
		return res, fmt.Errorf("visible: head: %w", err)
	}
	to := make([]member, total)  // the member each event went to
	last := map[profileKey]int{} // each member's last event

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
				// The log is followed after every notification and, when
				// none comes, every followEvery: a checkpoint can pass an
				// event before this reader's own read of the log reaches
				// it, and the last notification may be that one.
				nctx, cancel := context.WithTimeout(watchCtx, followEvery)
				n, err := conn.WaitForNotification(nctx)
				cancel()
				at := time.Now()
				if err != nil && watchCtx.Err() != nil {
					return nil
				}
				if err != nil && !errors.Is(err, context.DeadlineExceeded) {
					return fmt.Errorf("visible: wait for notification: %w", err)
				}
				if err == nil {
					name, pos, perr := projections.ParseNotification(n.Payload)
					if perr != nil || (name != customers.Name && name != segments.MembershipName) {
						continue
					}
					w.passed(name == segments.MembershipName, pos, at)
				}
				if err := w.follow(watchCtx, b.store); err != nil {
					if watchCtx.Err() != nil {
						return nil
					}
					return err
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
		w.mu.Lock()
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
			w.sent[i], to[i] = now, m
			w.waiting[i] = true
			if _, ok := last[m.key]; !ok && w.segments {
				w.segWaiting[i] = true // its first event moves it in
			}
			last[m.key] = i
		}
		w.mu.Unlock()
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
		w.mu.Lock()
		n := len(w.waiting) + len(w.segWaiting)
		w.mu.Unlock()
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

	var seen, segSeen, toRecorded, toVisible []time.Duration
	bySecond := make([][]time.Duration, (total+rate-1)/rate)
	for i := range total {
		if w.known[i] {
			toRecorded = append(toRecorded, w.recorded[i].Sub(w.sent[i]))
		}
		if !w.visible[i].IsZero() {
			seen = append(seen, w.visible[i].Sub(w.sent[i]))
			toVisible = append(toVisible, w.visible[i].Sub(w.recorded[i]))
			bySecond[i/rate] = append(bySecond[i/rate], w.visible[i].Sub(w.sent[i]))
		}
		if !w.joined[i].IsZero() {
			segSeen = append(segSeen, w.joined[i].Sub(w.sent[i]))
		}
	}
	res.Missing = len(w.waiting)
	res.Latency = summarize(seen)
	res.Recorded, res.Projected = summarize(toRecorded), summarize(toVisible)
	if w.segments {
		m := summarize(segSeen)
		res.Membership, res.MembershipMissing = &m, len(w.segWaiting)
	}
	for _, ds := range bySecond {
		res.PerSecondP50 = append(res.PerSecondP50, summarize(ds).P50)
	}
	return res, b.checkVisible(ctx, w, to)
}

// member is an SCL member the event → visible figure sends events about.
type member struct {
	key profileKey
	id  int64 // SCL member id
}

// watch is what the event → visible figure knows of the events it sent,
// by their sequence numbers.
type watch struct {
	prefix   string // of the events' ids: the causation ids of what they recorded
	segments bool   // whether latency segments are built

	mu       sync.Mutex
	sent     []time.Time
	recorded []time.Time           // recorded_at of the domain event, once read from the log
	at       []eventstore.Position // its position in the log
	known    []bool                // whether at and recorded are
	visible  []time.Time           // when the customers checkpoint passed it
	joined   []time.Time           // when the membership checkpoint passed a member's first event
	// waiting are the events sent and not yet visible; segWaiting, the
	// members' first events not yet passed by segment membership.
	waiting, segWaiting map[int]bool
	// marks are the checkpoints notified, in order: the customers
	// projector's and segment membership's.
	marks, segMarks []mark

	from eventstore.Position // how far the log has been read (only the watcher's)
}

// follow reads the log from where it was left to its head, and learns the
// position and time each event sent was recorded at.
func (w *watch) follow(ctx context.Context, store eventstore.Store) error {
	for {
		evs, err := store.ReadAll(ctx, w.from, 2000)
		if err != nil {
			return fmt.Errorf("visible: read the log: %w", err)
		}
		w.mu.Lock()
		for _, e := range evs {
			w.from = e.Position
			num, ok := strings.CutPrefix(e.Metadata.CausationID, w.prefix)
			if !ok || e.Type != "member.updated" {
				continue
			}
			if i, err := strconv.Atoi(num); err == nil && i >= 0 && i < len(w.known) && !w.known[i] {
				w.at[i], w.recorded[i], w.known[i] = e.Position, e.RecordedAt, true
			}
		}
		w.settle(false)
		w.settle(true)
		w.mu.Unlock()
		if len(evs) < 2000 {
			return nil
		}
	}
}

// followEvery is how often the watcher follows the log when no checkpoint
// is notified.
const followEvery = 100 * time.Millisecond

// mark is a checkpoint notified: the position a projector's transaction
// committed up to, and when the notification came.
type mark struct {
	pos eventstore.Position
	at  time.Time
}

// passed records that a projector's checkpoint (segment membership's when
// membership is set, else the customers projector's) committed up to pos
// at the time at, and settles the events it passed.
func (w *watch) passed(membership bool, pos eventstore.Position, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if membership {
		w.segMarks = append(w.segMarks, mark{pos, at})
	} else {
		w.marks = append(w.marks, mark{pos, at})
	}
	w.settle(membership)
}

// settle marks done every waiting event whose position is known and some
// checkpoint notified has passed, at the time of the first that did: an
// event's position may be learnt after the checkpoint that passed it. The
// caller holds mu.
func (w *watch) settle(membership bool) {
	waiting, when, marks := w.waiting, w.visible, w.marks
	if membership {
		waiting, when, marks = w.segWaiting, w.joined, w.segMarks
	}
	for i := range waiting {
		if !w.known[i] {
			continue
		}
		j := sort.Search(len(marks), func(j int) bool { return !marks[j].pos.Less(w.at[i]) })
		if j < len(marks) {
			when[i] = marks[j].at
			delete(waiting, i)
		}
	}
}

// checkVisible looks at the rows once the figure is taken: every profile
// an event was counted visible on shows the tier of the last such event
// (or a later one), and every member counted in its latency segment is in
// it. Checkpoints that passed rows which do not show the events would be
// a bug of the service, not a latency.
func (b *bench) checkVisible(ctx context.Context, w *watch, to []member) error {
	want := map[profileKey]int{} // the newest event of each profile counted visible
	for i := range to {
		if !w.visible[i].IsZero() {
			want[to[i].key] = i
		}
	}
	tenants, ids := make([]string, 0, len(want)), make([]uuid.UUID, 0, len(want))
	for k := range want {
		tenants, ids = append(tenants, k.tenant), append(ids, k.id)
	}
	rows, err := b.pool.Query(ctx, `SELECT tenant_id, id, membership_tier FROM customers
WHERE (tenant_id, id) IN (SELECT * FROM unnest($1::text[], $2::uuid[]))`, tenants, ids)
	if err != nil {
		return fmt.Errorf("visible: check rows: %w", err)
	}
	bad := 0
	for rows.Next() {
		var k profileKey
		var tier *string
		if err := rows.Scan(&k.tenant, &k.id, &tier); err != nil {
			rows.Close()
			return fmt.Errorf("visible: check rows: %w", err)
		}
		num, ok := "", false
		if tier != nil {
			num, ok = strings.CutPrefix(*tier, latencyTier(b.run))
		}
		if n, err := strconv.Atoi(num); !ok || err != nil || n < want[k] {
			bad++
		}
		delete(want, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("visible: check rows: %w", err)
	}
	if bad += len(want); bad > 0 {
		return fmt.Errorf("visible: %d profiles do not show an event the customers checkpoint passed", bad)
	}
	if !w.segments {
		return nil
	}
	tenants, ids = tenants[:0], ids[:0]
	for i := range to {
		if !w.joined[i].IsZero() {
			tenants, ids = append(tenants, to[i].key.tenant), append(ids, to[i].key.id)
		}
	}
	var in int
	if err := b.pool.QueryRow(ctx, `SELECT count(DISTINCT (tenant_id, customer_id)) FROM segment_members
WHERE segment_id = ANY($1) AND (tenant_id, customer_id) IN (SELECT * FROM unnest($2::text[], $3::uuid[]))`,
		b.latencySegments, tenants, ids).Scan(&in); err != nil {
		return fmt.Errorf("visible: check segment members: %w", err)
	}
	if in != len(ids) {
		return fmt.Errorf("visible: %d members are not in the latency segment the membership checkpoint passed them into", len(ids)-in)
	}
	return nil
}
