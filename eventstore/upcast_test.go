package eventstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/adapters/postgres/pgtest"
	"github.com/clubcrm/crm/eventstore"
	"github.com/clubcrm/crm/eventstore/postgres"
)

// memberRegistered is the newest (version 3) shape of MemberRegistered.
// Version 1 had one "name"; version 2 split it into first and last names;
// version 3 added the home club, which version 2 members did not record.
type memberRegistered struct {
	FirstName string `json:"firstName"`
	LastName  string `json:"lastName"`
	HomeClub  string `json:"homeClub"`
}

func memberUpcasters() *eventstore.Upcasters {
	return eventstore.NewUpcasters().
		Register("MemberRegistered", 1, func(data json.RawMessage) (json.RawMessage, error) {
			var v1 struct {
				Name string `json:"name"`
			}
			if err := json.Unmarshal(data, &v1); err != nil {
				return nil, err
			}
			first, last, _ := strings.Cut(strings.TrimSpace(v1.Name), " ")
			return json.Marshal(map[string]string{"firstName": first, "lastName": last})
		}).
		Register("MemberRegistered", 2, func(data json.RawMessage) (json.RawMessage, error) {
			var v map[string]any
			if err := json.Unmarshal(data, &v); err != nil {
				return nil, err
			}
			v["homeClub"] = "unknown"
			return json.Marshal(v)
		})
}

func TestUpcasters(t *testing.T) {
	reg := memberUpcasters()
	tests := []struct {
		name    string
		typ     string
		version int
		data    string
		want    string
		wantVer int
	}{
		{"v1 unversioned", "MemberRegistered", 0, `{"name":"Ada Lovelace"}`, `{"firstName":"Ada","lastName":"Lovelace","homeClub":"unknown"}`, 3},
		{"v1", "MemberRegistered", 1, `{"name":"Grace Brewster Hopper"}`, `{"firstName":"Grace","lastName":"Brewster Hopper","homeClub":"unknown"}`, 3},
		{"v2", "MemberRegistered", 2, `{"firstName":"Alan","lastName":"Turing"}`, `{"firstName":"Alan","lastName":"Turing","homeClub":"unknown"}`, 3},
		{"newest", "MemberRegistered", 3, `{"firstName":"Tom","lastName":"Morris","homeClub":"St Andrews"}`, `{"firstName":"Tom","lastName":"Morris","homeClub":"St Andrews"}`, 3},
		{"other type", "MemberLeft", 0, `{"reason":"moved"}`, `{"reason":"moved"}`, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := eventstore.Event{ID: uuid.New(), Type: tc.typ, Data: json.RawMessage(tc.data), Metadata: eventstore.Metadata{TenantID: "t", SchemaVersion: tc.version}}
			got, err := reg.Upcast(e)
			require.NoError(t, err)
			assert.JSONEq(t, tc.want, string(got.Data))
			assert.Equal(t, tc.wantVer, got.Metadata.SchemaVersion)
		})
	}
	assert.Equal(t, 3, reg.Latest("MemberRegistered"))
	assert.Equal(t, 1, reg.Latest("MemberLeft"))

	t.Run("failing step", func(t *testing.T) {
		boom := errors.New("boom")
		reg := eventstore.NewUpcasters().Register("X", 1, func(json.RawMessage) (json.RawMessage, error) { return nil, boom })
		_, err := reg.Upcast(eventstore.Event{Type: "X", Data: json.RawMessage(`{}`)})
		assert.ErrorIs(t, err, boom)
	})
	t.Run("duplicate registration", func(t *testing.T) {
		assert.Panics(t, func() {
			memberUpcasters().Register("MemberRegistered", 2, func(d json.RawMessage) (json.RawMessage, error) { return d, nil })
		})
	})
}

