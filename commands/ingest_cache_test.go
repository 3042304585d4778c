package commands_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/commands"
	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/eventstore"
)

// TestIngestCacheMeetsOtherWriters: the ingest command keeps profiles
// between batches; a staff edit and a merge written meanwhile make its
// next append conflict, and it reads the profiles again instead of
// deciding on what it kept. Every event lands once, on the right profile.
func TestIngestCacheMeetsOtherWriters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	staff := commands.Actor{Tenant: "club-a", Subject: "staff-1"}

	ann := e.handle(t, envelope("club-a", "member.created", `{"memberId": 11, "email": "ann@club.com", "firstName": "Ann"}`))[0]
	bob := e.handle(t, envelope("club-a", "player.created", `{"playerId": "p-22", "email": "bob@club.com", "firstName": "Bob"}`))[0]
	require.Equal(t, commands.Recorded, ann.Status, ann.Error)
	require.Equal(t, commands.Recorded, bob.Status, bob.Error)

	// Staff rename Ann behind the cache's back.
	name := "Annie"
	staff.CommandID = uuid.NewString()
	_, err := (&commands.Edit{Store: e.store}).Handle(ctx, staff, *ann.CustomerID, commands.EditCustomer{DisplayName: &name})
	require.NoError(t, err)
	r := e.handle(t, envelope("club-a", "teetime.booked", `{"playerId": "p-ann", "bookingId": "b-1"}`),
		envelope("club-a", "member.updated", `{"memberId": 11, "membershipTier": "gold"}`))
	require.Equal(t, commands.Recorded, r[1].Status, r[1].Error)
	assert.Equal(t, *ann.CustomerID, *r[1].CustomerID)
	p := e.profile(t, "club-a", *ann.CustomerID)
	assert.Equal(t, "Annie", p.DisplayName, "the edit is kept")
	assert.Equal(t, "gold", p.MembershipTier)

	// Staff merge Bob into Ann; Bob's player id now leads to Ann.
	staff.CommandID = uuid.NewString()
	_, err = (&commands.Merge{Store: e.store, Index: e.index}).Handle(ctx, staff, *ann.CustomerID, *bob.CustomerID)
	require.NoError(t, err)
	r = e.handle(t, envelope("club-a", "handicap.updated", `{"playerId": "p-22", "handicap": 9.1}`))
	require.Equal(t, commands.Recorded, r[0].Status, r[0].Error)
	assert.Equal(t, *ann.CustomerID, *r[0].CustomerID)
	p = e.profile(t, "club-a", *ann.CustomerID)
	require.NotNil(t, p.Handicap)
	assert.Equal(t, 9.1, *p.Handicap)

	// Once more, now that the cache has caught up: the version it keeps is
	// the stream's.
	r = e.handle(t, envelope("club-a", "member.updated", `{"memberId": 11, "membershipTier": "silver"}`))
	require.Equal(t, commands.Recorded, r[0].Status, r[0].Error)
	p = e.profile(t, "club-a", *ann.CustomerID)
	evs, err := e.store.ReadStream(ctx, customer.Stream(*ann.CustomerID), 1, 1000)
	require.NoError(t, err)
	assert.EqualValues(t, len(evs), p.Version)
	assert.Equal(t, "silver", p.MembershipTier)
	assert.Equal(t, "Annie", p.DisplayName)
}

// TestIngestRepeatsInOneBatch: an envelope twice in one batch is recorded
// once; the repeat answers duplicate with the same stream, like a
// redelivery would.
func TestIngestRepeatsInOneBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ev := envelope("club-a", "member.created", `{"memberId": 5, "email": "five@club.com"}`)
	res := e.handle(t, ev, ev)
	assert.Equal(t, commands.Recorded, res[0].Status)
	assert.Equal(t, commands.Duplicate, res[1].Status)
	assert.Equal(t, res[0].Stream, res[1].Stream)
	assert.NotEmpty(t, res[1].Stream)
}

// TestIngestWithoutCache: a negative ProfileCacheSize turns the cache off;
// ingestion works the same.
func TestIngestWithoutCache(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ingest.ProfileCacheSize = -1
	a := e.handle(t, envelope("club-a", "member.created", `{"memberId": 8, "email": "eight@club.com"}`))[0]
	b := e.handle(t, envelope("club-a", "player.created", `{"playerId": "p-8", "email": "eight@club.com"}`))[0]
	require.Equal(t, commands.Recorded, b.Status, b.Error)
	assert.Equal(t, *a.CustomerID, *b.CustomerID)
	assert.EqualValues(t, 4, e.profile(t, "club-a", *a.CustomerID).Version, "created, member.created, linked, player.created")
}

// readCounter counts stream reads.
type readCounter struct {
	eventstore.Store
	reads atomic.Int64
}

func (r *readCounter) ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]eventstore.Event, error) {
	r.reads.Add(1)
	return r.Store.ReadStream(ctx, stream, from, limit)
}

// TestIngestCacheSavesReads: a new profile is not read (it is known to be
// empty), and a profile seen in an earlier batch is not read again.
func TestIngestCacheSavesReads(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rc := &readCounter{Store: e.store}
	e.ingest.Store = rc
	e.handle(t, envelope("club-a", "member.created", `{"memberId": 31, "email": "c@club.com"}`))
	e.handle(t, envelope("club-a", "player.created", `{"playerId": "p-31", "email": "c@club.com"}`))
	e.handle(t, envelope("club-a", "teetime.booked", `{"playerId": "p-31", "bookingId": "b-9"}`))
	assert.Zero(t, rc.reads.Load())

	// Another process (no cache) reads it once.
	other := commands.Ingest{Store: rc, Index: e.ingest.Index, Inbox: e.ingest.Inbox, Settings: e.ingest.Settings, Log: e.ingest.Log}
	_, err := other.Handle(context.Background(), []commands.Envelope{envelope("club-a", "teetime.booked", `{"playerId": "p-31", "bookingId": "b-10"}`)})
	require.NoError(t, err)
	assert.EqualValues(t, 1, rc.reads.Load())
}
