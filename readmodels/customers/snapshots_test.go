package customers_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/adapters/postgres"
	"github.com/clubcrm/crm/commands"
	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/eventstore"
	"github.com/clubcrm/crm/readmodels/customers"
	"github.com/clubcrm/crm/readmodels/customers/customerstest"
)

// eventCounter counts the events the ingest reads from customer streams.
type eventCounter struct {
	eventstore.Store
	events atomic.Int64
}

func (c *eventCounter) ReadStreams(ctx context.Context, from map[string]uint64) (map[string][]eventstore.Event, error) {
	got, err := c.Store.(eventstore.StreamsReader).ReadStreams(ctx, from)
	for _, evs := range got {
		c.events.Add(int64(len(evs)))
	}
	return got, err
}

func (c *eventCounter) ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]eventstore.Event, error) {
	got, err := c.Store.ReadStream(ctx, stream, from, limit)
	c.events.Add(int64(len(got)))
	return got, err
}

func upstream(tenant, typ, data string) commands.Envelope {
	return commands.Envelope{ID: uuid.NewString(), Type: typ, TenantID: tenant, OccurredAt: time.Now().UTC(), Data: json.RawMessage(data)}
}

// TestSnapshotsEqualTheFold: what Snapshots answers of a profile is what
// folding its whole stream answers, merged and staff-edited profiles
// included; a row folded otherwise than this build folds is not answered,
// nor one of another tenant.
func TestSnapshotsEqualTheFold(t *testing.T) {
	t.Parallel()
	e := customerstest.New(t)
	ctx := context.Background()
	ps := e.Register(tenantA,
		`{"memberId": 1, "email": "ann@club.com", "firstName": "Ann", "lastName": "Lee", "membershipTier": "Gold"}`,
		`{"memberId": 2, "email": "ben@club.com", "phoneNumber": "+27825551234", "firstName": "Ben"}`,
		`{"memberId": 3, "email": "cat@club.com", "firstName": "Cat"}`)
	ann := e.Ingest(tenantA, ps[0], "handicap.updated", `{"playerId": "p-1", "handicap": 11.2}`)
	e.Ingest(tenantA, ann, "teetime.booked", `{"playerId": "p-1", "bookingId": "b-1", "clubId": "c-1", "teeTimeAt": "2026-03-14T07:30:00Z"}`)
	e.Merge(ps[1], ps[2], "staff-1")
	e.Project(2)

	snaps := customers.Snapshots{DB: e.Pool}
	tenants := []string{tenantA, tenantA, tenantA, tenantB}
	ids := []uuid.UUID{ps[0].ID, ps[1].ID, ps[2].ID, ps[0].ID}
	got, err := snaps.ProfileSnapshots(ctx, tenants, ids)
	require.NoError(t, err)
	require.Len(t, got, 3, "none of another tenant")
	for _, p := range got {
		want, err := commands.LoadProfile(ctx, e.Store, p.TenantID, p.ID)
		require.NoError(t, err)
		assert.Equal(t, want, p, "the snapshot of %s is the fold of its stream", p.ID)
	}

	_, err = e.Pool.Exec(ctx, `UPDATE customers SET fold = $1 WHERE id = $2`, customer.FoldVersion+1, ps[0].ID)
	require.NoError(t, err)
	got, err = snaps.ProfileSnapshots(ctx, tenants, ids)
	require.NoError(t, err)
	assert.Len(t, got, 2, "a state folded otherwise is not answered")
}

