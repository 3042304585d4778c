package metrics_test

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/domain/identity"
	"github.com/clubcrm/crm/projections"
	"github.com/clubcrm/crm/readmodels/customers"
	"github.com/clubcrm/crm/readmodels/customers/customerstest"
	"github.com/clubcrm/crm/readmodels/metrics"
)

const tenant = "club-a"

// day0 is "today" when the test starts; the clock moves from there.
var day0 = time.Date(2026, 3, 31, 15, 0, 0, 0, time.UTC)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

type world struct {
	t     *testing.T
	env   *customerstest.Env
	clock *clock
	done  int
	n     int
}

func newWorld(t *testing.T) *world {
	return &world{t: t, env: customerstest.New(t), clock: &clock{now: day0}}
}

func (w *world) ingest(p *customer.Profile, typ, data string, at time.Time) *customer.Profile {
	w.t.Helper()
	if p == nil {
		p = &customer.Profile{ID: uuid.New(), TenantID: tenant}
	}
	v, err := customer.ParseUpstream(typ, json.RawMessage(data))
	require.NoError(w.t, err)
	person := customer.PersonOf(v)
	x := identity.Extract(identity.Raw{SCLMemberID: person.SCLMemberID, TeeTimePlayerID: person.TeeTimePlayerID,
		MessagingContactID: person.MessagingContactID, Email: person.Email}, identity.DefaultSettings())
	d := identity.Decision{Customer: p.ID, MatchedBy: "test", Confidence: 100}
	if !p.Exists() {
		d = identity.Decision{MatchedBy: "new"}
	}
	for _, k := range x.Keys {
		if !p.Holds(k) {
			d.Link = append(d.Link, k)
		}
	}
	w.n++
	id := "up-" + strconv.Itoa(w.n)
	evs, err := p.Ingest(customer.Ingestion{Upstream: customer.Upstream{ID: id, Type: typ, Source: customer.SourceOf(typ), OccurredAt: at},
		Data: json.RawMessage(data), Person: person, Extracted: x, Decision: d})
	require.NoError(w.t, err)
	return w.env.Record(p, evs, customer.SourceOf(typ), id)
}

func (w *world) project(size int) {
	w.t.Helper()
	w.env.Project(0)
	all := w.env.Events()
	pending := all[w.done:]
	w.done = len(all)
	if size < 1 {
		size = max(len(pending), 1)
	}
	p := metrics.Projector{Clock: w.clock.Now}
	tables := projections.Tables{}
	for _, t := range p.Tables() {
		tables[t] = t
	}
	for len(pending) > 0 {
		n := min(size, len(pending))
		err := pgx.BeginFunc(context.Background(), w.env.Pool, func(tx pgx.Tx) error {
			return p.Apply(context.Background(), tx, tables, pending[:n])
		})
		require.NoError(w.t, err)
		pending = pending[n:]
	}
}

func (w *world) get(id uuid.UUID) customers.Customer {
	w.t.Helper()
	c, err := customers.Reader{DB: w.env.Pool}.Current(context.Background(), tenant, id)
	require.NoError(w.t, err)
	return c
}

func (w *world) roll() int {
	w.t.Helper()
	n, err := metrics.Roll(context.Background(), w.env.Pool, metrics.Today(w.clock.Now()), 2)
	require.NoError(w.t, err)
	return n
}

func days(n int) time.Duration { return time.Duration(n) * 24 * time.Hour }

