package servicebench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/clubcrm/crm/adapters/auth"
	"github.com/clubcrm/crm/bench/population"
)

// exampleSegment is the specification's example segment (section 8,
// "Active Golfers - Low Handicap"), as staff would post it.
const exampleSegment = `{"name": "Active Golfers - Low Handicap", "type": "DYNAMIC", "combinator": "AND", "rules": [
	{"field": "membershipStatus", "operator": "eq", "value": "ACTIVE"},
	{"field": "membershipTier", "operator": "in", "value": ["Gold", "Platinum"]},
	{"field": "handicap", "operator": "lt", "value": 15},
	{"field": "bookingCount30d", "operator": "gte", "value": 2},
	{"field": "engagementScore", "operator": "gte", "value": 50},
	{"field": "emailOptIn", "operator": "eq", "value": true}]}`

// latencySegment holds the members the event → visible figure gives a
// tier of its run's own ("L<run>.<n>"): each of those events moves its
// member into it, which times event → membership change.
func latencySegment(run string) string {
	return `{"name": "Bench latency ` + run + `", "type": "DYNAMIC", "rules": [
	{"field": "membershipTier", "operator": "startsWith", "value": "` + latencyTier(run) + `"}]}`
}

// latencyTier is what the tiers the event → visible figure gives begin with.
func latencyTier(run string) string { return "L" + run + "." }

// SegmentService is the service's side of the segment figures.
type SegmentService struct {
	// Segments is how many example segments were created: one per club,
	// so that together they cover every profile.
	Segments int `json:"segments"`
	// Initial is from the first POST until the membership projector had
	// computed every new segment (example and latency ones) whole.
	InitialSeconds float64 `json:"initialSeconds"`
	// Refresh is POST /segments/{id}/refresh of each club's example
	// segment, one after another over HTTP; RefreshAll their sum: the
	// example segment refreshed over every profile.
	Refresh           Latency `json:"refresh"`
	RefreshAllSeconds float64 `json:"refreshAllSeconds"`
	// DatabaseSeconds sums the durationMs the refreshes answered.
	DatabaseSeconds float64 `json:"databaseSeconds"`
	Members         int64   `json:"members"`
}

// segmentAdmin answers a crm:admin token of tenant.
func (b *bench) segmentAdmin(tenant string) (string, error) {
	return auth.Mint([]byte(b.serveEnv.jwtSecret), auth.Principal{Subject: "crmbench", Tenant: tenant, Roles: []string{auth.RoleAdmin}},
		12*time.Hour, time.Now())
}

// post sends a JSON body and decodes the answer into out.
func (b *bench) post(ctx context.Context, srv *server, tok, path, body string, out any) error {
	return b.send(ctx, srv, http.MethodPost, tok, path, body, out)
}

// send sends a request with a JSON body, if any, and decodes the answer
// into out, if any.
func (b *bench) send(ctx context.Context, srv *server, method, tok, path, body string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, srv.url(path), bytes.NewBufferString(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := b.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 2000))
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, msg)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// deleteEarlierSegments deletes, over HTTP, the segments an earlier run on
// this database made: each club's membership is computed for every segment
// it has, so a run resumed on a kept database otherwise measured every
// earlier run's segments beside its own, slower each time.
func (b *bench) deleteEarlierSegments(ctx context.Context, srv *server) error {
	rows, err := b.pool.Query(ctx, `SELECT tenant_id, id FROM segments WHERE deleted_at IS NULL ORDER BY tenant_id`)
	if err != nil {
		return fmt.Errorf("earlier segments: %w", err)
	}
	type seg struct {
		tenant string
		id     uuid.UUID
	}
	segs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (seg, error) {
		var s seg
		return s, r.Scan(&s.tenant, &s.id)
	})
	if err != nil {
		return fmt.Errorf("earlier segments: %w", err)
	}
	tokens := map[string]string{}
	for _, s := range segs {
		if tokens[s.tenant] == "" {
			if tokens[s.tenant], err = b.segmentAdmin(s.tenant); err != nil {
				return err
			}
		}
		if err := b.send(ctx, srv, http.MethodDelete, tokens[s.tenant], "/api/v1/segments/"+s.id.String(), "", nil); err != nil {
			return err
		}
	}
	if len(segs) > 0 {
		b.log.Info("deleted the segments of earlier runs", slog.Int("segments", len(segs)))
	}
	return nil
}

// segmentService creates the example and latency segments in every club,
// waits for their first membership, then times refreshing each club's
// example segment.
func (b *bench) segmentService(ctx context.Context, srv *server) (SegmentService, error) {
	var res SegmentService
	type created struct {
		tenant, token string
		example       uuid.UUID
	}
	var clubs []created
	var ids []uuid.UUID
	if err := b.deleteEarlierSegments(ctx, srv); err != nil {
		return res, err
	}
	began := time.Now()
	for c := range b.pop.Clubs {
		t := population.ClubTenant(c)
		tok, err := b.segmentAdmin(t)
		if err != nil {
			return res, err
		}
		var ex, lat struct {
			ID uuid.UUID `json:"id"`
		}
		if err := b.post(ctx, srv, tok, "/api/v1/segments", exampleSegment, &ex); err != nil {
			return res, err
		}
		if err := b.post(ctx, srv, tok, "/api/v1/segments", latencySegment(b.run), &lat); err != nil {
			return res, err
		}
		clubs = append(clubs, created{tenant: t, token: tok, example: ex.ID})
		b.latencySegments = append(b.latencySegments, lat.ID)
		ids = append(ids, ex.ID, lat.ID)
	}
	res.Segments = len(clubs)
	want := int64(len(ids))
	for {
		var done int64
		if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM segment_state WHERE refreshed_at IS NOT NULL AND segment_id = ANY($1)`, ids).Scan(&done); err != nil {
			return res, fmt.Errorf("segment state: %w", err)
		}
		if done >= want {
			break
		}
		if time.Since(began) > 15*time.Minute {
			return res, fmt.Errorf("segments: %d of %d computed after 15 minutes", done, want)
		}
		if err := srv.alive(); err != nil {
			return res, err
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return res, err
		}
	}
	res.InitialSeconds = time.Since(began).Seconds()
	b.log.Info("segments created and computed", slog.Int("segments", int(want)), slog.Float64("seconds", res.InitialSeconds))

	var times []time.Duration
	all := time.Now()
	for _, c := range clubs {
		var out struct {
			Total      int64 `json:"total"`
			DurationMs int64 `json:"durationMs"`
		}
		t := time.Now()
		if err := b.post(ctx, srv, c.token, "/api/v1/segments/"+c.example.String()+"/refresh", "", &out); err != nil {
			return res, err
		}
		times = append(times, time.Since(t))
		res.Members += out.Total
		res.DatabaseSeconds += float64(out.DurationMs) / 1000
	}
	res.RefreshAllSeconds = time.Since(all).Seconds()
	res.Refresh = summarize(times)
	b.log.Info("segment refresh measured", slog.Float64("allClubsSeconds", res.RefreshAllSeconds), slog.String("perClub", res.Refresh.String()))
	return res, nil
}