// TestIngestStartsFromSnapshots: a profile the ingest's cache does not hold
// is loaded from its snapshot and the events after it, not from its whole
// stream; what it decides is what it would decide from the whole stream.
// With no snapshot, or one folded otherwise, the whole stream is read.
func TestIngestStartsFromSnapshots(t *testing.T) {
	t.Parallel()
	e := customerstest.New(t)
	ctx := context.Background()
	index := &postgres.IdentityIndex{Pool: e.Pool}
	counter := &eventCounter{Store: e.Store}
	ingest := func(snapshots bool) *commands.Ingest {
		h := &commands.Ingest{Store: counter, Index: index, Inbox: index, Settings: &commands.Settings{Store: e.Store},
			Log: slog.New(slog.NewTextHandler(io.Discard, nil)), ProfileCacheSize: -1}
		if snapshots {
			h.Snapshots = customers.Snapshots{DB: e.Pool}
		}
		return h
	}
	handle := func(h *commands.Ingest, evs ...commands.Envelope) []commands.Result {
		t.Helper()
		res, err := h.Handle(ctx, evs)
		require.NoError(t, err)
		for _, r := range res {
			require.Equal(t, commands.Recorded, r.Status, r.Error)
		}
		return res
	}
	stream := func(id uuid.UUID) []eventstore.Event {
		t.Helper()
		evs, err := e.Store.ReadStream(ctx, customer.Stream(id), 1, 1000)
		require.NoError(t, err)
		return evs
	}

	h := ingest(true)
	first := handle(h,
		upstream(tenantA, "member.created", `{"memberId": 41, "email": "dee@club.com", "firstName": "Dee", "membershipTier": "Gold"}`),
		upstream(tenantA, "member.created", `{"memberId": 42, "email": "eve@club.com", "firstName": "Eve"}`))
	handle(h, upstream(tenantA, "player.created", `{"playerId": "p-41", "email": "DEE@club.com", "handicap": 14}`))
	dee, eve := *first[0].CustomerID, *first[1].CustomerID
	e.Project(0)
	kept := len(stream(dee))
	// Behind the read model: Dee's snapshot is older than her stream.
	handle(h, upstream(tenantA, "handicap.updated", `{"playerId": "p-41", "handicap": 12.5}`))
	behind := len(stream(dee))
	require.Greater(t, behind, kept)
	counter.events.Store(0)

	handle(h,
		upstream(tenantA, "member.updated", `{"memberId": 41, "membershipTier": "Silver"}`),
		upstream(tenantA, "member.updated", `{"memberId": 42, "membershipTier": "Bronze"}`))
	assert.EqualValues(t, behind-kept, counter.events.Load(), "only the events after Dee's snapshot, none of Eve's")
	for id, tier := range map[uuid.UUID]string{dee: "Silver", eve: "Bronze"} {
		p, err := commands.LoadProfile(ctx, e.Store, tenantA, id)
		require.NoError(t, err)
		assert.Equal(t, tier, p.MembershipTier)
		assert.EqualValues(t, len(stream(id)), p.Version)
	}
	p, err := commands.LoadProfile(ctx, e.Store, tenantA, dee)
	require.NoError(t, err)
	require.NotNil(t, p.Handicap)
	assert.Equal(t, 12.5, *p.Handicap, "decided on the events after the snapshot too")

	// With Dee's snapshot folded otherwise, her whole stream; without
	// snapshots, every stream whole.
	e.Project(0)
	_, err = e.Pool.Exec(ctx, `UPDATE customers SET fold = 0 WHERE id = $1`, dee)
	require.NoError(t, err)
	whole := len(stream(dee))
	counter.events.Store(0)
	handle(h, upstream(tenantA, "member.updated", `{"memberId": 41, "membershipTier": "Gold"}`),
		upstream(tenantA, "member.updated", `{"memberId": 42, "membershipTier": "Gold"}`))
	assert.EqualValues(t, whole, counter.events.Load(), "Dee's whole stream, none of Eve's")
	whole = len(stream(dee))
	counter.events.Store(0)
	handle(ingest(false), upstream(tenantA, "teetime.booked", `{"playerId": "p-41", "bookingId": "b-2"}`))
	assert.EqualValues(t, whole, counter.events.Load(), "no snapshots: the whole stream")
}
