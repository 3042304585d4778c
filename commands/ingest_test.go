package commands_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/adapters/postgres"
	"github.com/clubcrm/crm/adapters/postgres/pgtest"
	"github.com/clubcrm/crm/commands"
	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/eventstore"
	pgstore "github.com/clubcrm/crm/eventstore/postgres"
)

type env struct {
	pool   *pgxpool.Pool
	store  eventstore.Store
	ingest *commands.Ingest
	index  *postgres.IdentityIndex
}

func newEnv(t testing.TB, dsn ...string) *env {
	t.Helper()
	var pool *pgxpool.Pool
	if len(dsn) == 1 {
		var err error
		pool, err = pgxpool.New(context.Background(), dsn[0])
		require.NoError(t, err)
		t.Cleanup(pool.Close)
	} else {
		pool, _ = pgtest.New(t)
	}
	store := pgstore.New(pool)
	t.Cleanup(func() { store.Close() })
	index := &postgres.IdentityIndex{Pool: pool}
	return &env{pool: pool, store: store, index: index, ingest: &commands.Ingest{
		Store: store, Index: index, Inbox: index, Settings: &commands.Settings{Store: store},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}}
}

func envelope(tenant, typ, data string) commands.Envelope {
	return commands.Envelope{ID: uuid.NewString(), Type: typ, TenantID: tenant, OccurredAt: time.Date(2026, 3, 14, 7, 30, 0, 0, time.UTC), Data: json.RawMessage(data)}
}

func (e *env) handle(t testing.TB, evs ...commands.Envelope) []commands.Result {
	t.Helper()
	res, err := e.ingest.Handle(context.Background(), evs)
	require.NoError(t, err)
	return res
}

func (e *env) profile(t testing.TB, tenant string, id uuid.UUID) *customer.Profile {
	t.Helper()
	p, err := commands.LoadProfile(context.Background(), e.store, tenant, id)
	require.NoError(t, err)
	return p
}

func TestIngestLinksOnePersonAcrossServices(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res := e.handle(t,
		envelope("club-a", "member.created", `{"memberId": 42, "email": "Jane.Doe@Mail.com ", "phoneNumber": "082 555 1234", "firstName": "Jane", "lastName": "Doe", "membershipTier": "Gold", "membershipStatus": "ACTIVE"}`),
		envelope("club-a", "player.created", `{"playerId": "p-7", "email": "jane.doe@mail.com", "handicap": 12.4}`),
		envelope("club-a", "teetime.booked", `{"playerId": "p-7", "bookingId": "b-1", "clubId": "c-1", "teeTimeAt": "2026-03-14T07:30:00Z"}`),
		envelope("club-a", "message.sent", `{"contactId": "m-3", "phoneNumber": "+27825551234", "channel": "SMS"}`),
	)
	for _, r := range res {
		require.Equal(t, commands.Recorded, r.Status, r.Error)
	}
	id := *res[0].CustomerID
	assert.Equal(t, "new", res[0].MatchedBy)
	assert.Equal(t, id, *res[1].CustomerID)
	assert.Equal(t, "email", res[1].MatchedBy)
	assert.Equal(t, 95, res[1].Confidence)
	assert.Equal(t, "teetimePlayerId", res[2].MatchedBy)
	assert.Equal(t, "phoneNumber", res[3].MatchedBy)
	assert.Equal(t, id, *res[3].CustomerID)

	p := e.profile(t, "club-a", id)
	assert.Equal(t, "jane.doe@mail.com", p.Email)
	assert.Equal(t, "p-7", p.TeeTimePlayerID)
	assert.Equal(t, "m-3", p.MessagingContactID)
	assert.EqualValues(t, 42, *p.SCLMemberID)
	assert.Equal(t, 12.4, *p.Handicap)
	assert.Equal(t, customer.LifecycleMember, p.LifecycleStage)
}

func TestIngestOutOfOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	member := e.handle(t, envelope("club-a", "member.created", `{"memberId": 7, "email": "sam@golf.com", "firstName": "Sam"}`))[0]
	// A booking arrives before its player.created: it makes a profile by the
	// player id alone.
	booking := e.handle(t, envelope("club-a", "teetime.booked", `{"playerId": "p-1", "bookingId": "b-1"}`))[0]
	require.Equal(t, commands.Recorded, booking.Status, booking.Error)
	assert.NotEqual(t, *member.CustomerID, *booking.CustomerID)
	// player.created completes that profile and, by its email, is the member:
	// the player id wins the link (strongest key) and the pair goes to review.
	player := e.handle(t, envelope("club-a", "player.created", `{"playerId": "p-1", "email": "sam@golf.com", "firstName": "Sam", "lastName": "Jones"}`))[0]
	assert.Equal(t, *booking.CustomerID, *player.CustomerID)
	assert.Equal(t, "teetimePlayerId", player.MatchedBy)
	p := e.profile(t, "club-a", *booking.CustomerID)
	assert.Equal(t, "Jones", p.LastName)
	evs, err := e.store.ReadStream(context.Background(), customer.Stream(*booking.CustomerID), 1, 100)
	require.NoError(t, err)
	var types []string
	for _, ev := range evs {
		types = append(types, ev.Type)
	}
	assert.Equal(t, []string{"customer.created", "teetime.booked", "customer.duplicate.flagged", "player.created"}, types)
}

