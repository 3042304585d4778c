package scores_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/adapters/outbox"
	"github.com/clubcrm/crm/commands"
	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/domain/scoring"
	"github.com/clubcrm/crm/eventstore"
	"github.com/clubcrm/crm/projections"
	"github.com/clubcrm/crm/readmodels/customers/customerstest"
	"github.com/clubcrm/crm/readmodels/scores"
)

const tenant = "club-a"

// day0 is "today" when a test starts; the clock moves from there.
var day0 = time.Date(2026, 3, 31, 15, 0, 0, 0, time.UTC)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

func ago(n int) time.Time { return day0.Add(-time.Duration(n) * 24 * time.Hour) }

type world struct {
	t      *testing.T
	env    *customerstest.Env
	clock  *clock
	models *commands.ScoringModels
	done   int
}

func newWorld(t *testing.T) *world {
	env := customerstest.New(t)
	return &world{t: t, env: env, clock: &clock{now: day0}, models: &commands.ScoringModels{Store: env.Store}}
}

func (w *world) projector() scores.Projector {
	return scores.Projector{Models: w.models, Clock: w.clock.Now}
}

// project applies every customer event since the last call, in batches of
// size (all at once when size < 1).
func (w *world) project(size int) {
	w.t.Helper()
	w.env.Project(0)
	all := w.env.Events()
	pending := all[w.done:]
	w.done = len(all)
	if size < 1 {
		size = max(len(pending), 1)
	}
	p := w.projector()
	tables := projections.Tables{scores.Table: scores.Table, scores.DueTable: scores.DueTable}
	for len(pending) > 0 {
		n := min(size, len(pending))
		require.NoError(w.t, pgx.BeginFunc(context.Background(), w.env.Pool, func(tx pgx.Tx) error {
			return p.Apply(context.Background(), tx, tables, pending[:n])
		}))
		pending = pending[n:]
	}
}

func (w *world) explain(id uuid.UUID) scores.Explanation {
	w.t.Helper()
	x, err := scores.Reader{DB: w.env.Pool, Models: w.models}.Explain(context.Background(), tenant, id)
	require.NoError(w.t, err)
	return x
}

