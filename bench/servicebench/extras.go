package servicebench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/clubcrm/crm/readmodels/activities"
)

// apiPaths answers the paths the running service describes in its
// OpenAPI document: what is built is measured, what is not is said so.
func (b *bench) apiPaths(ctx context.Context, srv *server) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.url("/openapi.json"), nil)
	if err != nil {
		return nil, err
	}
	resp, err := b.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	defer resp.Body.Close()
	var doc struct {
		Paths map[string]json.RawMessage `json:"paths"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	out := make([]string, 0, len(doc.Paths))
	for p := range doc.Paths {
		out = append(out, p)
	}
	slices.Sort(out)
	return out, nil
}

func findPath(paths []string, suffix string) string {
	for _, p := range paths {
		if strings.HasSuffix(p, suffix) {
			return p
		}
	}
	return ""
}

// TimelineResult holds the timeline figures, or why there are none.
type TimelineResult struct {
	NotBuilt string       `json:"notBuilt,omitempty"`
	Pages    []HTTPResult `json:"pages,omitempty"`
	// Profiles with more than one page, whose next page is measured.
	Paged int `json:"pagedProfiles"`
}

// timelinePath is the timeline endpoint, as the OpenAPI document names it.
const timelinePath = "/customers/{id}/activities"

// TimelinePage is the page size the timeline figures ask for.
const TimelinePage = 50

// timeline measures the first page of random profiles' timelines, and the
// next page of random profiles that have one, over HTTP against the
// read model's own keyset query (activities.PageQuery) over pgx.
func (b *bench) timeline(ctx context.Context, srv *server, paths []string, raw *pgxpool.Pool, n int) (TimelineResult, error) {
	tmpl := findPath(paths, timelinePath)
	if tmpl == "" {
		return TimelineResult{NotBuilt: "not built yet: the service has no GET /api/v1" + timelinePath}, nil
	}
	var res TimelineResult
	keys, err := b.profileSample(ctx, min(n, 20_000))
	if err != nil {
		return res, err
	}
	pathOf := func(k profileKey) string {
		return strings.Replace(tmpl, "{id}", k.id.String(), 1) + "?limit=" + strconv.Itoa(TimelinePage)
	}
	first := make([]request, n)
	for i := range first {
		first[i] = request{tenant: keys[i%len(keys)].tenant, path: pathOf(keys[i%len(keys)])}
	}
	r, err := b.compare(ctx, srv, fmt.Sprintf("timeline first page (%d)", TimelinePage), "the read model's keyset query (activities.PageQuery), pgx pool", first,
		func(ctx context.Context, i int) error {
			k := keys[i%len(keys)]
			sql, args := activities.PageQuery(k.tenant, k.id, activities.Filter{}, activities.Page{Limit: TimelinePage})
			rows, err := raw.Query(ctx, sql, args...)
			if err != nil {
				return fmt.Errorf("raw timeline: %w", err)
			}
			return drain(rows, true)
		})
	if err != nil {
		return res, err
	}
	res.Pages = append(res.Pages, r)

	// The next page: of profiles with more than a page, each cursor
	// fetched once beforehand, untimed (the API's is opaque; the raw
	// query's is the last row of the first page).
	type paged struct {
		key    profileKey
		cursor string
		after  activities.Cursor
	}
	// Profiles the customers read model holds (the API answers 404 for
	// any other), with more than a page of activities.
	rows, err := b.pool.Query(ctx, `SELECT a.tenant_id, a.customer_id FROM activities a
WHERE EXISTS (SELECT 1 FROM customers c WHERE c.tenant_id = a.tenant_id AND c.id = a.customer_id)
GROUP BY a.tenant_id, a.customer_id HAVING count(*) > $1 ORDER BY a.tenant_id, a.customer_id`, TimelinePage)
	if err != nil {
		return res, fmt.Errorf("profiles with a second page: %w", err)
	}
	long, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (profileKey, error) {
		var k profileKey
		return k, r.Scan(&k.tenant, &k.id)
	})
	if err != nil {
		return res, fmt.Errorf("profiles with a second page: %w", err)
	}
	res.Paged = len(long)
	rand.New(rand.NewPCG(b.cfg.Seed, 4)).Shuffle(len(long), func(i, j int) { long[i], long[j] = long[j], long[i] })
	long = long[:min(len(long), 5000)]
	var next []paged
	for _, k := range long {
		cursor, err := b.nextCursor(ctx, srv, k.tenant, pathOf(k))
		if err != nil {
			return res, err
		}
		sql, args := activities.PageQuery(k.tenant, k.id, activities.Filter{}, activities.Page{Limit: TimelinePage})
		rows, err := raw.Query(ctx, sql, args...)
		if err != nil {
			return res, fmt.Errorf("raw timeline: %w", err)
		}
		var last activities.Cursor
		n := 0
		for rows.Next() {
			if n++; n == TimelinePage {
				v, err := rows.Values()
				if err != nil {
					rows.Close()
					return res, fmt.Errorf("raw timeline: %w", err)
				}
				// selectActivity's columns: id first, occurred_at twelfth.
				last.ID, _ = v[0].([16]byte)
				last.OccurredAt, _ = v[11].(time.Time)
			}
		}
		rows.Close()
		if n > TimelinePage && last.OccurredAt.IsZero() {
			return res, fmt.Errorf("raw timeline: the page's columns moved: activities.PageQuery no longer has occurred_at twelfth")
		}
		if cursor != "" && n > TimelinePage {
			next = append(next, paged{key: k, cursor: cursor, after: last})
		}
	}
	if len(next) == 0 {
		return res, nil
	}
	reqs := make([]request, n)
	for i := range reqs {
		p := next[i%len(next)]
		reqs[i] = request{tenant: p.key.tenant, path: pathOf(p.key) + "&cursor=" + url.QueryEscape(p.cursor)}
	}
	r, err = b.compare(ctx, srv, fmt.Sprintf("timeline next page (%d)", TimelinePage), "the read model's keyset query after the cursor, pgx pool", reqs,
		func(ctx context.Context, i int) error {
			p := next[i%len(next)]
			after := p.after
			sql, args := activities.PageQuery(p.key.tenant, p.key.id, activities.Filter{}, activities.Page{Limit: TimelinePage, After: &after})
			rows, err := raw.Query(ctx, sql, args...)
			if err != nil {
				return fmt.Errorf("raw timeline: %w", err)
			}
			return drain(rows, false)
		})
	if err != nil {
		return res, err
	}
	r.Note = fmt.Sprintf("%s profiles have more than one page; %d of them asked", thousands(int64(res.Paged)), len(next))
	res.Pages = append(res.Pages, r)
	return res, nil
}

func (b *bench) nextCursor(ctx context.Context, srv *server, tenant, path string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.url(path), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+b.tokens[tenant])
	resp, err := b.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body) //nolint:errcheck
		return "", fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	var page struct {
		NextCursor *string `json:"nextCursor"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		return "", fmt.Errorf("GET %s: %w", path, err)
	}
	if page.NextCursor == nil {
		return "", nil
	}
	return *page.NextCursor, nil
}

