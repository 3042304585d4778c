package eventstore_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/clubcrm/crm/eventstore"
)

// The encoding benchmarks cover what the store does to every event besides
// the database round trip: deriving ids, checking and encoding appends,
// decoding metadata and upcasting on reads. They need no database; compare
// commits with
//
//	go test -run '^$' -bench . -count 10 ./eventstore ./eventstore/postgres > new.txt
//	benchstat old.txt new.txt
//
// (the PostgreSQL store's own benchmarks, BenchmarkAppend*, need a server
// and are filtered out by -bench 'Encode|Prepare|Derive|Validate|Upcast'.)

var sinkID uuid.UUID

func BenchmarkDeriveID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sinkID = eventstore.DeriveID("royal-golf", "scl-evt-000123", "customer-7d7c9c3e-6f0e-5d36-9a4b-0c1f5c7e2a11", "member.created")
	}
}

// recorded is a stored upstream event's data as commands write it.
var recorded = json.RawMessage(`{"upstream":{"id":"tt-2","type":"teetime.booked","source":"teetime","occurredAt":"2026-03-14T07:31:00Z"},` +
	`"data":{"playerId":"p-7","bookingId":"b-1","clubId":"club-1","teeTimeAt":"2026-03-21T07:30:00Z"}}`)

func batch(n int) []eventstore.EventData {
	out := make([]eventstore.EventData, n)
	for i := range out {
		out[i] = eventstore.EventData{
			ID: eventstore.DeriveID("bench", fmt.Sprint(i)), Type: "teetime.booked", Data: recorded, OccurredAt: time.Now(),
			Metadata: eventstore.Metadata{TenantID: "royal-golf", CorrelationID: "tt-2", CausationID: "tt-2", Actor: "teetime", SchemaVersion: 1},
		}
	}
	return out
}

// BenchmarkValidate checks a 500-event append as every backend does
// before writing (the data of each must be JSON).
func BenchmarkValidate(b *testing.B) {
	events := batch(500)
	b.ReportAllocs()
	for b.Loop() {
		if err := eventstore.Validate("customer-7d7c9c3e-6f0e-5d36-9a4b-0c1f5c7e2a11", eventstore.Any, events); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(events))/b.Elapsed().Seconds(), "events/s")
}

var sinkMeta eventstore.Metadata

// BenchmarkEncodeMetadata is the metadata of one event to and from the
// JSON the log stores.
func BenchmarkEncodeMetadata(b *testing.B) {
	m := eventstore.Metadata{TenantID: "royal-golf", CorrelationID: "scl-evt-000123", CausationID: "scl-evt-000123", Actor: "scl", SchemaVersion: 1}
	b.Run("marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(m); err != nil {
				b.Fatal(err)
			}
		}
	})
	enc, _ := json.Marshal(m)
	b.Run("unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkMeta = eventstore.Metadata{}
			if err := json.Unmarshal(enc, &sinkMeta); err != nil {
				b.Fatal(err)
			}
		}
	})
}

var sinkEvent eventstore.Event

// BenchmarkUpcast reads an event through the upcaster registry: the common
// case of a type already at its newest version, and one old event brought
// up two versions.
func BenchmarkUpcast(b *testing.B) {
	reg := eventstore.NewUpcasters().
		Register("member.created", 1, func(d json.RawMessage) (json.RawMessage, error) {
			return json.RawMessage(strings.Replace(string(d), `"data":{`, `"data":{"v2":true,`, 1)), nil
		}).
		Register("member.created", 2, func(d json.RawMessage) (json.RawMessage, error) {
			return json.RawMessage(strings.Replace(string(d), `"data":{`, `"data":{"v3":true,`, 1)), nil
		})
	for _, c := range []struct {
		name, typ string
		version   int
	}{{"current", "teetime.booked", 1}, {"two versions old", "member.created", 1}} {
		e := eventstore.Event{ID: uuid.New(), Stream: "customer-1", Version: 3, Type: c.typ, Data: recorded,
			Metadata: eventstore.Metadata{TenantID: "royal-golf", SchemaVersion: c.version}}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if sinkEvent, err = reg.Upcast(e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
