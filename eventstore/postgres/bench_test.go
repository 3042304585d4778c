package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/clubcrm/crm/adapters/postgres/pgtest"
	"github.com/clubcrm/crm/eventstore"
)

// BenchmarkAppendMulti appends calls of 500 events over 100 streams; see
// bench/storebench for the figures against raw PostgreSQL.
func BenchmarkAppendMulti(b *testing.B) {
	pool, _ := pgtest.New(b)
	s := New(pool)
	defer s.Close()
	ctx := context.Background()
	data := json.RawMessage(`{"memberId":"m-1","firstName":"Ada","lastName":"Lovelace","notes":"` + strings.Repeat("x", 300) + `"}`)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		call := make([]eventstore.Append, 100)
		for k := range call {
			call[k] = eventstore.Append{Stream: fmt.Sprintf("bench-%d", (i*100+k)%5000), Expected: eventstore.Any}
			for range 5 {
				call[k].Events = append(call[k].Events, eventstore.EventData{
					ID: uuid.New(), Type: "MemberUpdated", Data: data,
					Metadata: eventstore.Metadata{TenantID: "club-1", CorrelationID: "c", Actor: "bench"}, OccurredAt: time.Now(),
				})
			}
		}
		if _, err := s.AppendMulti(ctx, call); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAppend appends one event per call from 16 goroutines, each to
// streams of its own.
func BenchmarkAppend(b *testing.B) {
	pool := newPool(b, 20)
	s := New(pool)
	defer s.Close()
	ctx := context.Background()
	data := json.RawMessage(`{"memberId":"m-1","firstName":"Ada","lastName":"Lovelace","notes":"` + strings.Repeat("x", 300) + `"}`)
	var writer atomic.Int64
	b.SetParallelism(8) // 16 goroutines on 2 cores
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := writer.Add(1)
		i := 0
		for pb.Next() {
			stream := fmt.Sprintf("single%d-%d", w, i%64)
			i++
			_, err := s.Append(ctx, stream, eventstore.Any, eventstore.EventData{
				ID: uuid.New(), Type: "MemberUpdated", Data: data,
				Metadata: eventstore.Metadata{TenantID: "club-1"}, OccurredAt: time.Now(),
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkReadAll reads the global log in pages of 1000.
func BenchmarkReadAll(b *testing.B) {
	pool, _ := pgtest.New(b)
	s := New(pool)
	defer s.Close()
	ctx := context.Background()
	data := json.RawMessage(`{"memberId":"m-1","firstName":"Ada","lastName":"Lovelace","notes":"` + strings.Repeat("x", 300) + `"}`)
	const total = 20_000
	for i := range total / 500 {
		call := make([]eventstore.Append, 100)
		for k := range call {
			call[k] = eventstore.Append{Stream: fmt.Sprintf("read-%d", (i*100+k)%2000), Expected: eventstore.Any}
			for range 5 {
				call[k].Events = append(call[k].Events, eventstore.EventData{
					ID: uuid.New(), Type: "MemberUpdated", Data: data,
					Metadata: eventstore.Metadata{TenantID: "club-1", CorrelationID: uuid.NewString(), Actor: "bench"},
				})
			}
		}
		if _, err := s.AppendMulti(ctx, call); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	read := 0
	for b.Loop() {
		for from := eventstore.Start; ; {
			page, err := s.ReadAll(ctx, from, 1000)
			if err != nil {
				b.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			read += len(page)
			from = page[len(page)-1].Position
		}
	}
	b.ReportMetric(float64(read)/b.Elapsed().Seconds(), "events/s")
}