// SegmentResult holds the segment figures, or why there are none, and the
// raw baseline of what the profile read model already holds.
type SegmentResult struct {
	NotBuilt string          `json:"notBuilt,omitempty"`
	Service  *SegmentService `json:"service,omitempty"`
	Profiles int64           `json:"profiles"`
	Rules    string          `json:"rules"` // which of the example's rules the raw baseline evaluates
	Raw      []RawTime       `json:"raw,omitempty"`
}

// RawTime is a raw PostgreSQL baseline timed once per run (the median of
// three).
type RawTime struct {
	Baseline string  `json:"baseline"`
	Rows     int64   `json:"rows"`
	Seconds  float64 `json:"seconds"`
}

// exampleRules are the rules of the specification's example segment
// ("Active Golfers - Low Handicap") the read models can answer:
// membershipStatus, membershipTier, handicap and emailOptIn from the
// customers read model, bookingCount30d from customer_metrics and
// engagementScore from customer_scores when those read models exist.
const exampleRules = `c.status = 'ACTIVE' AND c.membership_status = 'ACTIVE' AND c.membership_tier IN ('Gold', 'Platinum')
	AND c.handicap < 15 AND c.email_opt_in`

const exampleBookings = ` AND m.booking_count_30d >= 2`

// segment measures the example segment's refresh once the service has
// segments; until then, the raw baseline of its profile-column rules.
func (b *bench) segment(ctx context.Context, srv *server, paths []string) (SegmentResult, error) {
	var res SegmentResult
	if findPath(paths, "/segments") == "" {
		res.NotBuilt = "not built yet: the service has no /api/v1/segments"
	} else {
		s, err := b.segmentService(ctx, srv)
		if err != nil {
			return res, err
		}
		res.Service = &s
	}
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM customers`).Scan(&res.Profiles); err != nil {
		return res, fmt.Errorf("count profiles: %w", err)
	}
	if _, err := b.pool.Exec(ctx, `CREATE TABLE bench_segment_members (tenant_id text, customer_id uuid, PRIMARY KEY (tenant_id, customer_id))`); err != nil {
		return res, fmt.Errorf("segment table: %w", err)
	}
	defer b.pool.Exec(context.Background(), `DROP TABLE IF EXISTS bench_segment_members`) //nolint:errcheck
	timed := func(name string, sql string, prep string) (RawTime, error) {
		var times []time.Duration
		var rows int64
		for range 3 {
			if prep != "" {
				if _, err := b.pool.Exec(ctx, prep); err != nil {
					return RawTime{}, fmt.Errorf("%s: %w", name, err)
				}
			}
			began := time.Now()
			tag, err := b.pool.Exec(ctx, sql)
			if err != nil {
				return RawTime{}, fmt.Errorf("%s: %w", name, err)
			}
			times = append(times, time.Since(began))
			rows = tag.RowsAffected()
		}
		slices.Sort(times)
		return RawTime{Baseline: name, Rows: rows, Seconds: times[1].Seconds()}, nil
	}
	res.Rules = "membershipStatus, membershipTier, handicap and emailOptIn from the customers read model"
	c, err := timed("count(*)", `SELECT count(*) FROM customers c WHERE `+exampleRules, "")
	if err != nil {
		return res, err
	}
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM customers c WHERE `+exampleRules).Scan(&c.Rows); err != nil {
		return res, fmt.Errorf("segment count: %w", err)
	}
	ins, err := timed("INSERT … SELECT", `INSERT INTO bench_segment_members SELECT c.tenant_id, c.id FROM customers c WHERE `+exampleRules,
		`TRUNCATE bench_segment_members`)
	if err != nil {
		return res, err
	}
	res.Raw = []RawTime{c, ins}
	var metrics bool
	if err := b.pool.QueryRow(ctx, `SELECT to_regclass('customer_metrics') IS NOT NULL`).Scan(&metrics); err != nil {
		return res, fmt.Errorf("segment: %w", err)
	}
	if metrics {
		// With bookingCount30d as well, joined from its read model.
		res.Rules += "; then with bookingCount30d from customer_metrics too"
		join, err := timed("INSERT … SELECT with bookings", `INSERT INTO bench_segment_members SELECT c.tenant_id, c.id
FROM customers c JOIN customer_metrics m ON m.tenant_id = c.tenant_id AND m.customer_id = c.id WHERE `+exampleRules+exampleBookings,
			`TRUNCATE bench_segment_members`)
		if err != nil {
			return res, err
		}
		res.Raw = append(res.Raw, join)
		var scores bool
		if err := b.pool.QueryRow(ctx, `SELECT to_regclass('customer_scores') IS NOT NULL`).Scan(&scores); err != nil {
			return res, fmt.Errorf("segment: %w", err)
		}
		if scores {
			// All six rules: engagementScore from its read model as well.
			res.Rules += "; then all six with engagementScore from customer_scores"
			six, err := timed("INSERT … SELECT, all six rules", `INSERT INTO bench_segment_members SELECT c.tenant_id, c.id
FROM customers c JOIN customer_metrics m ON m.tenant_id = c.tenant_id AND m.customer_id = c.id
JOIN customer_scores s ON s.tenant_id = c.tenant_id AND s.customer_id = c.id WHERE `+exampleRules+exampleBookings+` AND s.engagement_score >= 50`,
				`TRUNCATE bench_segment_members`)
			if err != nil {
				return res, err
			}
			res.Raw = append(res.Raw, six)
		}
	}
	return res, nil
}

