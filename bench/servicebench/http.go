package servicebench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Clients is how many requests are in flight at once, over HTTP and over
// the raw baselines' pgx pool alike.
const Clients = 8

// rounds cuts each HTTP figure into turns: the service and its raw
// baseline take turns, so load from elsewhere on the machine weighs on
// both alike.
const rounds = 5

// HTTPResult is a query figure over HTTP, beside its raw baseline.
type HTTPResult struct {
	Name     string         `json:"name"`
	Clients  int            `json:"clients"`
	Service  Latency        `json:"service"`
	PerSec   float64        `json:"perSec"` // service requests/s
	Statuses map[string]int `json:"statuses"`
	Baseline string         `json:"baseline,omitempty"`
	Raw      *Latency       `json:"raw,omitempty"`
	RawPerS  float64        `json:"rawPerSec,omitempty"`
	RatioP50 float64        `json:"ratioP50,omitempty"` // service ÷ raw
	RatioP99 float64        `json:"ratioP99,omitempty"`
	Note     string         `json:"note,omitempty"`
}

// request is one GET of the API on behalf of a tenant.
type request struct {
	tenant string
	path   string
}

// httpLoad sends reqs from Clients goroutines and answers each one's
// duration, the statuses seen and how long it all took.
func (b *bench) httpLoad(ctx context.Context, srv *server, reqs []request, statuses map[string]int) ([]time.Duration, time.Duration, error) {
	out := make([]time.Duration, len(reqs))
	var next atomic.Int64
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	began := time.Now()
	for range Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(reqs) || ctx.Err() != nil {
					return
				}
				r := reqs[i]
				hr, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.url(r.path), nil)
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				hr.Header.Set("Authorization", "Bearer "+b.tokens[r.tenant])
				t := time.Now()
				resp, err := b.http.Do(hr)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				out[i] = time.Since(t)
				mu.Lock()
				if err != nil {
					if firstErr == nil {
						firstErr = fmt.Errorf("GET %s: %w", r.path, err)
					}
					mu.Unlock()
					return
				}
				statuses[fmt.Sprint(resp.StatusCode)]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out, time.Since(began), firstErr
}

// rawLoad runs do(i) for i in [0, n) from Clients goroutines and answers
// each one's duration and how long it all took.
func rawLoad(ctx context.Context, n int, do func(ctx context.Context, i int) error) ([]time.Duration, time.Duration, error) {
	out := make([]time.Duration, n)
	var next atomic.Int64
	var once sync.Once
	var firstErr error
	var wg sync.WaitGroup
	began := time.Now()
	for range Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				t := time.Now()
				err := do(ctx, i)
				out[i] = time.Since(t)
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	return out, time.Since(began), firstErr
}

// compare measures reqs over HTTP and raw(i) over pgx in turns, after a
// warm-up of each, and answers the figure.
func (b *bench) compare(ctx context.Context, srv *server, name, baseline string, reqs []request, raw func(ctx context.Context, i int) error) (HTTPResult, error) {
	res := HTTPResult{Name: name, Clients: Clients, Statuses: map[string]int{}, Baseline: baseline}
	warm := min(len(reqs)/10, 2000)
	if _, _, err := b.httpLoad(ctx, srv, reqs[:warm], map[string]int{}); err != nil {
		return res, err
	}
	if raw != nil {
		if _, _, err := rawLoad(ctx, warm, raw); err != nil {
			return res, err
		}
	}
	var svc, rw []time.Duration
	var svcTime, rawTime time.Duration
	per := (len(reqs) + rounds - 1) / rounds
	for start := 0; start < len(reqs); start += per {
		part := reqs[start:min(start+per, len(reqs))]
		ds, took, err := b.httpLoad(ctx, srv, part, res.Statuses)
		if err != nil {
			return res, err
		}
		svc, svcTime = append(svc, ds...), svcTime+took
		if raw != nil {
			off := start
			ds, took, err := rawLoad(ctx, len(part), func(ctx context.Context, i int) error { return raw(ctx, off+i) })
			if err != nil {
				return res, err
			}
			rw, rawTime = append(rw, ds...), rawTime+took
		}
	}
	res.Service = summarize(svc)
	res.PerSec = float64(len(svc)) / svcTime.Seconds()
	if raw != nil {
		l := summarize(rw)
		res.Raw = &l
		res.RawPerS = float64(len(rw)) / rawTime.Seconds()
		res.RatioP50, res.RatioP99 = ratio(res.Service.P50, l.P50), ratio(res.Service.P99, l.P99)
	}
	return res, nil
}

