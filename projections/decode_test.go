package projections

import (
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/eventstore"
)

type decodedValue struct{ N int }

var decodeCalls atomic.Int64

func decodeN(typ string, data []byte) (any, error) {
	decodeCalls.Add(1)
	if typ == "bad" {
		return nil, errors.New("bad event")
	}
	v := &decodedValue{}
	return v, json.Unmarshal(data, v)
}

func otherDecoder(string, []byte) (any, error) {
	return &decodedValue{N: -1}, nil
}

func TestDecodeCache(t *testing.T) {
	event := func(id uuid.UUID, typ, data string) eventstore.Event {
		return eventstore.Event{ID: id, Type: typ, Data: json.RawMessage(data)}
	}
	a, b := uuid.New(), uuid.New()
	cases := []struct {
		name   string
		first  eventstore.Event
		second eventstore.Event
		dec2   Decoder
		shared bool
	}{
		{"same event", event(a, "t", `{"N": 1}`), event(a, "t", `{"N": 1}`), decodeN, true},
		{"another event", event(a, "t", `{"N": 1}`), event(b, "t", `{"N": 1}`), decodeN, false},
		{"same id, other data", event(a, "t", `{"N": 1}`), event(a, "t", `{"N": 2}`), decodeN, false},
		{"same id, other type", event(a, "t", `{"N": 1}`), event(a, "u", `{"N": 1}`), decodeN, false},
		{"no id", event(uuid.Nil, "t", `{"N": 1}`), event(uuid.Nil, "t", `{"N": 1}`), decodeN, false},
		{"another decoder", event(a, "t", `{"N": 1}`), event(a, "t", `{"N": 1}`), otherDecoder, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cache := newDecodeCache(16)
			v1, err := cache.decode(c.first, decodeN)
			require.NoError(t, err)
			v2, err := cache.decode(c.second, c.dec2)
			require.NoError(t, err)
			if c.shared {
				assert.Same(t, v1, v2)
			} else {
				assert.NotSame(t, v1, v2)
			}
			want, _ := c.dec2(c.second.Type, c.second.Data)
			assert.Equal(t, want, v2, "the value decoded from the second event")
		})
	}
}

func TestDecodeCacheForgetsOldest(t *testing.T) {
	cache := newDecodeCache(4)
	events := make([]eventstore.Event, 10)
	for i := range events {
		events[i] = eventstore.Event{ID: uuid.New(), Type: "t", Data: json.RawMessage(`{"N": 1}`)}
		_, err := cache.decode(events[i], decodeN)
		require.NoError(t, err)
	}
	assert.Len(t, cache.entries, 4)
	before := decodeCalls.Load()
	for _, e := range events[6:] {
		_, err := cache.decode(e, decodeN)
		require.NoError(t, err)
	}
	assert.Equal(t, before, decodeCalls.Load(), "the newest four are kept")
	_, err := cache.decode(events[0], decodeN)
	require.NoError(t, err)
	assert.Equal(t, before+1, decodeCalls.Load(), "the oldest is decoded again")
	assert.Len(t, cache.entries, 4)
}

func TestDecodeCacheKeepsNoErrors(t *testing.T) {
	cache := newDecodeCache(4)
	e := eventstore.Event{ID: uuid.New(), Type: "bad", Data: json.RawMessage(`{}`)}
	for range 2 {
		_, err := cache.decode(e, decodeN)
		require.Error(t, err)
	}
	assert.Empty(t, cache.entries)
}

// TestDecodeConcurrently runs projectors' worth of readers over the same
// events at once (go test -race checks the sharing).
func TestDecodeConcurrently(t *testing.T) {
	cache := newDecodeCache(64)
	events := make([]eventstore.Event, 200)
	for i := range events {
		events[i] = eventstore.Event{ID: uuid.New(), Type: "t", Data: json.RawMessage(`{"N": 7}`)}
	}
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			for _, e := range events {
				v, err := cache.decode(e, decodeN)
				assert.NoError(t, err)
				assert.Equal(t, 7, v.(*decodedValue).N)
			}
		})
	}
	wg.Wait()
	assert.LessOrEqual(t, len(cache.entries), 64)
}

func TestDecodeMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	_, err := newMetrics(reg)
	require.NoError(t, err)
	count := func(result string) float64 {
		families, err := reg.Gather()
		require.NoError(t, err)
		for _, f := range families {
			if f.GetName() != "crm_projection_decodes_total" {
				continue
			}
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "result" && l.GetValue() == result {
						return m.GetCounter().GetValue()
					}
				}
			}
		}
		t.Fatalf("no crm_projection_decodes_total{result=%q}", result)
		return 0
	}
	shared, decodedBefore := count("shared"), count("decoded")
	e := eventstore.Event{ID: uuid.New(), Type: "t", Data: json.RawMessage(`{"N": 3}`)}
	for range 3 {
		_, err := Decode(e, decodeN)
		require.NoError(t, err)
	}
	assert.GreaterOrEqual(t, count("decoded")-decodedBefore, 1.0)
	assert.GreaterOrEqual(t, count("shared")-shared, 2.0)
}
