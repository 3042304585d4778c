package ingest_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/adapters/ingest"
	"github.com/clubcrm/crm/adapters/postgres"
	"github.com/clubcrm/crm/adapters/postgres/pgtest"
	"github.com/clubcrm/crm/commands"
	pgstore "github.com/clubcrm/crm/eventstore/postgres"
	"github.com/clubcrm/crm/projections"
	"github.com/clubcrm/crm/readmodels/customers"
)

// The pipeline benchmarks run the whole ingest path against the real Redis
// and PostgreSQL the tests use: envelopes XADDed to the three upstream
// streams, the consumer, commands.Ingest, the identity index and the event
// store. They only run with -bench, e.g.
//
//	go test -run '^$' -bench IngestPipeline -benchtime 1x ./adapters/ingest/
//	INGEST_BENCH_EVENTS=50000 go test -run '^$' -bench IngestPipeline -benchtime 1x ./adapters/ingest/
//	go test -run '^$' -bench IngestLatency -benchtime 1x ./adapters/ingest/
//
// Settings (environment):
//
//	INGEST_BENCH_EVENTS   events per run of BenchmarkIngestPipeline (20000)
//	INGEST_BENCH_RATE     events/s BenchmarkIngestLatency sends (1000)
//	INGEST_BENCH_SECONDS  how long BenchmarkIngestLatency sends (10)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// benchPerson is someone the upstream services know, each under ids of its
// own; they agree on the email, so the CRM links them into one profile.
type benchPerson struct {
	tenant              string
	memberID            int
	playerID, contactID string
	email, phone        string
	first, last         string
	memberSent          bool
	playerSent          bool
}

// benchEntry is one envelope to XADD.
type benchEntry struct {
	stream  int // 0 scl, 1 teetime, 2 messaging
	id      string
	payload string
}

var benchFirst = []string{"Ann", "Bo", "Cara", "Dee", "Eve", "Femi", "Gus", "Hana", "Ivo", "Jo", "Kim", "Lebo", "Mia", "Nia", "Oli", "Pat"}
var benchLast = []string{"Lee", "Sithole", "Ndlovu", "Mokoena", "Khumalo", "Naidoo", "Botha", "Dlamini", "Smit", "Pillay", "Nkosi", "Venter"}

// benchWorkload answers n envelopes about n/8 people spread over three
// tenants: each person is an SCL member (70%), a TeeTime player (80%) and a
// Messaging contact (75%), announced by member.created and player.created
// before most of their activity (teetime.booked, message.sent,
// email.opened). Members and players share the email, so most people end
// up as one profile reached through three services.
func benchWorkload(n int, seed uint64) []benchEntry {
	r := rand.New(rand.NewPCG(seed, 7))
	people := make([]*benchPerson, max(1, n/8))
	for i := range people {
		p := &benchPerson{
			tenant: fmt.Sprintf("club-%c", 'a'+i%3),
			first:  benchFirst[r.IntN(len(benchFirst))], last: benchLast[r.IntN(len(benchLast))],
		}
		p.email = fmt.Sprintf("%s.%s.%d@fairway%d.co.za", p.first, p.last, i, i%40)
		if r.IntN(100) < 70 {
			p.memberID = 100000 + i
		}
		if r.IntN(100) < 80 || p.memberID == 0 {
			p.playerID = fmt.Sprintf("P-%d", i)
		}
		if r.IntN(100) < 75 {
			p.contactID = fmt.Sprintf("C-%d", i)
		}
		if r.IntN(100) < 50 {
			p.phone = fmt.Sprintf("+2782%07d", 1000000+i*7)
		}
		people[i] = p
	}
	out := make([]benchEntry, 0, n)
	for k := 0; len(out) < n; k++ {
		p := people[r.IntN(len(people))]
		id := fmt.Sprintf("bench-%d-%d", seed, k)
		head := fmt.Sprintf(`{"id":%q,"tenantId":%q,"occurredAt":"2026-11-01T10:00:00Z",`, id, p.tenant)
		switch {
		case p.memberID != 0 && !p.memberSent:
			p.memberSent = true
			out = append(out, benchEntry{0, id, head + fmt.Sprintf(`"type":"member.created","source":"scl","data":{"memberId":%d,"email":%q,"phoneNumber":%q,"firstName":%q,"lastName":%q,"membershipTier":"full","membershipStatus":"active"}}`,
				p.memberID, p.email, p.phone, p.first, p.last)})
		case p.playerID != "" && !p.playerSent:
			p.playerSent = true
			out = append(out, benchEntry{1, id, head + fmt.Sprintf(`"type":"player.created","source":"teetime","data":{"playerId":%q,"email":%q,"firstName":%q,"lastName":%q,"handicap":%d.4}}`,
				p.playerID, p.email, p.first, p.last, r.IntN(30))})
		case p.playerID != "" && (p.contactID == "" || r.IntN(2) == 0):
			out = append(out, benchEntry{1, id, head + fmt.Sprintf(`"type":"teetime.booked","source":"teetime","data":{"playerId":%q,"bookingId":"B-%d","clubId":%q,"teeTimeAt":"2026-11-02T07:30:00Z"}}`,
				p.playerID, k, p.tenant)})
		case p.contactID != "" && r.IntN(2) == 0:
			out = append(out, benchEntry{2, id, head + fmt.Sprintf(`"type":"message.sent","source":"messaging","data":{"contactId":%q,"messageId":"M-%d","channel":"email","campaignId":"camp-1","email":%q}}`,
				p.contactID, k, p.email)})
		case p.contactID != "":
			out = append(out, benchEntry{2, id, head + fmt.Sprintf(`"type":"email.opened","source":"messaging","data":{"contactId":%q,"messageId":"M-%d","channel":"email","campaignId":"camp-1"}}`,
				p.contactID, k)})
		}
	}
	return out
}

