package outbox_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/adapters/outbox"
	"github.com/clubcrm/crm/adapters/postgres"
	"github.com/clubcrm/crm/adapters/postgres/pgtest"
	"github.com/clubcrm/crm/adapters/redistest"
	"github.com/clubcrm/crm/commands"
	pgstore "github.com/clubcrm/crm/eventstore/postgres"
	"github.com/clubcrm/crm/projections"
)

// TestPublishesProducedEvents runs the outbox projector over real events
// and reads what it published from a real Redis stream.
func TestPublishesProducedEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := pgtest.New(t)
	store := pgstore.New(pool)
	defer store.Close()
	index := &postgres.IdentityIndex{Pool: pool}
	settings := &commands.Settings{Store: store}
	reg := &commands.Register{Store: store, Index: index, Settings: settings}
	a := commands.Actor{Tenant: "club-a", Subject: "staff-1", CommandID: "cmd:1"}
	jane, err := reg.Handle(ctx, a, commands.RegisterCustomer{Email: "jane@mail.com", SCLMemberID: "42"})
	require.NoError(t, err)
	a.CommandID = "cmd:2"
	sam, err := reg.Handle(ctx, a, commands.RegisterCustomer{Email: "sam@mail.com", TeeTimePlayerID: "p-1"})
	require.NoError(t, err)
	a.CommandID = "cmd:3"
	_, err = (&commands.Merge{Store: store, Index: index}).Handle(ctx, a, jane.Profile.ID, sam.Profile.ID)
	require.NoError(t, err)

	topic := "test.crm.events." + uuid.NewString()
	rdb := redistest.New(t, topic)
	pub, err := redisstream.NewPublisher(redisstream.PublisherConfig{Client: rdb}, watermill.NopLogger{})
	require.NoError(t, err)
	rt, err := projections.New(pool, store, []projections.Projector{&outbox.Projector{Publisher: pub, Topic: topic}},
		projections.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	require.NoError(t, err)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- rt.Run(runCtx) }()
	defer func() { cancel(); <-done; rt.Close() }()

	var entries []redis.XMessage
	require.Eventually(t, func() bool {
		entries, err = rdb.XRange(ctx, topic, "-", "+").Result()
		return err == nil && len(entries) == 3
	}, 20*time.Second, 50*time.Millisecond)

	var got []outbox.Envelope
	for _, e := range entries {
		var env outbox.Envelope
		require.NoError(t, json.Unmarshal([]byte(e.Values["payload"].(string)), &env))
		assert.Equal(t, env.ID, e.Values["_watermill_message_uuid"], "the message id is the event id: consumers deduplicate on it")
		got = append(got, env)
	}
	assert.Equal(t, []string{outbox.ProfileCreated, outbox.ProfileCreated, outbox.ProfileMerged}, []string{got[0].Type, got[1].Type, got[2].Type})
	var created outbox.ProfileCreatedData
	require.NoError(t, json.Unmarshal(got[0].Data, &created))
	assert.Equal(t, jane.Profile.ID.String(), created.CustomerID)
	assert.Equal(t, "42", created.SCLMemberID)
	assert.Equal(t, "crm", got[0].Source)
	assert.Equal(t, "club-a", got[0].TenantID)
	var merged outbox.ProfileMergedData
	require.NoError(t, json.Unmarshal(got[2].Data, &merged))
	assert.Equal(t, jane.Profile.ID.String(), merged.SurvivorID)
	assert.Equal(t, sam.Profile.ID.String(), merged.MergedID)
	assert.NotEmpty(t, merged.MovedKeys)
}