func (w *world) job() *scores.Job {
	return &scores.Job{Pool: w.env.Pool, Models: w.models, Clock: w.clock.Now, BatchSize: 2,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func (w *world) alerter() *scores.Alerter {
	return &scores.Alerter{Pool: w.env.Pool, Store: w.env.Store, Models: w.models, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func component(s scoring.Score, name string) scoring.Component {
	for _, c := range s.Components {
		if c.Name == name {
			return c
		}
	}
	return scoring.Component{}
}

// golfer plays and pays; drifter used to, and has gone quiet.
func (w *world) population() (golfer, drifter *customer.Profile) {
	e := w.env
	golfer = e.IngestAt(tenant, nil, "member.created", `{"memberId": 1, "email": "anna@example.com", "membershipTier": "Gold", "membershipStatus": "ACTIVE"}`, ago(300))
	golfer = e.IngestAt(tenant, golfer, "teetime.booked", `{"playerId": "p-1", "bookingId": "b-1"}`, ago(2))
	golfer = e.IngestAt(tenant, golfer, "payment.received", `{"memberId": 1, "paymentId": "pay-1", "amountCents": 250000, "currency": "ZAR"}`, ago(30))
	golfer = e.IngestAt(tenant, golfer, "message.sent", `{"contactId": "c-1", "messageId": "m-1", "channel": "EMAIL"}`, ago(21))
	golfer = e.IngestAt(tenant, golfer, "email.opened", `{"contactId": "c-1", "messageId": "m-1"}`, ago(20))

	drifter = e.IngestAt(tenant, nil, "member.created", `{"memberId": 2, "email": "bob@example.com", "membershipTier": "Gold", "membershipStatus": "ACTIVE"}`, ago(390))
	for i, d := range []int{40, 50, 60, 80, 110, 130, 150, 170, 190, 200} {
		drifter = e.IngestAt(tenant, drifter, "teetime.completed", fmt.Sprintf(`{"playerId": "p-2", "bookingId": "b2-%d"}`, i), ago(d))
	}
	for i, d := range []int{70, 90, 100, 120} {
		drifter = e.IngestAt(tenant, drifter, "email.opened", fmt.Sprintf(`{"contactId": "c-2", "messageId": "m2-%d"}`, i), ago(d))
	}
	drifter = e.IngestAt(tenant, drifter, "tier.changed", `{"memberId": 2, "fromTier": "Gold", "toTier": "Silver"}`, ago(45))
	drifter = e.IngestAt(tenant, drifter, "payment.failed", `{"memberId": 2, "paymentId": "pay-2", "amountCents": 90000, "reason": "card expired"}`, ago(12))
	drifter = e.IngestAt(tenant, drifter, "payment.failed", `{"memberId": 2, "paymentId": "pay-3", "amountCents": 90000, "reason": "card expired"}`, ago(11))
	evs, err := drifter.AddNote(customer.NoteAdded{NoteID: uuid.New(), Author: "staff-1", Body: "Unhappy about the state of the greens", Complaint: true})
	require.NoError(w.t, err)
	drifter = e.Record(drifter, evs, "staff-1", "note-1")
	return golfer, drifter
}

func TestScoresFromEvents(t *testing.T) {
	w := newWorld(t)
	golfer, drifter := w.population()
	w.project(3)

	g := w.explain(golfer.ID)
	assert.Equal(t, 0, g.ModelVersion)
	assert.Equal(t, "2026-03-31", g.ScoredOn)
	assert.Equal(t, 2, component(g.Engagement, "recency").Input["daysSinceLastActivity"])
	assert.Equal(t, int64(250000), component(g.Engagement, "monetary").Input["spendCents"])
	assert.Equal(t, []string{"GOLF", "EMAIL"}, component(g.Engagement, "breadth").Input["channels"])
	assert.Equal(t, 1.0, component(g.Engagement, "depth").Input["openRate"])
	assert.Equal(t, g.EngagementScore, g.Engagement.Value, "the explanation adds up to the stored score")
	assert.Greater(t, g.EngagementScore, 60.0)
	assert.Equal(t, 0.0, g.ChurnRiskScore)

	d := w.explain(drifter.ID)
	c := d.ChurnRisk
	assert.Equal(t, 2, component(c, "paymentIssues").Input["failedPayments"])
	assert.Equal(t, 100.0, component(c, "paymentIssues").Normalized)
	assert.Equal(t, 1, component(c, "complaints").Input["complaints"])
	assert.Equal(t, map[string]any{"from": "Gold", "to": "Silver", "on": "2026-02-14"}, component(c, "tierDowngrade").Input["downgrade"])
	assert.Equal(t, 0, component(c, "engagementDrop").Input["recentOpens"])
	assert.Equal(t, 100.0, component(c, "engagementDrop").Normalized)
	assert.Equal(t, d.ChurnRiskScore, c.Value)
	assert.Greater(t, d.ChurnRiskScore, 80.0)

	// One batch or one event at a time: the same scores.
	w2 := newWorld(t)
	g2, d2 := w2.population()
	w2.project(1)
	assert.Equal(t, g.EngagementScore, w2.explain(g2.ID).EngagementScore)
	assert.Equal(t, d.ChurnRiskScore, w2.explain(d2.ID).ChurnRiskScore)
}

func TestChurnAlertOncePerCrossing(t *testing.T) {
	w := newWorld(t)
	_, drifter := w.population()
	w.project(0)
	ctx := context.Background()

	n, err := w.alerter().RunOnce(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, n, "both profiles were due")
	raised := func() []eventstore.Event {
		evs, err := w.env.Store.ReadStream(ctx, eventstore.StreamName(customer.Category, drifter.ID.String()), 1, 1000)
		require.NoError(t, err)
		var out []eventstore.Event
		for _, e := range evs {
			if e.Type == customer.TypeChurnRiskRaised {
				out = append(out, e)
			}
		}
		return out
	}
	require.Len(t, raised(), 1)
	env, err := outbox.Translate(raised()[0])
	require.NoError(t, err)
	assert.Equal(t, outbox.ChurnRiskHigh, env.Type)
	assert.Contains(t, string(env.Data), `"threshold":80`)

	// Projected again and rescored the next day: still high, no second event.
	w.project(0)
	w.clock.set(day0.Add(24 * time.Hour))
	_, _, err = w.job().RunOnce(ctx)
	require.NoError(t, err)
	for {
		n, err := w.alerter().RunOnce(ctx)
		require.NoError(t, err)
		if n == 0 {
			break
		}
	}
	assert.Len(t, raised(), 1)
	assert.True(t, w.explain(drifter.ID).ChurnRiskHigh)

	// A retried decision (the state lost after the append) appends nothing new.
	_, err = w.env.Pool.Exec(ctx, `DELETE FROM score_alerts; INSERT INTO score_alert_due SELECT tenant_id, customer_id FROM customer_scores ON CONFLICT DO NOTHING`)
	require.NoError(t, err)
	_, err = w.alerter().RunOnce(ctx)
	require.NoError(t, err)
	assert.Len(t, raised(), 1)
}

func TestDecayModelChangeAndRebuild(t *testing.T) {
	w := newWorld(t)
	golfer, _ := w.population()
	w.project(0)
	ctx := context.Background()
	before := w.explain(golfer.ID)
	due := func() int {
		var n int
		require.NoError(t, w.env.Pool.QueryRow(ctx, `SELECT count(*) FROM score_alert_due WHERE customer_id = $1`, golfer.ID).Scan(&n))
		return n
	}
	_, err := w.alerter().RunOnce(ctx)
	require.NoError(t, err)
	require.Zero(t, due(), "the alerter cleared the projector's mark")

	// Thirty days with no events: recency decays.
	w.clock.set(day0.Add(30 * 24 * time.Hour))
	n, led, err := w.job().RunOnce(ctx)
	require.NoError(t, err)
	require.True(t, led)
	assert.Equal(t, 2, n)
	assert.Equal(t, 1, due(), "the job marked the changed scores")
	after := w.explain(golfer.ID)
	assert.Equal(t, "2026-04-30", after.ScoredOn)
	assert.Equal(t, 32, component(after.Engagement, "recency").Input["daysSinceLastActivity"])
	assert.Less(t, after.EngagementScore, before.EngagementScore)
	n, _, err = w.job().RunOnce(ctx)
	require.NoError(t, err)
	assert.Equal(t, 0, n, "nothing is due twice on one day")

	// A new model: the job rescores the tenant under version 1.
	m := scoring.Default()
	m.Engagement.Weights = scoring.EngagementWeights{Recency: 0.5, Frequency: 0.2, Monetary: 0.1, Breadth: 0.1, Depth: 0.1}
	v, err := w.models.Put(ctx, tenant, "analyst", "cmd-1", m)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), v.Version)
	n, _, err = w.job().RunOnce(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	x := w.explain(golfer.ID)
	assert.Equal(t, 1, x.ModelVersion)
	assert.Equal(t, 0.5, component(x.Engagement, "recency").Weight)
	want := scoring.Compute(m, decoded(t, w, golfer.ID), scoring.DayOf(w.clock.Now())).Engagement.Value
	assert.Equal(t, want, x.EngagementScore)

	// The rebuild under the new model comes out identical to the live rows.
	live := dump(t, w)
	rt, err := projections.New(w.env.Pool, w.env.Store, []projections.Projector{w.projector()},
		projections.WithRegisterer(prometheus.NewRegistry()), projections.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), projections.WithProgress(io.Discard))
	require.NoError(t, err)
	defer rt.Close()
	waitVisible(t, w)
	require.NoError(t, rt.Rebuild(ctx, scores.Name))
	assert.Equal(t, live, dump(t, w))

	// The day's snapshot is the trend of the analytics.
	a, err := scores.Reader{DB: w.env.Pool, Models: w.models}.Analytics(ctx, tenant, 3650)
	require.NoError(t, err)
	assert.Equal(t, 2, a.Profiles)
	total := 0
	for _, b := range a.Engagement.Buckets {
		total += b.Count
	}
	assert.Equal(t, 2, total)
	require.Len(t, a.ByLifecycleStage, 1)
	assert.Equal(t, "MEMBER", a.ByLifecycleStage[0].Key)
	require.NotEmpty(t, a.ByTier)
	require.Len(t, a.Trend, 1, "one snapshot: the job took it on its first run of 2026-04-30")
	assert.Equal(t, "2026-04-30", a.Trend[0].Day)
	assert.Equal(t, 2, a.Trend[0].Profiles)
}

func TestMergeMovesInputs(t *testing.T) {
	w := newWorld(t)
	golfer, drifter := w.population()
	w.project(0)
	survivor, _ := w.env.Merge(golfer, drifter, "admin")
	w.project(0)
	x := w.explain(drifter.ID)
	assert.Equal(t, survivor.ID, x.CustomerID)
	assert.Equal(t, 2, component(x.ChurnRisk, "paymentIssues").Input["failedPayments"])
	var n int
	require.NoError(t, w.env.Pool.QueryRow(context.Background(), `SELECT count(*) FROM customer_scores`).Scan(&n))
	assert.Equal(t, 1, n, "the absorbed profile's row is gone")
	require.NoError(t, w.env.Pool.QueryRow(context.Background(), `SELECT count(*) FROM score_alert_due WHERE customer_id <> $1`, survivor.ID).Scan(&n))
	assert.Zero(t, n, "and so is its alert mark")
}

func TestOtherTenantsScoresAreNotFound(t *testing.T) {
	w := newWorld(t)
	golfer, _ := w.population()
	w.project(0)
	_, err := scores.Reader{DB: w.env.Pool, Models: w.models}.Explain(context.Background(), "club-b", golfer.ID)
	require.Error(t, err)
}

func decoded(t *testing.T, w *world, id uuid.UUID) scoring.Inputs {
	var raw []byte
	require.NoError(t, w.env.Pool.QueryRow(context.Background(), `SELECT inputs FROM customer_scores WHERE customer_id = $1`, id).Scan(&raw))
	in, err := scoring.Decode(raw)
	require.NoError(t, err)
	return in
}

func dump(t *testing.T, w *world) []string {
	rows, err := w.env.Pool.Query(context.Background(), `SELECT format('%s %s %s %s %s %s %s', tenant_id, customer_id, engagement_score, churn_risk_score,
		model_version, scored_on, encode(inputs, 'hex')) FROM customer_scores ORDER BY tenant_id, customer_id`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

// waitVisible waits until the runtime can see the whole log (other tests'
// open transactions hold it back).
func waitVisible(t *testing.T, w *world) {
	all := w.env.Events()
	last := all[len(all)-1].Position
	deadline := time.Now().Add(15 * time.Second)
	for {
		head, err := w.env.Store.Head(context.Background())
		require.NoError(t, err)
		if !head.Less(last) {
			return
		}
		if time.Now().After(deadline) {
			t.Skip("the server kept a transaction open for 15s: the log is not visible to the runtime")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// gate holds the alerter inside its transaction, at its append, until the
// test lets it go on.
type gate struct {
	eventstore.Store
	entered, release chan struct{}
	once             sync.Once
}

func (g *gate) AppendMulti(ctx context.Context, appends []eventstore.Append) ([]eventstore.AppendResult, error) {
	g.once.Do(func() {
		close(g.entered)
		<-g.release
	})
	return g.Store.AppendMulti(ctx, appends)
}

// TestRescoringWhileAlerting: scores that change while the alerter decides
// on the old ones are marked again once it has cleared its marks, so the
// change is decided on next time instead of being lost with the mark.
func TestRescoringWhileAlerting(t *testing.T) {
	w := newWorld(t)
	_, drifter := w.population()
	w.project(0)
	ctx := context.Background()
	before := w.explain(drifter.ID)
	w.env.IngestAt(tenant, drifter, "teetime.booked", `{"playerId": "p-2", "bookingId": "b2-new"}`, ago(0))

	g := &gate{Store: w.env.Store, entered: make(chan struct{}), release: make(chan struct{})}
	a := w.alerter()
	a.Store = g
	alerted := make(chan error, 1)
	go func() {
		_, err := a.RunOnce(ctx)
		alerted <- err
	}()
	<-g.entered // the alerter holds both profiles' marks and scores rows
	var once sync.Once
	release := func() { once.Do(func() { close(g.release) }) }
	defer release()

	projected := make(chan struct{})
	go func() {
		defer close(projected)
		w.project(0)
	}()
	require.Eventually(t, func() bool {
		var waiting int
		require.NoError(t, w.env.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting))
		return waiting > 0
	}, 10*time.Second, 10*time.Millisecond, "the projector waits for the scores row the alerter holds")
	release()
	require.NoError(t, <-alerted)
	<-projected

	after := w.explain(drifter.ID)
	require.NotEqual(t, before.EngagementScore, after.EngagementScore, "the booking changed the scores")
	var marked []uuid.UUID
	rows, err := w.env.Pool.Query(ctx, `SELECT customer_id FROM score_alert_due`)
	require.NoError(t, err)
	marked, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	require.NoError(t, err)
	assert.Equal(t, []uuid.UUID{drifter.ID}, marked, "marked again after the alerter cleared it")
	n, err := w.alerter().RunOnce(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
}
