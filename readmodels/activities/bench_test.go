package activities_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/clubcrm/crm/adapters/postgres/pgtest"
	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/eventstore"
	"github.com/clubcrm/crm/projections"
	"github.com/clubcrm/crm/readmodels/activities"
	"github.com/clubcrm/crm/readmodels/metrics"
)

// syntheticEvents answers n upstream events over profiles profiles, as the
// store would hand them to projectors.
func syntheticEvents(n, profiles int) []eventstore.Event {
	ids := make([]uuid.UUID, profiles)
	for i := range ids {
		ids[i] = uuid.New()
	}
	types := []struct{ typ, data string }{
		{"teetime.booked", `{"playerId": "p", "bookingId": "b-%d", "clubId": "club-1", "teeTimeAt": "2026-03-21T07:30:00Z"}`},
		{"payment.received", `{"memberId": 1, "paymentId": "pay-%d", "amountCents": 125000, "currency": "ZAR"}`},
		{"email.opened", `{"contactId": "c", "messageId": "m-%d", "campaignId": "camp-1"}`},
		{"handicap.updated", `{"playerId": "p", "handicap": 11.%d}`},
	}
	out := make([]eventstore.Event, n)
	at := time.Now().UTC().Add(-90 * 24 * time.Hour)
	for i := range out {
		t := types[i%len(types)]
		rec, _ := json.Marshal(customer.Recorded{Upstream: customer.Upstream{ID: fmt.Sprint("up-", i), Type: t.typ, Source: customer.SourceOf(t.typ), OccurredAt: at.Add(time.Duration(i) * time.Minute)},
			Data: json.RawMessage(fmt.Sprintf(t.data, i%10))})
		out[i] = eventstore.Event{ID: uuid.New(), Stream: customer.Stream(ids[i%profiles]), Version: uint64(i/profiles + 1), Type: t.typ, Data: rec,
			Metadata: eventstore.Metadata{TenantID: "club-a"}, OccurredAt: at, RecordedAt: time.Now().UTC()}
	}
	return out
}

// BenchmarkProjectors measures the timeline and metrics projectors over
// batches of 1,000 events, as the runtime hands them over.
func BenchmarkProjectors(b *testing.B) {
	pool, _ := pgtest.New(b)
	for _, p := range []projections.Projector{activities.Projector{}, metrics.Projector{}} {
		b.Run(p.Name(), func(b *testing.B) {
			tables := projections.Tables{}
			for _, t := range p.Tables() {
				tables[t] = t
			}
			events := syntheticEvents(20_000, 2_000)
			b.ResetTimer()
			for range b.N {
				for i := 0; i < len(events); i += 1000 {
					err := pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
						return p.Apply(context.Background(), tx, tables, events[i:i+1000])
					})
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.N*len(events))/b.Elapsed().Seconds(), "events/s")
		})
	}
}
