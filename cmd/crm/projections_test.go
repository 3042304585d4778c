package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/adapters/postgres"
	"github.com/clubcrm/crm/adapters/postgres/pgtest"
	app "github.com/clubcrm/crm/commands"
	"github.com/clubcrm/crm/eventstore"
	pgstore "github.com/clubcrm/crm/eventstore/postgres"
	"github.com/clubcrm/crm/projections"
	"github.com/clubcrm/crm/readmodels/customers"
)

// TestProjectionsCommand drives `crm projections status` and `rebuild`
// against a database with real profiles, and checks the rebuilt customers
// read model equals the one projected live.
func TestProjectionsCommand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, dsn := pgtest.New(t)
	store := pgstore.New(pool)
	defer store.Close()
	index := &postgres.IdentityIndex{Pool: pool}
	ingest := &app.Ingest{Store: store, Index: index, Inbox: index, Settings: &app.Settings{Store: store}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	var batch []app.Envelope
	for i, typ := range []string{"member.created", "player.created", "message.sent"} {
		data := map[int]string{
			0: `{"memberId": 1, "email": "a@club.com", "firstName": "Ann"}`,
			1: `{"playerId": "p-2", "email": "b@club.com", "handicap": 3.2}`,
			2: `{"contactId": "c-1", "email": "a@club.com"}`,
		}[i]
		batch = append(batch, app.Envelope{ID: typ, Type: typ, TenantID: "club-a", Data: []byte(data)})
	}
	_, err := ingest.Handle(ctx, batch)
	require.NoError(t, err)

	// Project live first, through the runtime serve uses.
	run := func(args ...string) string {
		var out bytes.Buffer
		require.NoError(t, dispatch(ctx, append([]string{"projections", "--database-url", dsn}, args...), &out, &out))
		return out.String()
	}
	rt := liveProject(t, pool, store)
	live := snapshot(t, pool)
	require.Len(t, live, 2)
	rt()

	out := run("status")
	assert.Contains(t, out, "customers")
	assert.Contains(t, out, "outbox")

	run("rebuild", "--all")
	assert.Equal(t, live, snapshot(t, pool), "a rebuild yields the live read model")

	var errOut bytes.Buffer
	err = dispatch(ctx, []string{"projections", "--database-url", dsn, "rebuild", "outbox"}, &errOut, &errOut)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "owns no read model")
}

func snapshot(t *testing.T, pool interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}) []string {
	rows, err := pool.Query(context.Background(), `SELECT row_to_json(c)::text FROM (SELECT * FROM customers ORDER BY id) c`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

// liveProject runs the customers projector until it has caught up, and
// answers a function that stops it.
func liveProject(t *testing.T, pool *pgxpool.Pool, store eventstore.Store) func() {
	t.Helper()
	rt, err := projections.New(pool, store, []projections.Projector{customers.Projector{}}, projections.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	// The newest event appended, read from the table: the store's head may
	// not show it yet while older transactions anywhere on the server
	// (other tests') are still open.
	var last eventstore.Position
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT tx_id, seq FROM events ORDER BY tx_id DESC, seq DESC LIMIT 1`).
		Scan(&last.Commit, &last.Prepare))
	require.NoError(t, rt.WaitFor(context.Background(), customers.Name, last, 20*time.Second))
	return func() { cancel(); <-done; rt.Close() }
}

// TestProjectionsMigratesFirst: on a database an older build migrated
// (here, none did), a rebuild brings the schema up before it writes the
// read models as this build shapes them.
func TestProjectionsMigratesFirst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.EmptyDatabase(t)
	var out bytes.Buffer
	require.NoError(t, dispatch(ctx, []string{"projections", "--database-url", dsn, "rebuild", "customers"}, &out, &out), out.String())
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var fold bool
	require.NoError(t, conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = 'customers' AND column_name = 'fold')`).Scan(&fold))
	assert.True(t, fold, "the newest migration is applied")
}