// selectCustomer is the column list the service's profile query reads
// (readmodels/customers), so the raw baseline fetches the same row.
const selectCustomer = `c.id, c.tenant_id, c.version, c.auth_user_id, c.email, c.phone_number, c.scl_member_id,
	c.teetime_player_id, c.messaging_contact_id, c.external_ids, c.aliases, c.first_name, c.last_name, c.display_name,
	c.status, c.lifecycle_stage, c.tags, c.handicap::float8, c.home_club_id, c.membership_tier, c.membership_status,
	c.email_opt_in, c.sms_opt_in, c.push_opt_in, c.whatsapp_opt_in, c.merged_into, c.created_at, c.updated_at`

// drain reads every row and value of a query, as a client would; one row
// at least must come unless empty is allowed.
func drain(rows pgx.Rows, empty bool) error {
	n := 0
	for rows.Next() {
		if _, err := rows.Values(); err != nil {
			rows.Close()
			return err
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if n == 0 && !empty {
		return fmt.Errorf("no row")
	}
	return nil
}

type profileKey struct {
	tenant string
	id     uuid.UUID
}

// profileSample answers up to n active profiles, in a seeded random order.
func (b *bench) profileSample(ctx context.Context, n int) ([]profileKey, error) {
	rows, err := b.pool.Query(ctx, `SELECT tenant_id, id FROM customers WHERE status = 'ACTIVE' ORDER BY tenant_id, id`)
	if err != nil {
		return nil, fmt.Errorf("sample profiles: %w", err)
	}
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (profileKey, error) {
		var k profileKey
		return k, r.Scan(&k.tenant, &k.id)
	})
	if err != nil {
		return nil, fmt.Errorf("sample profiles: %w", err)
	}
	r := rand.New(rand.NewPCG(b.cfg.Seed, 1))
	r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	if len(all) > n {
		all = all[:n]
	}
	return all, nil
}

// profileGet measures GET /api/v1/customers/{id} for random ids against a
// primary-key lookup of the same row.
func (b *bench) profileGet(ctx context.Context, srv *server, raw *pgxpool.Pool, n int) (HTTPResult, error) {
	keys, err := b.profileSample(ctx, n)
	if err != nil {
		return HTTPResult{}, err
	}
	if len(keys) == 0 {
		return HTTPResult{}, fmt.Errorf("profile get: no profiles")
	}
	reqs := make([]request, n)
	for i := range reqs {
		k := keys[i%len(keys)]
		reqs[i] = request{tenant: k.tenant, path: "/api/v1/customers/" + k.id.String()}
	}
	return b.compare(ctx, srv, "profile GET", "primary-key SELECT of the same columns over a pgx pool", reqs,
		func(ctx context.Context, i int) error {
			k := keys[i%len(keys)]
			rows, err := raw.Query(ctx, `SELECT `+selectCustomer+` FROM customers c WHERE c.tenant_id = $1 AND c.id = $2`, k.tenant, k.id)
			if err != nil {
				return fmt.Errorf("raw profile get: %w", err)
			}
			return drain(rows, false)
		})
}

// resolve measures GET /api/v1/customers/resolve?email= for random
// people's addresses, written in the case one of the services uses,
// against an index lookup of the normalised address joined to the profile.
func (b *bench) resolve(ctx context.Context, srv *server, raw *pgxpool.Pool, n int) (HTTPResult, error) {
	type ask struct{ tenant, email, norm string }
	var asks []ask
	for i := range b.pop.People {
		p := &b.pop.People[i]
		if p.Seen && p.HasEmail {
			norm := p.Email()
			var written string
			switch i % 3 {
			case 0:
				written = strings.ToUpper(norm)
			case 1:
				written = norm
			default:
				written = p.SCLEmail()
			}
			asks = append(asks, ask{p.Tenant(), written, norm})
		}
	}
	if len(asks) == 0 {
		return HTTPResult{}, fmt.Errorf("resolve: nobody with an email")
	}
	r := rand.New(rand.NewPCG(b.cfg.Seed, 2))
	r.Shuffle(len(asks), func(i, j int) { asks[i], asks[j] = asks[j], asks[i] })
	reqs := make([]request, n)
	for i := range reqs {
		a := asks[i%len(asks)]
		reqs[i] = request{tenant: a.tenant, path: "/api/v1/customers/resolve?email=" + url.QueryEscape(a.email)}
	}
	res, err := b.compare(ctx, srv, "resolve by email", "identity_keys index lookup joined to the profile, pgx pool", reqs,
		func(ctx context.Context, i int) error {
			a := asks[i%len(asks)]
			rows, err := raw.Query(ctx, `SELECT `+selectCustomer+` FROM identity_keys k
JOIN customers c ON c.tenant_id = k.tenant_id AND c.id = k.customer_id
WHERE k.tenant_id = $1 AND k.kind = 'email' AND k.value = $2`, a.tenant, a.norm)
			if err != nil {
				return fmt.Errorf("raw resolve: %w", err)
			}
			return drain(rows, true)
		})
	if res.Statuses["404"] > 0 {
		res.Note = fmt.Sprintf("%d answered 404: addresses the CRM set aside or never linked", res.Statuses["404"])
	}
	return res, err
}