func TestIngestDuplicateDelivery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ev := envelope("club-a", "member.created", `{"memberId": 1, "email": "a@b.com"}`)
	first := e.handle(t, ev, ev)
	assert.Equal(t, commands.Recorded, first[0].Status)
	assert.Equal(t, commands.Duplicate, first[1].Status)
	again := e.handle(t, ev)
	assert.Equal(t, commands.Duplicate, again[0].Status)
	assert.Equal(t, first[0].Stream, again[0].Stream)
	p := e.profile(t, "club-a", *first[0].CustomerID)
	assert.EqualValues(t, 2, p.Version, "created + member.created, once")

	// Even if the inbox lost its record (a crash between append and inbox),
	// deterministic event ids make the redelivery a no-op.
	_, err := e.pool.Exec(context.Background(), `DELETE FROM upstream_inbox`)
	require.NoError(t, err)
	again = e.handle(t, ev)
	assert.Equal(t, commands.Recorded, again[0].Status)
	p = e.profile(t, "club-a", *first[0].CustomerID)
	assert.EqualValues(t, 2, p.Version)
}

func TestIngestInvalid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res := e.handle(t,
		commands.Envelope{ID: "x1", Type: "member.created", Data: json.RawMessage(`{"memberId": 1}`)},
		envelope("club-a", "no.such.type", `{}`),
		envelope("club-a", "handicap.updated", `{"playerId": "p", "handicap": "low"}`),
		envelope("club-a", "teetime.booked", `{"bookingId": "b-1"}`),
		envelope("club-a", "member.created", `{"memberId": 3}`),
	)
	want := []string{"tenantId: missing", `type: "no.such.type" is not an event of the contract`, "data.handicap", "names nobody", ""}
	for i, w := range want {
		if w == "" {
			assert.Equal(t, commands.Recorded, res[i].Status)
			continue
		}
		assert.Equal(t, commands.Invalid, res[i].Status, i)
		assert.Contains(t, res[i].Error, w)
	}
}

func TestIngestTenantsAreApart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.handle(t, envelope("club-a", "member.created", `{"memberId": 1, "email": "same@mail.com"}`))[0]
	b := e.handle(t, envelope("club-b", "member.created", `{"memberId": 1, "email": "same@mail.com"}`))[0]
	assert.NotEqual(t, *a.CustomerID, *b.CustomerID)
	assert.False(t, e.profile(t, "club-b", *a.CustomerID).Exists(), "another tenant's profile does not exist for club-b")
}

// TestIngestOneBatchManyTenants hands one batch holding the same people,
// the same upstream ids and the same event ids at several clubs: each club
// gets its own profiles, links and inbox entries, as if the clubs' events
// had come in batches of their own.
func TestIngestOneBatchManyTenants(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tenants := []string{"club-a", "club-b", "club-c", "club-d", "club-e"}
	var batch []commands.Envelope
	for _, tn := range tenants {
		m := envelope(tn, "member.created", `{"memberId": 7, "email": "Jane.Doe@Mail.com", "firstName": "Jane", "lastName": "Doe"}`)
		m.ID = "scl-7-created" // the same upstream event id in every club
		p := envelope(tn, "player.created", `{"playerId": "p-7", "email": "jane.doe@mail.com"}`)
		batch = append(batch, m, p, m)
	}
	res := e.handle(t, batch...)
	ids := map[uuid.UUID]string{}
	for n, tn := range tenants {
		created, linked, repeat := res[3*n], res[3*n+1], res[3*n+2]
		require.Equal(t, commands.Recorded, created.Status, tn)
		require.Equal(t, commands.Recorded, linked.Status, tn)
		assert.Equal(t, *created.CustomerID, *linked.CustomerID, "%s: the player is the member, by email", tn)
		assert.Equal(t, commands.Duplicate, repeat.Status, "%s: a repeat within the batch", tn)
		assert.Equal(t, created.Stream, repeat.Stream)
		require.NotContains(t, ids, *created.CustomerID, "%s shares a profile with %s", tn, ids[*created.CustomerID])
		ids[*created.CustomerID] = tn
		p := e.profile(t, tn, *created.CustomerID)
		assert.Equal(t, tn, p.TenantID)
		assert.Equal(t, "p-7", p.TeeTimePlayerID)
	}

	// Redelivered as a whole, every club's events are duplicates of their
	// own club's, and nothing more is written.
	again := e.handle(t, batch...)
	for n := range batch {
		assert.Equal(t, commands.Duplicate, again[n].Status, "envelope %d", n)
		assert.Equal(t, res[n].Stream, again[n].Stream, "envelope %d", n)
	}
	var rows int
	require.NoError(t, e.pool.QueryRow(context.Background(), `SELECT count(*) FROM upstream_inbox`).Scan(&rows))
	assert.Equal(t, 2*len(tenants), rows)
}