func TestCountsAndRollingWindows(t *testing.T) {
	w := newWorld(t)
	p := w.ingest(nil, "member.created", `{"memberId": 1, "email": "a@b.com"}`, day0.Add(-days(40)))
	p = w.ingest(p, "teetime.booked", `{"playerId": "p-1", "bookingId": "b-1"}`, day0.Add(-days(20)))
	p = w.ingest(p, "teetime.completed", `{"playerId": "p-1", "bookingId": "b-1"}`, day0.Add(-days(10)))
	// The club's doing: not counted.
	p = w.ingest(p, "message.sent", `{"contactId": "c", "email": "a@b.com"}`, day0.Add(-days(1)))
	p = w.ingest(p, "teetime.booked", `{"playerId": "p-1", "bookingId": "b-2"}`, day0.Add(-days(1)))
	quiet := w.ingest(nil, "message.sent", `{"contactId": "q", "email": "q@b.com"}`, day0)
	w.project(1)

	c := w.get(p.ID)
	require.NotNil(t, c.LastActivityAt)
	assert.Equal(t, day0.Add(-days(1)), *c.LastActivityAt)
	assert.Equal(t, 3, c.ActivityCount30d, "booked, played and booked again; the joining was 40 days ago")
	assert.Equal(t, 2, c.BookingCount30d)
	q := w.get(quiet.ID)
	assert.Nil(t, q.LastActivityAt, "messages the club sent are not the person's activity")
	assert.Zero(t, q.ActivityCount30d)

	// A late event: happened 45 days ago, arrived now. It moves nothing in
	// the window, nor lastActivityAt backwards.
	p = w.ingest(p, "email.opened", `{"contactId": "c"}`, day0.Add(-days(45)))
	w.project(0)
	c = w.get(p.ID)
	assert.Equal(t, 3, c.ActivityCount30d)
	assert.Equal(t, day0.Add(-days(1)), *c.LastActivityAt)

	// Days pass with no events: the job moves the windows.
	assert.Zero(t, w.roll(), "nothing is due the same day")
	w.clock.set(day0.Add(days(11)))
	assert.Equal(t, 1, w.roll())
	c = w.get(p.ID)
	assert.Equal(t, 2, c.ActivityCount30d, "the booking of day -20 left the window (day -19 is its first day)")
	assert.Equal(t, 1, c.BookingCount30d)
	assert.Zero(t, w.roll(), "moved once a day")
	w.clock.set(day0.Add(days(28)))
	w.roll()
	c = w.get(p.ID)
	assert.Equal(t, 1, c.ActivityCount30d, "day -1 is the first day of the 30 ending day 28")
	w.clock.set(day0.Add(days(29)))
	w.roll()
	c = w.get(p.ID)
	assert.Zero(t, c.ActivityCount30d)
	assert.Zero(t, c.BookingCount30d)
	assert.Equal(t, day0.Add(-days(1)), *c.LastActivityAt, "lastActivityAt does not expire")
	assert.Zero(t, w.roll(), "empty windows are not due any more")

	// A new event after a quiet spell counts again at once.
	p = w.ingest(p, "teetime.booked", `{"playerId": "p-1", "bookingId": "b-3"}`, day0.Add(days(30)))
	w.project(0)
	c = w.get(p.ID)
	assert.Equal(t, 1, c.ActivityCount30d)
	assert.Equal(t, 1, c.BookingCount30d)
}

func TestLifetimeValue(t *testing.T) {
	w := newWorld(t)
	pay := func(p *customer.Profile, id string, cents int64, cur string) *customer.Profile {
		return w.ingest(p, "payment.received", `{"memberId": 1, "paymentId": "`+id+`", "amountCents": `+strconv.FormatInt(cents, 10)+`, "currency": "`+cur+`"}`, day0)
	}
	p := w.ingest(nil, "member.created", `{"memberId": 1, "email": "a@b.com"}`, day0)
	p = pay(p, "1", 125000, "ZAR")
	p = pay(p, "2", 5000, "zar")
	p = pay(p, "3", 9900, "GBP")
	p = w.ingest(p, "payment.failed", `{"memberId": 1, "paymentId": "4", "amountCents": 100000, "currency": "ZAR"}`, day0)
	visitor := w.ingest(nil, "member.created", `{"memberId": 2, "email": "v@b.com"}`, day0)
	visitor = w.ingest(visitor, "payment.received", `{"memberId": 2, "paymentId": "5", "amountCents": 2000, "currency": "GBP"}`, day0)
	none := w.ingest(nil, "member.created", `{"memberId": 3, "email": "n@b.com"}`, day0)
	w.project(2)

	c := w.get(p.ID)
	require.NotNil(t, c.LifetimeValue)
	assert.EqualValues(t, 130000, *c.LifetimeValue, "received payments in the main currency; failed ones count for nothing")
	assert.Equal(t, "ZAR", *c.LifetimeValueCurrency, "three ZAR payments, two GBP")
	v := w.get(visitor.ID)
	assert.EqualValues(t, 0, *v.LifetimeValue, "paid only in another currency")
	assert.EqualValues(t, 0, *w.get(none.ID).LifetimeValue)

	var totals string
	require.NoError(t, w.env.Pool.QueryRow(context.Background(), `SELECT lifetime_cents::text FROM customer_metrics WHERE customer_id = $1`, p.ID).Scan(&totals))
	assert.JSONEq(t, `{"ZAR": 130000, "GBP": 9900}`, totals)

	// The read model and the computed fields of one profile agree.
	x, err := customers.Reader{DB: w.env.Pool}.Computed(context.Background(), tenant, p.ID)
	require.NoError(t, err)
	assert.Equal(t, c.LifetimeValue, x.LifetimeValue)
	assert.Equal(t, c.LastActivityAt, x.LastActivityAt)
	missing, err := customers.Reader{DB: w.env.Pool}.Computed(context.Background(), tenant, uuid.New())
	require.NoError(t, err)
	assert.Nil(t, missing.LifetimeValue)
}

