package ingest_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/adapters/ingest"
	"github.com/clubcrm/crm/adapters/postgres"
	"github.com/clubcrm/crm/adapters/postgres/pgtest"
	"github.com/clubcrm/crm/commands"
	"github.com/clubcrm/crm/eventstore"
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
//	INGEST_BENCH_BATCH    the consumer's BatchSize (its default)
//	INGEST_BENCH_CPUPROFILE  file to write a CPU profile of the drain to
//	INGEST_BENCH_PROFILE_CACHE  the handler's ProfileCacheSize (its default; -1: none, so every
//	                      event about someone known reads their stream)

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

// benchWorkload answers n envelopes about n/8 people spread over
// INGEST_BENCH_TENANTS tenants (3 unless set; 200 is the large benchmark's
// many clubs): each person is an SCL member (70%), a TeeTime player (80%) and a
// Messaging contact (75%), announced by member.created and player.created
// before most of their activity (teetime.booked, message.sent,
// email.opened). Members and players share the email, so most people end
// up as one profile reached through three services.
func benchWorkload(n int, seed uint64) []benchEntry {
	r := rand.New(rand.NewPCG(seed, 7))
	tenants := max(1, envInt("INGEST_BENCH_TENANTS", 3))
	people := make([]*benchPerson, max(1, n/8))
	for i := range people {
		p := &benchPerson{
			tenant: fmt.Sprintf("club-%d", i%tenants),
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
		BatchSize: envInt("INGEST_BENCH_BATCH", 0),
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
		pool, _ := pgtest.New(b)
		store := pgstore.New(pool)
		b.Cleanup(func() { store.Close() })
		idx := &postgres.IdentityIndex{Pool: pool}
		cache, _ := strconv.Atoi(os.Getenv("INGEST_BENCH_PROFILE_CACHE")) // negative: none
		h := &commands.Ingest{Store: store, Index: idx, Inbox: idx, Settings: fixedSettings{}, Log: testLogger(b), ProfileCacheSize: cache}
		stages := &stageTimes{}
		index := timedIndex{h.Index.(*postgres.IdentityIndex), stages}
		h.Store, h.Index, h.Inbox = timedStore{h.Store, stages}, index, index
		stats := &batchStats{next: h}
		entries := benchWorkload(events, uint64(i+1))
		xaddAll(b, rdb, n.streams(), entries)

		c, err := ingest.New(benchConfig(b, rdb, n, stats))
		require.NoError(b, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		b.ResetTimer()
		if path := os.Getenv("INGEST_BENCH_CPUPROFILE"); path != "" {
			f, err := os.Create(path)
			require.NoError(b, err)
			require.NoError(b, pprof.StartCPUProfile(f))
			defer f.Close()
			defer pprof.StopCPUProfile()
		}
		cpu := cpuTimes()
		var mem0, mem1 runtime.MemStats
		runtime.ReadMemStats(&mem0)
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
		reportCPU(b, cpu, cpuTimes(), backends(b, pool), elapsed, len(entries))
		runtime.ReadMemStats(&mem1)
		b.ReportMetric(float64(mem1.Mallocs-mem0.Mallocs)/float64(len(entries)), "allocs/event")
		b.ReportMetric(float64(mem1.TotalAlloc-mem0.TotalAlloc)/float64(len(entries)), "B/event")
		b.ReportMetric(float64(mem1.NumGC-mem0.NumGC), "GCs")
		b.StopTimer()
		cancel()
		require.NoError(b, <-done)
		dead := must(rdb.XLen(context.Background(), n.dead).Result())
		require.Zero(b, dead, "dead letters")
		b.ReportMetric(float64(len(entries))/elapsed.Seconds(), "events/s")
		stats.report(b)
		stages.report(b, stats.calls.Load())

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
		stages := &stageTimes{}
		index := timedIndex{&postgres.IdentityIndex{Pool: pool}, stages}
		h := &commands.Ingest{Store: timedStore{store, stages}, Index: index, Inbox: index, Settings: fixedSettings{}, Log: testLogger(b)}
		rt, err := projections.New(pool, store, []projections.Projector{customers.Projector{}},
			projections.WithLogger(testLogger(b)), projections.WithRegisterer(prometheus.NewRegistry()))
		require.NoError(b, err)
		b.Cleanup(rt.Close)

		ctx, cancel := context.WithCancel(context.Background())
		var sent sync.Map // envelope id → time.Time of its XADD
		var (
			mu        sync.Mutex
			latencies []time.Duration // XADD → visible in the read model
			appended  []time.Duration // XADD → appended
			waits     sync.WaitGroup
		)
		stats := &batchStats{next: h, onDone: func(res []commands.Result) {
			for _, r := range res {
				at, ok := sent.Load(r.ID)
				if !ok || r.Status != commands.Recorded {
					continue
				}
				mu.Lock()
				appended = append(appended, time.Since(at.(time.Time)))
				mu.Unlock()
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

		// A first event, seen through to the read model, so the
		// measurement starts with every part running.
		warm := benchWorkload(1, uint64(i+1000))[0]
		xaddAll(b, rdb, n.streams(), []benchEntry{warm})
		require.Eventually(b, func() bool {
			var n int
			err := pool.QueryRow(ctx, `SELECT count(*) FROM customers`).Scan(&n)
			return err == nil && n > 0
		}, 30*time.Second, 10*time.Millisecond, "the warm-up event visible")

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
		slices.Sort(appended)
		require.NotEmpty(b, latencies)
		q := func(ds []time.Duration, p float64) float64 {
			return float64(ds[min(len(ds)-1, int(p*float64(len(ds))))]) / 1e6
		}
		b.ReportMetric(float64(len(entries))/float64(seconds), "events/s")
		b.ReportMetric(q(latencies, 0.50), "p50-ms")
		b.ReportMetric(q(latencies, 0.99), "p99-ms")
		b.ReportMetric(q(latencies, 1), "max-ms")
		b.ReportMetric(q(appended, 0.50), "appended-p50-ms")
		b.ReportMetric(q(appended, 0.99), "appended-p99-ms")
		stats.report(b)
		stages.report(b, stats.calls.Load())
	}
}

// stageTimes wraps the ingest command's ports and adds up the time each
// takes, to say where a batch's time goes.
type stageTimes struct {
	mu    sync.Mutex
	nanos map[string]time.Duration
	calls map[string]int
}

func (s *stageTimes) add(stage string, since time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nanos == nil {
		s.nanos, s.calls = map[string]time.Duration{}, map[string]int{}
	}
	s.nanos[stage] += time.Since(since)
	s.calls[stage]++
}

func (s *stageTimes) report(b *testing.B, batches int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for stage, d := range s.nanos {
		b.ReportMetric(float64(d)/float64(max(1, batches))/1e6, stage+"-ms/batch")
	}
}

type timedStore struct {
	eventstore.Store
	t *stageTimes
}

func (s timedStore) ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]eventstore.Event, error) {
	defer s.t.add("read", time.Now())
	return s.Store.ReadStream(ctx, stream, from, limit)
}

func (s timedStore) ReadStreams(ctx context.Context, from map[string]uint64) (map[string][]eventstore.Event, error) {
	defer s.t.add("read", time.Now())
	return s.Store.(eventstore.StreamsReader).ReadStreams(ctx, from)
}

func (s timedStore) AppendMulti(ctx context.Context, a []eventstore.Append) ([]eventstore.AppendResult, error) {
	defer s.t.add("append", time.Now())
	return s.Store.AppendMulti(ctx, a)
}

type timedIndex struct {
	*postgres.IdentityIndex
	t *stageTimes
}

func (x timedIndex) Resolve(ctx context.Context, reqs []commands.ResolveRequest, d commands.Decider) error {
	defer x.t.add("resolve", time.Now())
	return x.IdentityIndex.Resolve(ctx, reqs, d)
}

func (x timedIndex) Seen(ctx context.Context, keys []commands.InboxKey) (map[commands.InboxKey]string, error) {
	defer x.t.add("seen", time.Now())
	return x.IdentityIndex.Seen(ctx, keys)
}

func (x timedIndex) Record(ctx context.Context, e []commands.InboxEntry) error {
	defer x.t.add("record", time.Now())
	return x.IdentityIndex.Record(ctx, e)
}

// cpuTimes answers the CPU time (user + system) used so far by this
// process, by each process named postgres (by pid) and by Redis, from /proc.
func cpuTimes() map[string]time.Duration {
	out := map[string]time.Duration{}
	dirs, _ := os.ReadDir("/proc")
	self := strconv.Itoa(os.Getpid())
	for _, d := range dirs {
		if _, err := strconv.Atoi(d.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closing < 0 {
			continue
		}
		name := s[open+1 : closing]
		who := ""
		switch {
		case d.Name() == self:
			who = "crm"
		case name == "postgres":
			who = "pg:" + d.Name()
		case strings.HasPrefix(name, "redis-server"):
			who = "redis"
		default:
			continue
		}
		f := strings.Fields(s[closing+2:])
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		k, _ := strconv.ParseInt(f[12], 10, 64)
		out[who] += time.Duration(u+k) * 10 * time.Millisecond // USER_HZ is 100
	}
	return out
}

// backends answers the pids of the PostgreSQL backends serving the
// benchmark's database, so that the CPU of other databases on the server
// is not counted.
func backends(b testing.TB, pool *pgxpool.Pool) []string {
	rows, err := pool.Query(context.Background(), `SELECT pid::text FROM pg_stat_activity WHERE datname = current_database()`)
	require.NoError(b, err)
	pids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(b, err)
	return pids
}

// reportCPU reports the cores the CRM, the benchmark database's
// PostgreSQL backends and Redis kept busy between two cpuTimes samples
// taken elapsed apart.
//
// It also reports the CPU each spent per event: unlike events/s, that does
// not depend on what else the machine is running. 2 cores divided by their
// sum bounds the throughput of a dedicated 2-core machine.
func reportCPU(b *testing.B, before, after map[string]time.Duration, pgPids []string, elapsed time.Duration, events int) {
	var pg time.Duration
	for _, pid := range pgPids {
		pg += after["pg:"+pid] - before["pg:"+pid] // absent before: started since
	}
	crm, redis := after["crm"]-before["crm"], after["redis"]-before["redis"]
	b.ReportMetric(crm.Seconds()/elapsed.Seconds(), "crm-cores")
	b.ReportMetric(pg.Seconds()/elapsed.Seconds(), "postgres-cores")
	b.ReportMetric(redis.Seconds()/elapsed.Seconds(), "redis-cores")
	perEvent := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(events) }
	b.ReportMetric(perEvent(crm), "crm-µs/event")
	b.ReportMetric(perEvent(pg), "postgres-µs/event")
	b.ReportMetric(perEvent(redis), "redis-µs/event")
	b.ReportMetric(2e6/(perEvent(crm)+perEvent(pg)+perEvent(redis)), "2-core-bound-events/s")
}