// oneByOne hides the store's multi-stream read, as a backend without one
// (EventStoreDB) would: profiles load stream by stream.
type oneByOne struct{ eventstore.Store }

// TestIngestWithoutMultiStreamRead: a batch over a store that reads one
// stream at a time decides what one over the multi-stream read does.
func TestIngestWithoutMultiStreamRead(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, multi := e.store.(eventstore.StreamsReader)
	require.True(t, multi, "the PostgreSQL store reads many streams at once")
	e.ingest.Store = oneByOne{e.store}
	e.ingest.ProfileCacheSize = -1
	first := e.handle(t,
		envelope("club-a", "member.created", `{"memberId": 1, "email": "ann@mail.com", "firstName": "Ann"}`),
		envelope("club-a", "member.created", `{"memberId": 2, "email": "ben@mail.com", "firstName": "Ben"}`))
	res := e.handle(t,
		envelope("club-a", "player.created", `{"playerId": "p-1", "email": "ANN@mail.com"}`),
		envelope("club-a", "tier.changed", `{"memberId": 2, "fromTier": "Silver", "toTier": "Gold"}`))
	assert.Equal(t, *first[0].CustomerID, *res[0].CustomerID)
	assert.Equal(t, *first[1].CustomerID, *res[1].CustomerID)
	assert.Equal(t, "p-1", e.profile(t, "club-a", *res[0].CustomerID).TeeTimePlayerID)
	assert.Equal(t, "Gold", e.profile(t, "club-a", *res[1].CustomerID).MembershipTier)
}

// TestIngestRaceOneProfile has 50 handlers see the same new person at the
// same moment: exactly one profile comes out.
func TestIngestRaceOneProfile(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const n = 50
	var wg sync.WaitGroup
	ids := make([]uuid.UUID, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			typ, data := "member.created", fmt.Sprintf(`{"memberId": 99, "email": "RACE@club.com", "firstName": "R%d"}`, i)
			if i%2 == 1 {
				typ, data = "message.sent", `{"contactId": "c-race", "email": "race@club.com"}`
			}
			res, err := e.ingest.Handle(context.Background(), []commands.Envelope{envelope("club-a", typ, data)})
			errs[i] = err
			if err == nil && res[0].CustomerID != nil {
				ids[i] = *res[0].CustomerID
			}
		}()
	}
	close(start)
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i])
		assert.Equal(t, ids[0], ids[i])
	}
	p := e.profile(t, "club-a", ids[0])
	assert.EqualValues(t, 1+n+1, p.Version, "created, one identity link for the contact, and every event recorded")
	var keys int
	require.NoError(t, e.pool.QueryRow(context.Background(), `SELECT count(*) FROM identity_keys`).Scan(&keys))
	assert.Equal(t, 3, keys, "memberId, email and contactId, once each")
}

// TestIngestRaceTwoProcesses runs the race across two OS processes.
func TestIngestRaceTwoProcesses(t *testing.T) {
	if os.Getenv("CRM_RACE_CHILD_DSN") != "" {
		raceChild(t)
		return
	}
	t.Parallel()
	e := newEnv(t)
	dsn := pgtest.URLFor(dbName(t, e.pool))
	var cmds []*exec.Cmd
	for i := range 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestIngestRaceTwoProcesses$", "-test.count=1")
		cmd.Env = append(os.Environ(), "CRM_RACE_CHILD_DSN="+dsn, "CRM_RACE_CHILD="+strconv.Itoa(i))
		out, err := os.CreateTemp(t.TempDir(), "child")
		require.NoError(t, err)
		cmd.Stdout, cmd.Stderr = out, out
		require.NoError(t, cmd.Start())
		cmds = append(cmds, cmd)
	}
	for _, c := range cmds {
		if err := c.Wait(); err != nil {
			b, _ := os.ReadFile(c.Stdout.(*os.File).Name())
			t.Fatalf("child: %v\n%s", err, b)
		}
	}
	var profiles, events int
	require.NoError(t, e.pool.QueryRow(context.Background(), `SELECT count(DISTINCT customer_id) FROM identity_keys`).Scan(&profiles))
	require.NoError(t, e.pool.QueryRow(context.Background(), `SELECT count(*) FROM events WHERE type = 'member.created'`).Scan(&events))
	assert.Equal(t, 20, profiles, "20 people, however many processes saw them")
	assert.Equal(t, 2*20*5, events)
}

// raceChild ingests the same 20 people 5 times each from 10 goroutines.
func raceChild(t *testing.T) {
	e := newEnv(t, os.Getenv("CRM_RACE_CHILD_DSN"))
	var wg sync.WaitGroup
	for g := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				person := (g*10 + i) % 20
				ev := envelope("club-a", "member.created", fmt.Sprintf(`{"memberId": %d, "email": "p%d@club.com"}`, 1000+person, person))
				if _, err := e.ingest.Handle(context.Background(), []commands.Envelope{ev}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
}

func dbName(t testing.TB, pool *pgxpool.Pool) string {
	var name string
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT current_database()`).Scan(&name))
	return name
}