func TestMergeAddsUp(t *testing.T) {
	w := newWorld(t)
	a := w.ingest(nil, "member.created", `{"memberId": 1, "email": "a@b.com"}`, day0.Add(-days(3)))
	a = w.ingest(a, "payment.received", `{"memberId": 1, "paymentId": "1", "amountCents": 1000, "currency": "ZAR"}`, day0.Add(-days(2)))
	b := w.ingest(nil, "player.created", `{"playerId": "p-2", "email": "b@b.com"}`, day0.Add(-days(2)))
	b = w.ingest(b, "teetime.booked", `{"playerId": "p-2", "bookingId": "x"}`, day0.Add(-days(1)))
	b = w.ingest(b, "payment.received", `{"memberId": 9, "paymentId": "2", "amountCents": 500, "currency": "ZAR"}`, day0.Add(-days(2)))
	w.project(0)
	a, b = w.env.Merge(a, b, "staff-1")
	w.project(0)

	c := w.get(a.ID)
	assert.Equal(t, 5, c.ActivityCount30d)
	assert.Equal(t, 1, c.BookingCount30d)
	assert.EqualValues(t, 1500, *c.LifetimeValue)
	assert.Equal(t, day0.Add(-days(1)), *c.LastActivityAt)
	var rows int
	require.NoError(t, w.env.Pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM customer_metrics WHERE customer_id = $1) +
		(SELECT count(*) FROM customer_activity_days WHERE customer_id = $1)`, b.ID).Scan(&rows))
	assert.Zero(t, rows, "the absorbed profile's metrics moved to the survivor")

	// As commands.Merge appends: the source closes first, and here each
	// event is a batch of its own.
	x := w.ingest(nil, "member.created", `{"memberId": 5, "email": "x@b.com"}`, day0)
	y := w.ingest(nil, "member.created", `{"memberId": 6, "email": "y@b.com"}`, day0.Add(-days(5)))
	y = w.ingest(y, "payment.received", `{"memberId": 6, "paymentId": "9", "amountCents": 700, "currency": "ZAR"}`, day0.Add(-days(4)))
	w.project(0)
	kept, closed, err := x.Merge(y, "staff-1", "cmd:m")
	require.NoError(t, err)
	w.env.Record(y, closed, "staff-1", "cmd:m")
	x = w.env.Record(x, kept, "staff-1", "cmd:m")
	w.project(1)
	c = w.get(x.ID)
	assert.Equal(t, 3, c.ActivityCount30d)
	assert.EqualValues(t, 700, *c.LifetimeValue)
	require.NoError(t, w.env.Pool.QueryRow(context.Background(), `SELECT count(*) FROM customer_metrics WHERE customer_id = $1`, y.ID).Scan(&rows))
	assert.Zero(t, rows)
}

func TestJobLeadership(t *testing.T) {
	w := newWorld(t)
	p := w.ingest(nil, "teetime.booked", `{"playerId": "p-1", "bookingId": "b-1"}`, day0)
	w.project(0)
	w.clock.set(day0.Add(days(31)))
	ctx := context.Background()

	// Another process holds the leader's lock: this one does nothing.
	other, err := w.env.Pool.Acquire(ctx)
	require.NoError(t, err)
	_, err = other.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(metrics.LockKey))
	require.NoError(t, err)
	job := &metrics.Job{Pool: w.env.Pool, Clock: w.clock.Now}
	moved, led, err := job.RunOnce(ctx)
	require.NoError(t, err)
	assert.False(t, led)
	assert.Zero(t, moved)
	assert.Equal(t, 1, w.get(p.ID).ActivityCount30d)

	_, err = other.Exec(ctx, `SELECT pg_advisory_unlock($1)`, int64(metrics.LockKey))
	require.NoError(t, err)
	other.Release()
	moved, led, err = job.RunOnce(ctx)
	require.NoError(t, err)
	assert.True(t, led)
	assert.Equal(t, 1, moved)
	assert.Zero(t, w.get(p.ID).ActivityCount30d)

	// Run looks at once, then every Interval, and stops with its context.
	w.clock.set(day0.Add(days(60)))
	w.ingest(p, "teetime.booked", `{"playerId": "p-1", "bookingId": "b-2"}`, day0.Add(days(59)))
	w.project(0)
	w.clock.set(day0.Add(days(90)))
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- (&metrics.Job{Pool: w.env.Pool, Clock: w.clock.Now, Interval: 10 * time.Millisecond}).Run(rctx)
	}()
	require.Eventually(t, func() bool { return w.get(p.ID).ActivityCount30d == 0 }, 10*time.Second, 10*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
}

// Projected one event a batch or all at once, the metrics agree.
func TestBatchingAgrees(t *testing.T) {
	w := newWorld(t)
	a := w.ingest(nil, "member.created", `{"memberId": 1, "email": "a@b.com"}`, day0.Add(-days(3)))
	for i := range 5 {
		a = w.ingest(a, "teetime.booked", `{"playerId": "p", "bookingId": "b`+strconv.Itoa(i)+`"}`, day0.Add(-days(i)))
		a = w.ingest(a, "payment.received", `{"memberId": 1, "paymentId": "`+strconv.Itoa(i)+`", "amountCents": 100, "currency": "USD"}`, day0.Add(-days(i)))
	}
	b := w.ingest(nil, "player.created", `{"playerId": "z", "email": "z@b.com"}`, day0)
	w.env.Merge(a, b, "s")
	w.project(1)
	want := dumpMetrics(t, w)
	_, err := w.env.Pool.Exec(context.Background(), `TRUNCATE customer_metrics, customer_activity_days, tenant_currencies`)
	require.NoError(t, err)
	w.done = 0
	w.project(0)
	assert.Equal(t, want, dumpMetrics(t, w))
}

func dumpMetrics(t *testing.T, w *world) string {
	var s string
	err := w.env.Pool.QueryRow(context.Background(), `SELECT jsonb_build_object(
		'm', (SELECT jsonb_agg(to_jsonb(m) - 'updated_at' ORDER BY m.customer_id) FROM customer_metrics m),
		'd', (SELECT jsonb_agg(to_jsonb(d) ORDER BY d.customer_id, d.day) FROM customer_activity_days d),
		'c', (SELECT jsonb_agg(to_jsonb(c) ORDER BY c.currency) FROM tenant_currencies c))::text`).Scan(&s)
	require.NoError(t, err)
	return s
}

// TestQuietEventsLeaveTheRowAlone: an event that counts for nothing here (a
// message the club sent) leaves a row whose windows
// are today's as it is, not rewritten with the same values; one that
// counts, or the first of a new day, writes it.
func TestQuietEventsLeaveTheRowAlone(t *testing.T) {
	w := newWorld(t)
	p := w.ingest(nil, "member.created", `{"memberId": 1, "email": "a@b.com"}`, day0.Add(-days(2)))
	p = w.ingest(p, "teetime.booked", `{"playerId": "p-1", "bookingId": "b-1"}`, day0.Add(-days(1)))
	w.project(0)
	written := func() string {
		var ctid string
		require.NoError(t, w.env.Pool.QueryRow(context.Background(),
			`SELECT ctid::text FROM customer_metrics WHERE tenant_id = $1 AND customer_id = $2`, tenant, p.ID).Scan(&ctid))
		return ctid
	}
	before := written()

	p = w.ingest(p, "message.sent", `{"contactId": "c", "email": "a@b.com"}`, day0)
	p = w.ingest(p, "message.sent", `{"contactId": "c", "email": "a@b.com"}`, day0)
	w.project(0)
	assert.Equal(t, before, written(), "nothing moved: the row is not rewritten")

	p = w.ingest(p, "teetime.booked", `{"playerId": "p-1", "bookingId": "b-2"}`, day0)
	w.project(0)
	moved := written()
	assert.NotEqual(t, before, moved, "a booking counts")
	assert.Equal(t, 3, w.get(p.ID).ActivityCount30d, "joined, booked, booked")

	// Days later, a quiet event still brings the windows up to date.
	w.clock.set(day0.Add(days(29)))
	p = w.ingest(p, "message.sent", `{"contactId": "c", "email": "a@b.com"}`, day0.Add(days(29)))
	w.project(0)
	assert.NotEqual(t, moved, written(), "the windows move to the new day")
	assert.Equal(t, 1, w.get(p.ID).ActivityCount30d, "only today's booking is left in the window")
}