// TableSize is one table's size on disk, indexes and TOAST included.
type TableSize struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"` // read model, event store, command side, runtime
	Rows  int64  `json:"rows"` // the planner's estimate
	Bytes int64  `json:"bytes"`
}

// SizeResult is what the database holds on disk.
type SizeResult struct {
	Tables     []TableSize `json:"tables"`
	ReadModels int64       `json:"readModelBytes"`
	EventStore int64       `json:"eventStoreBytes"`
	Database   int64       `json:"databaseBytes"`
}

func tableKind(name string) string {
	switch name {
	case "events":
		return "event store"
	case "identity_keys", "upstream_inbox", "idempotency_keys":
		return "command side"
	case "projection_checkpoints", "projection_rebuilds", "goose_db_version":
		return "runtime"
	}
	return "read model"
}

func (b *bench) sizes(ctx context.Context) (SizeResult, error) {
	var res SizeResult
	if _, err := b.pool.Exec(ctx, `ANALYZE`); err != nil {
		return res, fmt.Errorf("analyze: %w", err)
	}
	rows, err := b.pool.Query(ctx, `SELECT c.relname, c.reltuples::bigint, pg_total_relation_size(c.oid)
FROM pg_class c WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace AND c.relname NOT LIKE 'bench\_%'
ORDER BY pg_total_relation_size(c.oid) DESC`)
	if err != nil {
		return res, fmt.Errorf("table sizes: %w", err)
	}
	res.Tables, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (TableSize, error) {
		var t TableSize
		err := r.Scan(&t.Name, &t.Rows, &t.Bytes)
		t.Kind = tableKind(t.Name)
		return t, err
	})
	if err != nil {
		return res, fmt.Errorf("table sizes: %w", err)
	}
	for _, t := range res.Tables {
		switch t.Kind {
		case "read model":
			res.ReadModels += t.Bytes
		case "event store":
			res.EventStore += t.Bytes
		}
	}
	if err := b.pool.QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&res.Database); err != nil {
		return res, fmt.Errorf("database size: %w", err)
	}
	return res, nil
}