// xaddAll writes entries in pipelines of 1,000, as a busy upstream would.
func xaddAll(b testing.TB, rdb *redis.Client, streams []string, entries []benchEntry) {
	for i := 0; i < len(entries); i += 1000 {
		_, err := rdb.Pipelined(context.Background(), func(p redis.Pipeliner) error {
			for _, e := range entries[i:min(i+1000, len(entries))] {
				p.XAdd(context.Background(), &redis.XAddArgs{Stream: streams[e.stream], Values: []any{"payload", e.payload}})
			}
			return nil
		})
		require.NoError(b, err)
	}
}

// acked answers how many entries of the streams the group has read and
// acknowledged.
func acked(b testing.TB, rdb *redis.Client, streams []string) int64 {
	var n int64
	for _, s := range streams {
		groups, err := rdb.XInfoGroups(context.Background(), s).Result()
		if err != nil {
			continue // no group yet
		}
		for _, g := range groups {
			if g.Name == ingest.DefaultGroup {
				n += g.EntriesRead - g.Pending
			}
		}
	}
	return n
}

// batchStats wraps a handler and counts its calls.
type batchStats struct {
	next    ingest.Handler
	calls   atomic.Int64
	events  atomic.Int64
	nanos   atomic.Int64
	largest atomic.Int64
	onDone  func([]commands.Result)
}

func (s *batchStats) Handle(ctx context.Context, batch []commands.Envelope) ([]commands.Result, error) {
	start := time.Now()
	res, err := s.next.Handle(ctx, batch)
	s.nanos.Add(int64(time.Since(start)))
	s.calls.Add(1)
	s.events.Add(int64(len(batch)))
	for {
		l := s.largest.Load()
		if int64(len(batch)) <= l || s.largest.CompareAndSwap(l, int64(len(batch))) {
			break
		}
	}
	if err == nil && s.onDone != nil {
		s.onDone(res)
	}
	return res, err
}

func (s *batchStats) report(b *testing.B) {
	calls := max(1, s.calls.Load())
	b.ReportMetric(float64(s.events.Load())/float64(calls), "events/batch")
	b.ReportMetric(float64(s.largest.Load()), "largest-batch")
	b.ReportMetric(float64(s.nanos.Load())/float64(calls)/1e6, "ms/batch")
}

// benchConfig is the consumer configuration the benchmarks run with: the
// defaults serve uses, with quiet logging.
func benchConfig(b testing.TB, rdb *redis.Client, n names, h ingest.Handler) ingest.Config {
	return ingest.Config{
		Redis: rdb, Handler: h, Logger: testLogger(b),
		Streams: n.streams(), DeadLetterStream: n.dead, ConsumerName: "bench",
	}
}

