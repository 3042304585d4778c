package postgres

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/clubcrm/crm/eventstore"
)

// BenchmarkPrepare encodes an AppendMulti of 500 events over 100 streams
// for the database (metadata to JSON, data to text), the part of an append
// that needs no server. See eventstore/encode_bench_test.go.
func BenchmarkPrepare(b *testing.B) {
	data := json.RawMessage(`{"upstream":{"id":"tt-2","type":"teetime.booked","source":"teetime","occurredAt":"2026-03-14T07:31:00Z"},` +
		`"data":{"playerId":"p-7","bookingId":"b-1","clubId":"club-1","teeTimeAt":"2026-03-21T07:30:00Z"}}`)
	call := make([]eventstore.Append, 100)
	for k := range call {
		call[k] = eventstore.Append{Stream: fmt.Sprintf("customer-%d", k), Expected: eventstore.Any}
		for i := range 5 {
			call[k].Events = append(call[k].Events, eventstore.EventData{
				ID: eventstore.DeriveID("bench", fmt.Sprint(k), fmt.Sprint(i)), Type: "teetime.booked", Data: data, OccurredAt: time.Now(),
				Metadata: eventstore.Metadata{TenantID: "royal-golf", CorrelationID: "tt-2", CausationID: "tt-2", Actor: "teetime", SchemaVersion: 1},
			})
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := prepare(call); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "events/s")
}
