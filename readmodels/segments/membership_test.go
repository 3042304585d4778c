package segments_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/adapters/redistest"
	"github.com/clubcrm/crm/commands"
	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/domain/segment"
	"github.com/clubcrm/crm/eventstore"
	"github.com/clubcrm/crm/projections"
	"github.com/clubcrm/crm/readmodels/activities"
	"github.com/clubcrm/crm/readmodels/customers"
	"github.com/clubcrm/crm/readmodels/customers/customerstest"
	"github.com/clubcrm/crm/readmodels/metrics"
	"github.com/clubcrm/crm/readmodels/scores"
	"github.com/clubcrm/crm/readmodels/segments"
)

// world is a database with the event store, the segment commands and
// every projector membership depends on, applied by hand in the order the
// runtime's Follower wait guarantees (the read models first, membership
// last).
type world struct {
	t    *testing.T
	env  *customerstest.Env
	segs *commands.Segments
	now  time.Time
	cmds int
}

func newWorld(t *testing.T) *world {
	t.Helper()
	env := customerstest.New(t)
	return &world{t: t, env: env, segs: &commands.Segments{Store: env.Store}, now: time.Now().UTC()}
}

func (w *world) clock() time.Time { return w.now }

func (w *world) projectors() []projections.Projector {
	return []projections.Projector{
		customers.Projector{}, activities.Projector{}, metrics.Projector{Clock: w.clock}, scores.Projector{Clock: w.clock},
		segments.Projector{}, segments.MembershipProjector{Clock: w.clock},
	}
}

// project applies every event since the last call with every projector.
func (w *world) project() {
	w.t.Helper()
	w.env.Apply(w.projectors()...)
}

func (w *world) actor(tenant string) commands.Actor {
	w.cmds++
	return commands.Actor{Tenant: tenant, Subject: "admin-1", CommandID: "cmd:" + uuid.NewString()}
}

func (w *world) create(tenant string, d segment.Definition) uuid.UUID {
	w.t.Helper()
	id := uuid.New()
	_, err := w.segs.Create(context.Background(), w.actor(tenant), id, d)
	require.NoError(w.t, err)
	return id
}