// TestUpcasting stores events as old code wrote them and reads them back
// through the wrapper by every read path.
func TestUpcasting(t *testing.T) {
	pool, _ := pgtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	raw := postgres.New(pool)
	defer raw.Close()
	store := eventstore.Upcasting(raw, memberUpcasters())

	v1 := eventstore.EventData{ID: uuid.New(), Type: "MemberRegistered", Data: json.RawMessage(`{"name":"Ada Lovelace"}`),
		Metadata: eventstore.Metadata{TenantID: "club-1", SchemaVersion: 1}}
	v2 := eventstore.EventData{ID: uuid.New(), Type: "MemberRegistered", Data: json.RawMessage(`{"firstName":"Alan","lastName":"Turing"}`),
		Metadata: eventstore.Metadata{TenantID: "club-1", SchemaVersion: 2}}
	_, err := raw.Append(ctx, "member-1", eventstore.NoStream, v1)
	require.NoError(t, err)
	_, err = raw.Append(ctx, "member-2", eventstore.NoStream, v2)
	require.NoError(t, err)
	// Current code appends the newest shape without naming its version.
	v3 := eventstore.EventData{ID: uuid.New(), Type: "MemberRegistered", Data: json.RawMessage(`{"firstName":"Tom","lastName":"Morris","homeClub":"St Andrews"}`),
		Metadata: eventstore.Metadata{TenantID: "club-1"}}
	_, err = store.Append(ctx, "member-3", eventstore.NoStream, v3)
	require.NoError(t, err)
	assert.Zero(t, v3.Metadata.SchemaVersion, "the caller's event is left alone")
	stored, err := raw.ReadStream(ctx, "member-3", 1, 1)
	require.NoError(t, err)
	assert.Equal(t, 3, stored[0].Metadata.SchemaVersion, "appends are stamped with the newest version")

	want := map[string]memberRegistered{
		"member-1": {"Ada", "Lovelace", "unknown"},
		"member-2": {"Alan", "Turing", "unknown"},
		"member-3": {"Tom", "Morris", "St Andrews"},
	}
	check := func(t *testing.T, events []eventstore.Event) {
		t.Helper()
		for _, e := range events {
			var got memberRegistered
			require.NoError(t, json.Unmarshal(e.Data, &got))
			assert.Equal(t, want[e.Stream], got, e.Stream)
			assert.Equal(t, 3, e.Metadata.SchemaVersion)
		}
	}

	t.Run("read streams", func(t *testing.T) {
		r, ok := store.(eventstore.StreamsReader)
		require.True(t, ok, "the wrapper keeps the backend's multi-stream read")
		got, err := r.ReadStreams(ctx, map[string]uint64{"member-1": 1, "member-2": 1, "member-3": 0, "member-absent": 1})
		require.NoError(t, err)
		require.Len(t, got, 3, "an absent stream has no entry")
		for _, events := range got {
			require.Len(t, events, 1)
			check(t, events)
		}
	})

	t.Run("read category", func(t *testing.T) {
		r, ok := store.(eventstore.CategoryReader)
		require.True(t, ok, "the wrapper keeps the backend's read by stream")
		_, many := store.(eventstore.StreamsReader)
		require.True(t, many, "and its multi-stream read beside it")
		require.Eventually(t, func() bool { // once the head shows all three
			head, err := store.Head(ctx)
			require.NoError(t, err)
			var got []eventstore.Event
			require.NoError(t, r.ReadCategory(ctx, "member", head, func(e eventstore.Event) error {
				got = append(got, e)
				return nil
			}))
			check(t, got)
			return len(got) == 3
		}, 10*time.Second, 20*time.Millisecond)
	})

	t.Run("read stream", func(t *testing.T) {
		for stream := range want {
			got, err := store.ReadStream(ctx, stream, 1, 10)
			require.NoError(t, err)
			require.Len(t, got, 1)
			check(t, got)
			got, err = store.ReadStreamBackward(ctx, stream, 0, 10)
			require.NoError(t, err)
			require.Len(t, got, 1)
			check(t, got)
		}
	})
	t.Run("read all", func(t *testing.T) {
		require.Eventually(t, func() bool {
			got, err := store.ReadAll(ctx, eventstore.Start, 10)
			require.NoError(t, err)
			check(t, got)
			return len(got) == 3
		}, 10*time.Second, 20*time.Millisecond)
	})
	t.Run("subscription", func(t *testing.T) {
		sub, err := store.Subscribe(ctx, eventstore.Start, eventstore.Filter{Categories: []string{"member"}}, 2)
		require.NoError(t, err)
		defer sub.Close()
		n := 0
		for n < 3 {
			b, err := sub.Next(ctx)
			require.NoError(t, err)
			check(t, b.Events)
			n += len(b.Events)
		}
	})
	t.Run("failed upcast stops a subscription", func(t *testing.T) {
		bad := eventstore.NewUpcasters().Register("MemberRegistered", 1, func(json.RawMessage) (json.RawMessage, error) {
			return nil, errors.New("cannot read v1")
		})
		sub, err := eventstore.Upcasting(raw, bad).Subscribe(ctx, eventstore.Start, eventstore.Filter{}, 10)
		require.NoError(t, err)
		defer sub.Close()
		_, err = sub.Next(ctx)
		require.Error(t, err)
		_, again := sub.Next(ctx)
		assert.Equal(t, err, again, "the failure sticks rather than skipping the batch")
	})
}
