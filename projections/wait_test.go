package projections

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/eventstore"
	"github.com/clubcrm/crm/eventstore/postgres"
)

func TestTokenRoundTrip(t *testing.T) {
	t.Parallel()
	for _, p := range []eventstore.Position{
		{}, {Commit: 1, Prepare: 2}, {Commit: 734, Prepare: 91_223}, {Commit: math.MaxUint64, Prepare: math.MaxUint64},
	} {
		got, err := DecodeToken(EncodeToken(p))
		require.NoError(t, err)
		assert.Equal(t, p, got)
	}
	p, err := DecodeToken("")
	require.NoError(t, err)
	assert.Equal(t, eventstore.Start, p)
	assert.Less(t, len(EncodeToken(eventstore.Position{Commit: 1 << 40, Prepare: 1 << 40})), 24, "short enough for a header")
	for _, bad := range []string{"!!", "AA", "Ag", EncodeToken(eventstore.Position{Commit: 5}) + "AA", "AQ"} {
		_, err := DecodeToken(bad)
		assert.ErrorIs(t, err, ErrBadToken, bad)
	}
}

// TestWaitForReadsOwnWrites waits in a runtime that does not run the
// projector, on a pool of its own: as an API process would, with the
// projector running in another process.
func TestWaitForReadsOwnWrites(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	createCounterTables(t, e.pool, "feed")
	worker := e.runtime([]Projector{&counter{name: "feed"}})
	e.run(worker)

	apiPool, err := pgxpool.New(e.ctx, e.dsn)
	require.NoError(t, err)
	t.Cleanup(apiPool.Close)
	apiStore := postgres.New(apiPool)
	t.Cleanup(func() { apiStore.Close() })
	api, err := New(apiPool, apiStore, []Projector{&counter{name: "feed"}, &counter{name: "idle"}}, WithLogger(e.log))
	require.NoError(t, err)
	t.Cleanup(api.Close)

	for i := range 8 {
		// A command appends and answers its position as a token.
		res, err := apiStore.Append(e.ctx, "member-7", eventstore.Any, eventstore.EventData{
			ID: uuid.New(), Type: "Touched", Data: []byte(fmt.Sprintf(`{"i":%d}`, i)),
			Metadata: eventstore.Metadata{TenantID: "club-1"},
		})
		require.NoError(t, err)
		token := EncodeToken(res.Position)

		// The next query waits on it, then sees the write.
		pos, err := DecodeToken(token)
		require.NoError(t, err)
		start := time.Now()
		require.NoError(t, api.WaitFor(e.ctx, "feed", pos, visibilityTimeout))
		took := time.Since(start)
		var sinceCommit float64
		require.NoError(t, apiPool.QueryRow(e.ctx, `SELECT extract(epoch FROM clock_timestamp() - updated_at) FROM projection_checkpoints WHERE name = 'feed'`).Scan(&sinceCommit))
		t.Logf("wait %d took %v, %.3fs after the batch began", i, took.Round(time.Millisecond), sinceCommit)
		var n int
		require.NoError(t, apiPool.QueryRow(e.ctx, `SELECT n FROM feed_counts WHERE stream = 'member-7'`).Scan(&n))
		assert.Equal(t, i+1, n)
		if i > 0 {
			// Woken by the checkpoint's notification, not by the one-second
			// fallback poll. (How soon the projector gets to the event
			// depends on other transactions on the server.)
			assert.Less(t, sinceCommit, 0.9, "wait %d", i)
		}
	}

	// Nobody projects "idle" (its tables do not even exist): WaitFor gives up.
	start := time.Now()
	err = api.WaitFor(e.ctx, "idle", e.checkpoint("feed"), 300*time.Millisecond)
	assert.ErrorIs(t, err, ErrNotCaughtUp)
	assert.InDelta(t, 300, time.Since(start).Milliseconds(), 250)

	assert.NoError(t, api.WaitFor(e.ctx, "idle", eventstore.Start, time.Millisecond), "the start is always passed")
	assert.ErrorIs(t, api.WaitFor(e.ctx, "nope", eventstore.Start, time.Second), ErrUnknownProjector)
}