// BenchmarkIngestPipeline measures how fast a backlog drains: the
// envelopes are XADDed first, then a consumer is started and timed until
// it has acknowledged every one.
func BenchmarkIngestPipeline(b *testing.B) {
	events := envInt("INGEST_BENCH_EVENTS", 20000)
	rdb := newRedis(b)
	for i := range b.N {
		n := newNames(b, rdb)
		h, _ := realIngest(b)
		stats := &batchStats{next: h}
		entries := benchWorkload(events, uint64(i+1))
		xaddAll(b, rdb, n.streams(), entries)

		c, err := ingest.New(benchConfig(b, rdb, n, stats))
		require.NoError(b, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		b.ResetTimer()
		start := time.Now()
		go func() { done <- c.Run(ctx) }()
		for acked(b, rdb, n.streams()) < int64(len(entries)) {
			select {
			case err := <-done:
				b.Fatalf("consumer stopped: %v", err)
			case <-time.After(20 * time.Millisecond):
			}
		}
		elapsed := time.Since(start)
		b.StopTimer()
		cancel()
		require.NoError(b, <-done)
		dead := must(rdb.XLen(context.Background(), n.dead).Result())
		require.Zero(b, dead, "dead letters")
		b.ReportMetric(float64(len(entries))/elapsed.Seconds(), "events/s")
		stats.report(b)
	}
}

// BenchmarkIngestLatency sends envelopes at a steady rate with the
// customers projector running, and measures for each how long it took from
// XADD until the read model had passed the events it caused: "event →
// visible in the read model".
func BenchmarkIngestLatency(b *testing.B) {
	rate := envInt("INGEST_BENCH_RATE", 1000)
	seconds := envInt("INGEST_BENCH_SECONDS", 10)
	rdb := newRedis(b)
	for i := range b.N {
		n := newNames(b, rdb)
		pool, _ := pgtest.New(b)
		store := pgstore.New(pool)
		b.Cleanup(func() { store.Close() })
		index := &postgres.IdentityIndex{Pool: pool}
		h := &commands.Ingest{Store: store, Index: index, Inbox: index, Settings: fixedSettings{}, Log: testLogger(b)}
		rt, err := projections.New(pool, store, []projections.Projector{customers.Projector{}},
			projections.WithLogger(testLogger(b)), projections.WithRegisterer(prometheus.NewRegistry()))
		require.NoError(b, err)
		b.Cleanup(rt.Close)

		ctx, cancel := context.WithCancel(context.Background())
		var sent sync.Map // envelope id → time.Time of its XADD
		var (
			mu        sync.Mutex
			latencies []time.Duration
			waits     sync.WaitGroup
		)
		stats := &batchStats{next: h, onDone: func(res []commands.Result) {
			for _, r := range res {
				at, ok := sent.Load(r.ID)
				if !ok || r.Status != commands.Recorded {
					continue
				}
				waits.Add(1)
				go func() {
					defer waits.Done()
					if err := rt.WaitFor(ctx, customers.Name, r.Position, 30*time.Second); err != nil {
						return
					}
					d := time.Since(at.(time.Time))
					mu.Lock()
					latencies = append(latencies, d)
					mu.Unlock()
				}()
			}
		}}
		c, err := ingest.New(benchConfig(b, rdb, n, stats))
		require.NoError(b, err)
		done := make(chan error, 2)
		go func() { done <- c.Run(ctx) }()
		go func() { done <- rt.Run(ctx) }()
		<-c.Running()

		entries := benchWorkload(rate*seconds, uint64(i+100))
		streams := n.streams()
		b.ResetTimer()
		tick := time.NewTicker(10 * time.Millisecond)
		start := time.Now()
		next := 0
		for next < len(entries) {
			<-tick.C
			due := min(len(entries), int(time.Since(start).Seconds()*float64(rate)))
			if due <= next {
				continue
			}
			// Stamped before sending: the consumer may be done before
			// the pipeline returns.
			now := time.Now()
			for _, e := range entries[next:due] {
				sent.Store(e.id, now)
			}
			_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, e := range entries[next:due] {
					p.XAdd(ctx, &redis.XAddArgs{Stream: streams[e.stream], Values: []any{"payload", e.payload}})
				}
				return nil
			})
			require.NoError(b, err)
			next = due
		}
		tick.Stop()
		for acked(b, rdb, streams) < int64(len(entries)) {
			time.Sleep(20 * time.Millisecond)
		}
		waits.Wait()
		b.StopTimer()
		cancel()
		require.NoError(b, <-done)
		require.NoError(b, <-done)

		slices.Sort(latencies)
		require.NotEmpty(b, latencies)
		q := func(p float64) float64 {
			return float64(latencies[min(len(latencies)-1, int(p*float64(len(latencies))))]) / 1e6
		}
		b.ReportMetric(float64(len(entries))/float64(seconds), "events/s")
		b.ReportMetric(q(0.50), "p50-ms")
		b.ReportMetric(q(0.99), "p99-ms")
		b.ReportMetric(float64(latencies[len(latencies)-1])/1e6, "max-ms")
		stats.report(b)
	}
}
