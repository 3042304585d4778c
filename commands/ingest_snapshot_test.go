package commands_test

import (
	"context"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/commands"
	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/eventstore"
	"github.com/clubcrm/crm/projections"
	"github.com/clubcrm/crm/readmodels/customers"
)

// fromRecorder records where each stream read starts.
type fromRecorder struct {
	eventstore.Store
	mu    sync.Mutex
	froms map[string][]uint64
}

func (r *fromRecorder) ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]eventstore.Event, error) {
	r.mu.Lock()
	r.froms[stream] = append(r.froms[stream], from)
	r.mu.Unlock()
	return r.Store.ReadStream(ctx, stream, from, limit)
}

// project applies the streams of ids to the customers read model, as its
// projector does. (It reads the streams rather than the log: the log shows
// an event only once every older transaction on the server has ended,
// other tests' included.)
func (e *env) project(t *testing.T, ids ...uuid.UUID) {
	t.Helper()
	ctx := context.Background()
	var evs []eventstore.Event
	for _, id := range ids {
		s, err := e.store.ReadStream(ctx, customer.Stream(id), 1, 1000)
		require.NoError(t, err)
		evs = append(evs, s...)
	}
	p := customers.Projector{}
	tables := projections.Tables{}
	for _, name := range p.Tables() {
		tables[name] = name
	}
	require.NoError(t, pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error { return p.Apply(ctx, tx, tables, evs) }))
}

// TestIngestStartsFromSnapshots: with the customers read model as
// snapshots, an ingest without a cache reads a profile's stream only after
// the snapshot's version; a snapshot behind the stream costs the read of
// what it lacks, a profile without one is read whole, and every decision
// comes out as from a full fold.
func TestIngestStartsFromSnapshots(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ann := e.handle(t, envelope("club-a", "member.created", `{"memberId": 41, "email": "ann@club.com", "firstName": "Ann"}`),
		envelope("club-a", "player.created", `{"playerId": "p-41", "email": "ann@club.com"}`))[0]
	bob := e.handle(t, envelope("club-a", "member.created", `{"memberId": 42, "email": "bob@club.com", "firstName": "Bob"}`))[0]
	e.project(t, *ann.CustomerID, *bob.CustomerID)
	annAt := e.profile(t, "club-a", *ann.CustomerID).Version
	bobAt := e.profile(t, "club-a", *bob.CustomerID).Version
	// Bob moves on past his snapshot; Cat has none.
	e.handle(t, envelope("club-a", "member.updated", `{"memberId": 42, "membershipTier": "gold"}`))
	cat := e.handle(t, envelope("club-a", "member.created", `{"memberId": 43, "email": "cat@club.com"}`))[0]

	rec := &fromRecorder{Store: e.store, froms: map[string][]uint64{}}
	other := commands.Ingest{Store: rec, Index: e.ingest.Index, Inbox: e.ingest.Inbox, Settings: e.ingest.Settings,
		Log: e.ingest.Log, ProfileCacheSize: -1, Snapshots: customers.Snapshots{DB: e.pool}}
	res, err := other.Handle(context.Background(), []commands.Envelope{
		envelope("club-a", "handicap.updated", `{"playerId": "p-41", "handicap": 7.2}`),
		envelope("club-a", "member.updated", `{"memberId": 42, "membershipStatus": "SUSPENDED"}`),
		envelope("club-a", "member.updated", `{"memberId": 43, "membershipTier": "silver"}`),
	})
	require.NoError(t, err)
	for _, r := range res {
		require.Equal(t, commands.Recorded, r.Status, r.Error)
	}
	assert.Equal(t, []uint64{annAt + 1}, rec.froms[customer.Stream(*ann.CustomerID)], "Ann: after her snapshot")
	assert.Equal(t, []uint64{bobAt + 1}, rec.froms[customer.Stream(*bob.CustomerID)], "Bob: after his snapshot, which is behind")
	assert.Equal(t, []uint64{1}, rec.froms[customer.Stream(*cat.CustomerID)], "Cat: whole, no snapshot")

	p := e.profile(t, "club-a", *ann.CustomerID)
	require.NotNil(t, p.Handicap)
	assert.Equal(t, 7.2, *p.Handicap)
	assert.Equal(t, "Ann", p.FirstName)
	p = e.profile(t, "club-a", *bob.CustomerID)
	assert.Equal(t, "gold", p.MembershipTier, "the tier from past the snapshot is kept")
	assert.Equal(t, "SUSPENDED", p.MembershipStatus)
	assert.Equal(t, "silver", e.profile(t, "club-a", *cat.CustomerID).MembershipTier)

	// Another tenant's snapshot is not taken for a profile of this one.
	snaps, err := customers.Snapshots{DB: e.pool}.Profiles(context.Background(), []string{"club-b", "club-a"}, []uuid.UUID{*ann.CustomerID, *ann.CustomerID})
	require.NoError(t, err)
	assert.Nil(t, snaps[0])
	require.NotNil(t, snaps[1])
	assert.Equal(t, annAt, snaps[1].Version)
}