func (w *world) members(tenant string, id uuid.UUID) []uuid.UUID {
	w.t.Helper()
	rows, err := w.env.Pool.Query(context.Background(), `SELECT customer_id FROM segment_members WHERE tenant_id = $1 AND segment_id = $2 ORDER BY customer_id`, tenant, id)
	require.NoError(w.t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	require.NoError(w.t, err)
	if ids == nil {
		ids = []uuid.UUID{}
	}
	return ids
}

type sent struct {
	Topic string
	Type  string
	Data  json.RawMessage
}

// outbox answers the outbox rows written since the last call.
func (w *world) outbox(after *int64) []sent {
	w.t.Helper()
	rows, err := w.env.Pool.Query(context.Background(), `SELECT id, topic, type, payload FROM segment_outbox WHERE id > $1 ORDER BY id`, *after)
	require.NoError(w.t, err)
	defer rows.Close()
	var out []sent
	for rows.Next() {
		var (
			s   sent
			id  int64
			env commands.Envelope
			raw []byte
		)
		require.NoError(w.t, rows.Scan(&id, &s.Topic, &s.Type, &raw))
		require.NoError(w.t, json.Unmarshal(raw, &env))
		s.Data = env.Data
		*after = id
		out = append(out, s)
	}
	require.NoError(w.t, rows.Err())
	return out
}

func ids(ps ...*customer.Profile) []uuid.UUID {
	out := make([]uuid.UUID, len(ps))
	for i, p := range ps {
		out[i] = p.ID
	}
	slices.SortFunc(out, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	return out
}

func raw(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

func gold() segment.Definition {
	return segment.Definition{Name: "Gold members", Type: segment.Dynamic, Combinator: "AND",
		Rules: []segment.Rule{{Field: "membershipTier", Operator: segment.Eq, Value: raw("Gold")}}}
}

func changed(t *testing.T, s sent) segments.MembershipChanged {
	t.Helper()
	require.Equal(t, segments.TypeMembershipChanged, s.Type)
	require.Equal(t, segments.EventsTopic, s.Topic)
	var m segments.MembershipChanged
	require.NoError(t, json.Unmarshal(s.Data, &m))
	return m
}

func TestMembershipFollowsEvents(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	a := w.env.Register("club-a",
		`{"memberId": 1, "email": "ann@mail.com", "firstName": "Ann", "membershipTier": "Gold"}`,
		`{"memberId": 2, "email": "ben@mail.com", "firstName": "Ben", "membershipTier": "Silver"}`,
		`{"memberId": 3, "email": "cat@mail.com", "firstName": "Cat", "membershipTier": "Gold"}`)
	ann, ben, cat := a[0], a[1], a[2]
	other := w.env.Register("club-b", `{"memberId": 1, "email": "ann@mail.com", "membershipTier": "Gold"}`)[0]
	ann = w.env.Ingest("club-a", ann, "contactPreference.updated", `{"contactId": "c-ann", "email": "ann@mail.com", "emailOptIn": true}`)
	ben = w.env.Ingest("club-a", ben, "contactPreference.updated", `{"contactId": "c-ben", "email": "ben@mail.com", "emailOptIn": true}`)
	w.project()

	var seen int64
	id := w.create("club-a", gold())
	w.project()
	assert.Equal(t, ids(ann, cat), w.members("club-a", id), "a new segment is computed whole")
	out := w.outbox(&seen)
	require.Len(t, out, 1)
	m := changed(t, out[0])
	assert.Equal(t, segments.MembershipChanged{SegmentID: id, SegmentVersion: 1, Sequence: 1, Part: 1, Parts: 1,
		Added: ids(ann, cat), Removed: []uuid.UUID{}, Total: 2, Reason: segments.ReasonRefresh}, m)
	assert.NotContains(t, w.members("club-a", id), other.ID, "another tenant's profile is never a member")

	r := &segments.Refresher{Pool: w.env.Pool, Clock: w.clock}
	sync, err := r.Sync(ctx, "club-a", id)
	require.NoError(t, err)
	assert.Equal(t, int64(2), sync.Members)
	assert.Equal(t, int64(1), sync.Contacts)
	assert.Equal(t, int64(1), sync.WithoutContact, "Cat has no Messaging contact: counted, not sent")
	assert.Equal(t, int64(1), sync.Sequence)
	out = w.outbox(&seen)
	require.Len(t, out, 1)
	assert.Equal(t, segments.MessagingTopic, out[0].Topic)
	var snap segments.Snapshot
	require.NoError(t, json.Unmarshal(out[0].Data, &snap))
	assert.Equal(t, segments.Snapshot{SegmentID: id, SnapshotID: sync.SnapshotID, Sequence: 1, Part: 1, Parts: 1,
		ContactIDs: []string{"c-ann"}, Contacts: 1, WithoutContact: 1}, snap)

	// Ben moves to Gold: he enters within the batch that carried the event,
	// and Messaging gets the diff with the next sequence.
	ben = w.env.Ingest("club-a", ben, "tier.changed", `{"memberId": 2, "fromTier": "Silver", "toTier": "Gold"}`)
	w.project()
	assert.Equal(t, ids(ann, ben, cat), w.members("club-a", id))
	out = w.outbox(&seen)
	require.Len(t, out, 2)
	m = changed(t, out[0])
	assert.Equal(t, int64(2), m.Sequence)
	assert.Equal(t, []uuid.UUID{ben.ID}, m.Added)
	assert.Equal(t, int64(3), m.Total)
	assert.Equal(t, segments.ReasonIncremental, m.Reason)
	var diff segments.Diff
	require.Equal(t, segments.TypeDiff, out[1].Type)
	require.NoError(t, json.Unmarshal(out[1].Data, &diff))
	assert.Equal(t, segments.Diff{SegmentID: id, SnapshotID: sync.SnapshotID, Sequence: 2, Added: []string{"c-ben"}, Removed: []string{}}, diff)

	// Ann leaves Gold; Cat merges into Ben and closes as MERGED.
	w.env.Ingest("club-a", ann, "tier.changed", `{"memberId": 1, "fromTier": "Gold", "toTier": "Silver"}`)
	w.env.Merge(ben, cat, "admin-1")
	w.project()
	assert.Equal(t, ids(ben), w.members("club-a", id))
	out = w.outbox(&seen)
	require.Len(t, out, 2)
	m = changed(t, out[0])
	assert.ElementsMatch(t, ids(ann, cat), m.Removed)
	assert.Equal(t, int64(1), m.Total)
	require.NoError(t, json.Unmarshal(out[1].Data, &diff))
	assert.Equal(t, []string{"c-ann"}, diff.Removed, "Cat had no contact: Messaging hears of Ann only")
	assert.Equal(t, int64(1), diff.WithoutContact)

	// What events did incrementally, a full refresh finds already done.
	res, err := r.Refresh(ctx, "club-a", id)
	require.NoError(t, err)
	assert.Equal(t, 0, res.Added+res.Removed)
	assert.Equal(t, int64(1), res.Total)
	assert.Empty(t, w.outbox(&seen), "a refresh that changes nothing publishes nothing")

	v, err := segments.Reader{DB: w.env.Pool}.Get(ctx, "club-a", id)
	require.NoError(t, err)
	assert.Equal(t, int64(1), v.Membership.Members)
	assert.Equal(t, int64(3), v.Membership.Changes)
	assert.Equal(t, int64(3), v.Membership.SyncSequence)
	assert.NotNil(t, v.Membership.LastRefreshedAt)

	// Deleted: emptied, and said so.
	_, err = w.segs.Delete(ctx, w.actor("club-a"), id)
	require.NoError(t, err)
	w.project()
	assert.Empty(t, w.members("club-a", id))
	out = w.outbox(&seen)
	require.Len(t, out, 2)
	m = changed(t, out[0])
	assert.Equal(t, segments.ReasonDeleted, m.Reason)
	assert.Equal(t, []uuid.UUID{ben.ID}, m.Removed)
	assert.Equal(t, int64(0), m.Total)
	_, err = segments.Reader{DB: w.env.Pool}.Get(ctx, "club-a", id)
	assert.True(t, segments.IsNotFound(err))
	_, err = r.Refresh(ctx, "club-a", id)
	assert.True(t, segments.IsNotFound(err))
}

func TestStaticMembers(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	a := w.env.Register("club-a", `{"memberId": 1, "email": "ann@mail.com"}`, `{"memberId": 2, "email": "ben@mail.com"}`,
		`{"memberId": 3, "email": "cat@mail.com"}`)
	ann, ben, cat := a[0], a[1], a[2]
	w.project()
	id := w.create("club-a", segment.Definition{Name: "Board", Type: segment.Static})
	_, err := w.segs.ChangeMembers(ctx, w.actor("club-a"), id, []uuid.UUID{ann.ID, cat.ID}, nil)
	require.NoError(t, err)
	w.project()
	assert.Equal(t, ids(ann, cat), w.members("club-a", id))

	// Cat merges into Ben: the survivor takes her place.
	w.env.Merge(ben, cat, "admin-1")
	w.project()
	assert.Equal(t, ids(ann, ben), w.members("club-a", id))

	_, err = w.segs.ChangeMembers(ctx, w.actor("club-a"), id, nil, []uuid.UUID{ann.ID})
	require.NoError(t, err)
	w.project()
	assert.Equal(t, ids(ben), w.members("club-a", id))

	// The schedule leaves STATIC segments to their members.
	job := &segments.Job{Refresher: &segments.Refresher{Pool: w.env.Pool, Clock: w.clock}}
	n, _, err := job.RunOnce(ctx)
	require.NoError(t, err)
	assert.Equal(t, 0, n)
	res, err := job.Refresher.Refresh(ctx, "club-a", id)
	require.NoError(t, err)
	assert.Equal(t, segments.Result{SegmentID: id, Total: 1, DurationMs: res.DurationMs}, res)
}

func TestOtherTenantsSegmentIsNotFound(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	w.env.Register("club-a", `{"memberId": 1, "email": "ann@mail.com", "membershipTier": "Gold"}`)
	id := w.create("club-a", gold())
	w.project()
	rd := segments.Reader{DB: w.env.Pool}
	_, err := rd.Get(ctx, "club-b", id)
	assert.True(t, segments.IsNotFound(err))
	_, _, err = rd.Members(ctx, "club-b", id, 10, nil)
	assert.True(t, segments.IsNotFound(err))
	list, _, err := rd.List(ctx, "club-b", "", 10, nil)
	require.NoError(t, err)
	assert.Empty(t, list)
	r := &segments.Refresher{Pool: w.env.Pool}
	_, err = r.Refresh(ctx, "club-b", id)
	assert.True(t, segments.IsNotFound(err))
	_, err = r.Sync(ctx, "club-b", id)
	assert.True(t, segments.IsNotFound(err))

	members, next, err := rd.Members(ctx, "club-a", id, 10, nil)
	require.NoError(t, err)
	assert.Nil(t, next)
	require.Len(t, members, 1)
	assert.Equal(t, "Gold", *members[0].MembershipTier)
}

func TestScheduledRefreshCatchesTimePassing(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	p := w.env.Register("club-a", `{"memberId": 1, "email": "ann@mail.com"}`)[0]
	w.env.Ingest("club-a", p, "teetime.booked", `{"playerId": "p-1", "bookingId": "b-1", "clubId": "c", "teeTimeAt": "2026-01-01T07:30:00Z"}`)
	w.project()
	id := w.create("club-a", segment.Definition{Name: "Active this week", Type: segment.Dynamic,
		Rules: []segment.Rule{{Field: "lastActivityAt", Operator: segment.WithinLast, Value: raw("7d")}}})
	w.project()
	require.Equal(t, ids(p), w.members("club-a", id))

	w.now = w.now.Add(8 * 24 * time.Hour) // no event: only time passes
	job := &segments.Job{Refresher: &segments.Refresher{Pool: w.env.Pool, Clock: w.clock}}
	n, changedN, err := job.RunOnce(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, 1, changedN)
	assert.Empty(t, w.members("club-a", id))
}

func TestRelayPublishesInOrder(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	w.env.Register("club-a", `{"memberId": 1, "email": "ann@mail.com", "membershipTier": "Gold"}`,
		`{"memberId": 2, "email": "ben@mail.com", "membershipTier": "Gold"}`)
	id := w.create("club-a", gold())
	w.project()
	_, err := (&segments.Refresher{Pool: w.env.Pool}).Sync(ctx, "club-a", id)
	require.NoError(t, err)

	events, messaging := "test.crm.events."+uuid.NewString(), "test.messaging.segments."+uuid.NewString()
	rdb := redistest.New(t, events, messaging)
	pub, err := redisstream.NewPublisher(redisstream.PublisherConfig{Client: rdb}, watermill.NopLogger{})
	require.NoError(t, err)
	relay := &segments.Relay{Pool: w.env.Pool, Publisher: pub,
		Topics: map[string]string{segments.EventsTopic: events, segments.MessagingTopic: messaging}}
	n, err := relay.RelayOnce(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	n, err = relay.RelayOnce(ctx)
	require.NoError(t, err)
	assert.Equal(t, 0, n, "published rows are not published again")

	got, err := rdb.XRange(ctx, events, "-", "+").Result()
	require.NoError(t, err)
	require.Len(t, got, 1)
	var env commands.Envelope
	require.NoError(t, json.Unmarshal([]byte(got[0].Values["payload"].(string)), &env))
	assert.Equal(t, segments.TypeMembershipChanged, env.Type)
	assert.Equal(t, "club-a", env.TenantID)
	assert.Equal(t, env.ID, got[0].Values["_watermill_message_uuid"], "consumers deduplicate on the message id")
	assert.Equal(t, eventstore.DeriveID("club-a", "segment-membership", id.String(), "1", "1").String(), env.ID)
	snap, err := rdb.XRange(ctx, messaging, "-", "+").Result()
	require.NoError(t, err)
	require.Len(t, snap, 1)
	require.NoError(t, json.Unmarshal([]byte(snap[0].Values["payload"].(string)), &env))
	assert.Equal(t, segments.TypeSnapshot, env.Type)
}

func TestInvalidStoredDefinitionHoldsUpNothing(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	ann := w.env.Register("club-a", `{"memberId": 1, "email": "ann@mail.com", "membershipTier": "Gold"}`)[0]
	good := w.create("club-a", gold())
	w.project()
	// A definition a later release no longer accepts (a field since removed).
	broken := uuid.New()
	_, err := w.env.Pool.Exec(ctx, `INSERT INTO segments (tenant_id, id, version, name, type, rules, created_by, created_at, updated_at)
VALUES ('club-a', $1, 1, 'Old', 'DYNAMIC', '{"combinator": "AND", "rules": [{"field": "shoeSize", "operator": "eq", "value": 9}]}', 'x', now(), now())`, broken)
	require.NoError(t, err)

	w.env.Ingest("club-a", ann, "tier.changed", `{"memberId": 1, "fromTier": "Gold", "toTier": "Silver"}`)
	w.project() // the broken segment does not stop the others
	assert.Empty(t, w.members("club-a", good))

	r := &segments.Refresher{Pool: w.env.Pool}
	_, err = r.Refresh(ctx, "club-a", broken)
	var bad segment.ErrInvalid
	require.ErrorAs(t, err, &bad)
	assert.Contains(t, bad, "rules[0].field")
	n, _, err := (&segments.Job{Refresher: r}).RunOnce(ctx)
	require.NoError(t, err, "the schedule goes on past it")
	assert.Equal(t, 1, n)
}

// TestMembershipSkipsActivityForFieldRules: a segment whose rules read only
// the profile's own fields is not recomputed for a profile whose events
// only recorded activity, while one that reads a count is. To see which
// statements ran, a projector between the read models and membership sets
// every tier to Gold behind the customers projector's back: only the
// profiles membership recomputes, or a full refresh, pick it up.
func TestMembershipSkipsActivityForFieldRules(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	a := w.env.Register("club-a",
		`{"memberId": 1, "email": "ann@mail.com", "membershipTier": "Silver"}`,
		`{"memberId": 2, "email": "ben@mail.com", "membershipTier": "Silver"}`)
	ann, ben := a[0], a[1]
	ann = w.env.Ingest("club-a", ann, "player.created", `{"playerId": "p-ann", "email": "ann@mail.com"}`)
	ben = w.env.Ingest("club-a", ben, "player.created", `{"playerId": "p-ben", "email": "ben@mail.com"}`)
	w.project()
	tier := w.create("club-a", gold())
	booked := w.create("club-a", segment.Definition{Name: "Booked", Type: segment.Dynamic, Combinator: "AND",
		Rules: []segment.Rule{{Field: "bookingCount30d", Operator: segment.Gte, Value: raw(1)}}})
	w.project()
	require.Empty(t, w.members("club-a", tier))

	ps := w.projectors()
	project := func() {
		t.Helper()
		n := len(ps)
		w.env.Apply(append(append(append([]projections.Projector{}, ps[:n-1]...), goldBehindTheBack{}), ps[n-1])...)
	}
	w.env.Ingest("club-a", ann, "teetime.booked", `{"playerId": "p-ann", "bookingId": "b-1"}`)
	ben = w.env.Ingest("club-a", ben, "teetime.booked", `{"playerId": "p-ben", "bookingId": "b-2"}`)
	project()
	assert.Equal(t, ids(ann, ben), w.members("club-a", booked), "a booking recomputes a segment that counts bookings")
	assert.Empty(t, w.members("club-a", tier), "a booking does not recompute a segment of profile fields")

	w.env.Ingest("club-a", ben, "handicap.updated", `{"playerId": "p-ben", "handicap": 9.5}`)
	project()
	assert.Equal(t, ids(ben), w.members("club-a", tier), "an event that moves fields recomputes the profile")

	res, err := (&segments.Refresher{Pool: w.env.Pool, Clock: w.clock}).Refresh(ctx, "club-a", tier)
	require.NoError(t, err)
	assert.Equal(t, 1, res.Added)
	assert.Equal(t, ids(ann, ben), w.members("club-a", tier))
}

// goldBehindTheBack sets every profile's tier in the customers read model
// to Gold, in the batch's transaction.
type goldBehindTheBack struct{}

func (goldBehindTheBack) Name() string     { return "gold-behind-the-back" }
func (goldBehindTheBack) Tables() []string { return nil }
func (goldBehindTheBack) Filter() eventstore.Filter {
	return eventstore.Filter{Categories: []string{customer.Category}}
}
func (goldBehindTheBack) Apply(ctx context.Context, tx pgx.Tx, _ projections.Tables, _ []eventstore.Event) error {
	_, err := tx.Exec(ctx, `UPDATE customers SET membership_tier = 'Gold'`)
	return err
}

// One batch moving members of several clubs' segments records each
// segment's change with its own state and messages (recordMany sends them
// together).
func TestOneBatchMovesManySegments(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	a := w.env.Register("club-a", `{"memberId": 1, "email": "ann@mail.com", "membershipTier": "Silver"}`,
		`{"memberId": 2, "email": "bob@mail.com", "membershipTier": "Gold"}`)
	b := w.env.Register("club-b", `{"memberId": 1, "email": "ann@mail.com", "membershipTier": "Silver"}`)
	w.project()
	goldA, goldB, silverA := w.create("club-a", gold()), w.create("club-b", gold()), w.create("club-a", segment.Definition{
		Name: "Silver members", Type: segment.Dynamic, Combinator: "AND",
		Rules: []segment.Rule{{Field: "membershipTier", Operator: segment.Eq, Value: raw("Silver")}}})
	w.project()
	var seen int64
	w.outbox(&seen)

	// In one batch: Ann of club-a goes Silver → Gold, Bob Gold → Silver,
	// Ann of club-b Silver → Gold.
	annA := w.env.Ingest("club-a", a[0], "tier.changed", `{"memberId": 1, "fromTier": "Silver", "toTier": "Gold"}`)
	bob := w.env.Ingest("club-a", a[1], "tier.changed", `{"memberId": 2, "fromTier": "Gold", "toTier": "Silver"}`)
	annB := w.env.Ingest("club-b", b[0], "tier.changed", `{"memberId": 1, "fromTier": "Silver", "toTier": "Gold"}`)
	w.project()

	assert.Equal(t, ids(annA), w.members("club-a", goldA))
	assert.Equal(t, ids(bob), w.members("club-a", silverA))
	assert.Equal(t, ids(annB), w.members("club-b", goldB))
	got := map[uuid.UUID]segments.MembershipChanged{}
	for _, s := range w.outbox(&seen) {
		m := changed(t, s)
		got[m.SegmentID] = m
	}
	require.Len(t, got, 3, "one message per segment moved")
	for _, c := range []struct {
		seg            uuid.UUID
		added, removed []uuid.UUID
		seq            int64 // a segment computed empty counted no change
	}{
		{goldA, ids(annA), ids(bob), 2},
		{silverA, ids(bob), ids(annA), 2},
		{goldB, ids(annB), []uuid.UUID{}, 1},
	} {
		m := got[c.seg]
		assert.Equal(t, c.added, m.Added, "added to %s", c.seg)
		assert.Equal(t, c.removed, m.Removed, "removed from %s", c.seg)
		assert.Equal(t, c.seq, m.Sequence, "change sequence of %s", c.seg)
		assert.Equal(t, int64(1), m.Total)
		assert.Equal(t, segments.ReasonIncremental, m.Reason)
	}
}

// TestIncrementalAgreesWithRefresh: one batch moves profiles of two clubs
// in and out of segments of every kind of rule (their own fields, a NOT
// group, the metrics, the scores, the timeline): a full refresh afterwards
// finds nothing to change, and the messages say what moved.
func TestIncrementalAgreesWithRefresh(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	a := w.env.Register("club-a",
		`{"memberId": 1, "email": "ann@mail.com", "membershipTier": "Gold"}`,
		`{"memberId": 2, "email": "ben@mail.com", "membershipTier": "Silver"}`,
		`{"memberId": 3, "email": "cat@mail.com", "membershipTier": "Gold"}`)
	b := w.env.Register("club-b",
		`{"memberId": 1, "email": "dan@mail.com", "membershipTier": "Silver"}`,
		`{"memberId": 2, "email": "eve@mail.com", "membershipTier": "Gold"}`)
	w.project()
	notGold := segment.Definition{Name: "Not gold", Type: segment.Dynamic, Combinator: "AND",
		Rules: []segment.Rule{{Combinator: "AND", Not: true,
			Rules: []segment.Rule{{Field: "membershipTier", Operator: segment.Eq, Value: raw("Gold")}}}}}
	booked := segment.Definition{Name: "Booked", Type: segment.Dynamic, Combinator: "AND",
		Rules: []segment.Rule{{Field: "bookingCount30d", Operator: segment.Gte, Value: raw(1)}}}
	engaged := segment.Definition{Name: "Engaged", Type: segment.Dynamic, Combinator: "AND",
		Rules: []segment.Rule{{Field: "engagementScore", Operator: segment.Gt, Value: raw(0)}}}
	opened := segment.Definition{Name: "Opened an email", Type: segment.Dynamic, Combinator: "AND",
		Rules: []segment.Rule{{Activity: &segment.ActivityMatch{Type: "email.opened"}, Operator: segment.Gte, Value: raw(1), Within: "30d"}}}
	type seg struct {
		tenant string
		id     uuid.UUID
	}
	var segs []seg
	for _, tenant := range []string{"club-a", "club-b"} {
		for _, d := range []segment.Definition{gold(), notGold, booked, engaged, opened} {
			segs = append(segs, seg{tenant, w.create(tenant, d)})
		}
	}
	w.project()
	before := map[seg][]uuid.UUID{}
	for _, sg := range segs {
		before[sg] = w.members(sg.tenant, sg.id)
	}
	var seen int64
	w.outbox(&seen)

	// One batch: tiers move both ways, bookings and opens arrive.
	w.env.Ingest("club-a", a[0], "tier.changed", `{"memberId": 1, "fromTier": "Gold", "toTier": "Silver"}`)
	w.env.Ingest("club-a", a[1], "tier.changed", `{"memberId": 2, "fromTier": "Silver", "toTier": "Gold"}`)
	w.env.Ingest("club-a", a[2], "teetime.booked", `{"playerId": "p-3", "email": "cat@mail.com", "bookingId": "b-1"}`)
	w.env.Ingest("club-b", b[0], "tier.changed", `{"memberId": 1, "fromTier": "Silver", "toTier": "Gold"}`)
	w.env.Ingest("club-b", b[1], "email.opened", `{"contactId": "c-eve", "email": "eve@mail.com", "campaignId": "k-1"}`)
	w.project()

	moved := map[uuid.UUID]segments.MembershipChanged{}
	for _, s := range w.outbox(&seen) {
		if s.Type == segments.TypeMembershipChanged {
			m := changed(t, s)
			moved[m.SegmentID] = m
		}
	}
	r := &segments.Refresher{Pool: w.env.Pool, Clock: w.clock}
	changes := 0
	for _, sg := range segs {
		after := w.members(sg.tenant, sg.id)
		res, err := r.Refresh(ctx, sg.tenant, sg.id)
		require.NoError(t, err)
		assert.Zero(t, res.Added+res.Removed, "a full refresh of %s finds the batch's changes done", sg.id)
		added, removed := diff(before[sg], after)
		if m, ok := moved[sg.id]; ok {
			changes++
			assert.Equal(t, added, m.Added, "added to %s", sg.id)
			assert.Equal(t, removed, m.Removed, "removed from %s", sg.id)
			assert.Equal(t, int64(len(after)), m.Total)
		} else {
			assert.Equal(t, before[sg], after, "%s did not move, and said nothing", sg.id)
		}
	}
	assert.GreaterOrEqual(t, changes, 5, "the batch moved most segments")
}

// diff answers what is in after and not in before, and the other way.
func diff(before, after []uuid.UUID) (added, removed []uuid.UUID) {
	added, removed = []uuid.UUID{}, []uuid.UUID{}
	for _, id := range after {
		if !slices.Contains(before, id) {
			added = append(added, id)
		}
	}
	for _, id := range before {
		if !slices.Contains(after, id) {
			removed = append(removed, id)
		}
	}
	return added, removed
}
