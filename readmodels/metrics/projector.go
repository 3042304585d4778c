// Package metrics keeps each profile's denormalised activity metrics
// (specification section 4): lastActivityAt, activityCount30d,
// bookingCount30d and lifetimeValue. The customers query joins them in by
// (tenant_id, customer_id); the tables are this package's own, so
// rebuilding one read model never wipes another's columns.
//
// What counts. An activity counts when timeline.Counts says the person did
// it or took part (bookings, rounds, payments, opens and clicks, visits...),
// not what the club did on its own (messages sent, notes, tags, merges).
// lastActivityAt is the latest occurredAt of those; activityCount30d counts
// them and bookingCount30d the tee times booked, on the days (UTC) they
// occurred, over the 30 days ending today: today and the 29 before, plus
// any dated ahead. Events that arrive late count on the day they happened.
//
// Rolling windows. Counts per profile per day are kept in
// customer_activity_days; the 30-day sums are recomputed from them for
// every profile a batch touches, and once a day for every profile whose
// window is not empty by Job (run by `crm serve` under the scheduler role),
// so they move as days pass with no new events. A row whose windows are
// already today's is left alone by a batch that counted nothing for it (a
// message the club sent, a tag): rewriting the same values would cost a
// new row version and its WAL for nothing.
//
// Lifetime value. payment.received amounts are summed per currency in
// minor units (cents). A club rarely takes more than one currency, and no
// exchange rate is applied: a tenant's main currency is the one most of
// its payments were made in (ties: the larger total, then the code), and
// lifetimeValue is the profile's total in that currency, with
// lifetimeValueCurrency naming it. Payments in other currencies stay in
// the per-currency totals. A payment with no currency is kept under XXX
// (ISO 4217: no currency), which is never the main one. Failed payments
// count for nothing. A profile the metrics have not seen yet has a null
// lifetimeValue; one seen with no payments, 0.
package metrics

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/segmentio/encoding/json"

	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/domain/timeline"
	"github.com/clubcrm/crm/eventstore"
	"github.com/clubcrm/crm/projections"
)

// Name is the projector's name and checkpoint.
const Name = "metrics"

// Tables the projector owns.
const (
	MetricsTable    = "customer_metrics"
	DaysTable       = "customer_activity_days"
	CurrenciesTable = "tenant_currencies"
)

// Window is the length of the rolling windows, in days.
const Window = 30

// NoCurrency keeps payments that named no currency.
const NoCurrency = "XXX"

// Projector keeps the metrics tables from the customer-* streams. Clock
// answers now, for the day the 30-day windows end; nil means time.Now.
type Projector struct {
	Clock func() time.Time
}

var _ projections.IndexDeferrer = Projector{}

// Name implements projections.Projector.
func (Projector) Name() string { return Name }

// Tables implements projections.Projector.
func (Projector) Tables() []string { return []string{MetricsTable, DaysTable, CurrenciesTable} }

// DeferredIndexes implements projections.IndexDeferrer: Apply reads and
// writes rows by primary key only; the daily job's index is built once at
// the end of a rebuild.
func (Projector) DeferredIndexes() []string { return []string{"customer_metrics_due"} }

// Filter implements projections.Projector.
func (Projector) Filter() eventstore.Filter {
	return eventstore.Filter{Categories: []string{customer.Category}}
}

// Today answers the UTC date of now, as a time at midnight UTC.
func Today(now time.Time) time.Time {
	y, m, d := now.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

func (p Projector) today() time.Time {
	if p.Clock == nil {
		return Today(time.Now())
	}
	return Today(p.Clock())
}

type key struct {
	tenant string
	id     uuid.UUID
}

type dayKey struct {
	key
	day time.Time
}

type counts struct{ activities, bookings int }

type currencyKey struct{ tenant, currency string }

type money struct {
	payments int64
	cents    int64
}

// profile is a customer_metrics row being updated.
type profile struct {
	last     *time.Time
	lifetime map[string]int64
	gone     bool // merged away: the row is deleted
	// existed: the row was there before the batch; touched: the batch
	// holds an event of the profile other than its closing by a merge,
	// which alone never opens a row; moved: the batch counted an
	// activity or a payment, or absorbed a profile.
	existed, touched, moved bool
	// asOf is the day the row's windows were summed as of.
	asOf time.Time
}

// Apply implements projections.Projector.
func (p Projector) Apply(ctx context.Context, tx pgx.Tx, tables projections.Tables, events []eventstore.Event) error {
	var keys []key
	seen := map[key]bool{}
	note := func(k key) {
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	decoded := make([]any, len(events))
	for i, e := range events {
		k, ok := keyOf(e)
		if !ok {
			continue
		}
		v, err := projections.Decode(e, customer.Decode)
		if err != nil {
			return fmt.Errorf("project %s version %d: %w", e.Stream, e.Version, err)
		}
		decoded[i] = v
		note(k)
		if m, ok := v.(*customer.Merged); ok {
			note(key{k.tenant, m.SourceID})
		}
	}
	if len(keys) == 0 {
		return nil
	}
	rows, err := load(ctx, tx, tables.Ident(MetricsTable), keys)
	if err != nil {
		return err
	}
	days := tables.Ident(DaysTable)
	b := &pgx.Batch{}
	pending := map[dayKey]*counts{}
	var order []dayKey
	flush := func() {
		if len(order) == 0 {
			return
		}
		queueDays(b, days, order, pending)
		pending, order = map[dayKey]*counts{}, nil
	}
	currencies := map[currencyKey]*money{}
	var curOrder []currencyKey
	for i, e := range events {
		v := decoded[i]
		if v == nil {
			continue
		}
		k, _ := keyOf(e)
		r := rows[k]
		if _, closing := v.(*customer.MergedInto); !closing {
			r.touched = true
		}
		if m, ok := v.(*customer.Merged); ok && m.SourceID != k.id {
			// The survivor takes the absorbed profile's days and totals.
			flush()
			src := rows[key{k.tenant, m.SourceID}]
			b.Queue(fmt.Sprintf(`INSERT INTO %[1]s AS d (tenant_id, customer_id, day, activities, bookings)
SELECT tenant_id, $3, day, activities, bookings FROM %[1]s WHERE tenant_id = $1 AND customer_id = $2
ON CONFLICT (tenant_id, customer_id, day) DO UPDATE SET activities = d.activities + excluded.activities, bookings = d.bookings + excluded.bookings`, days),
				k.tenant, m.SourceID, k.id)
			b.Queue(fmt.Sprintf(`DELETE FROM %s WHERE tenant_id = $1 AND customer_id = $2`, days), k.tenant, m.SourceID)
			r.last = later(r.last, src.last)
			for c, n := range src.lifetime {
				r.lifetime[c] += n
			}
			src.gone, src.last, src.lifetime = true, nil, map[string]int64{}
			r.gone, r.moved = false, true
		}
		typ, cat, occurred, ok := timeline.Classify(timeline.Event{ID: e.ID, Type: e.Type, Data: v, Actor: e.Metadata.Actor, OccurredAt: e.OccurredAt})
		if !ok {
			continue
		}
		a := timeline.Activity{Type: typ, Category: cat, OccurredAt: occurred}
		if a.Type == timeline.PaymentReceived {
			if cents, cur, ok := payment(v); ok {
				r.lifetime[cur] += cents
				r.moved = true
				ck := currencyKey{k.tenant, cur}
				if currencies[ck] == nil {
					currencies[ck] = &money{}
					curOrder = append(curOrder, ck)
				}
				currencies[ck].payments++
				currencies[ck].cents += cents
			}
		}
		if !timeline.Counts(a) {
			continue
		}
		at := a.OccurredAt.UTC()
		r.last, r.moved = later(r.last, &at), true
		dk := dayKey{k, Today(at)}
		c := pending[dk]
		if c == nil {
			c = &counts{}
			pending[dk] = c
			order = append(order, dk)
		}
		c.activities++
		if timeline.IsBooking(a) {
			c.bookings++
		}
	}
	flush()

	var upTenants []string
	var upIDs []uuid.UUID
	var upLast []*time.Time
	var upLife []string
	var goneTenants []string
	var goneIDs []uuid.UUID
	today := p.today()
	for _, k := range keys {
		r := rows[k]
		if r.gone {
			goneTenants, goneIDs = append(goneTenants, k.tenant), append(goneIDs, k.id)
			continue
		}
		if !r.existed && !r.touched {
			continue
		}
		if r.existed && !r.moved && r.asOf.Equal(today) {
			// Nothing the row holds moved and its windows are today's:
			// the upsert would write the same values again.
			continue
		}
		life, err := json.Marshal(r.lifetime)
		if err != nil {
			return fmt.Errorf("encode lifetime of %s: %w", k.id, err)
		}
		upTenants, upIDs, upLast, upLife = append(upTenants, k.tenant), append(upIDs, k.id), append(upLast, r.last), append(upLife, string(life))
	}
	if len(goneIDs) > 0 {
		b.Queue(fmt.Sprintf(`DELETE FROM %s WHERE (tenant_id, customer_id) IN (SELECT * FROM unnest($1::text[], $2::uuid[]))`, tables.Ident(MetricsTable)),
			goneTenants, goneIDs)
	}
	if len(upIDs) > 0 {
		// The sums read the day rows this batch wrote: they run after them
		// in the same transaction.
		b.Queue(upsertSQL(tables.Ident(MetricsTable), days), upTenants, upIDs, upLast, upLife, today)
	}
	if len(curOrder) > 0 {
		tenants, codes := make([]string, len(curOrder)), make([]string, len(curOrder))
		pays, cents := make([]int64, len(curOrder)), make([]int64, len(curOrder))
		for i, ck := range curOrder {
			tenants[i], codes[i], pays[i], cents[i] = ck.tenant, ck.currency, currencies[ck].payments, currencies[ck].cents
		}
		b.Queue(fmt.Sprintf(`INSERT INTO %[1]s AS c (tenant_id, currency, payments, cents)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])
ON CONFLICT (tenant_id, currency) DO UPDATE SET payments = c.payments + excluded.payments, cents = c.cents + excluded.cents`, tables.Ident(CurrenciesTable)),
			tenants, codes, pays, cents)
	}
	return send(ctx, tx, b)
}

// upsertSQL writes metrics rows, computing the 30-day sums from the day
// rows as of $5.
func upsertSQL(table, days string) string {
	return fmt.Sprintf(`INSERT INTO %[1]s AS m (tenant_id, customer_id, last_activity_at, lifetime_cents, activity_count_30d, booking_count_30d, windows_as_of, updated_at)
SELECT r.t, r.c, r.l, r.lc::jsonb, coalesce(w.activities, 0), coalesce(w.bookings, 0), $5::date, now()
FROM unnest($1::text[], $2::uuid[], $3::timestamptz[], $4::text[]) AS r(t, c, l, lc)
LEFT JOIN LATERAL (
    SELECT sum(d.activities)::int AS activities, sum(d.bookings)::int AS bookings FROM %[2]s d
    WHERE d.tenant_id = r.t AND d.customer_id = r.c AND d.day > $5::date - %[3]d
) w ON true
ON CONFLICT (tenant_id, customer_id) DO UPDATE SET last_activity_at = excluded.last_activity_at, lifetime_cents = excluded.lifetime_cents,
    activity_count_30d = excluded.activity_count_30d, booking_count_30d = excluded.booking_count_30d,
    windows_as_of = excluded.windows_as_of, updated_at = excluded.updated_at`, table, days, Window)
}

func queueDays(b *pgx.Batch, table string, order []dayKey, pending map[dayKey]*counts) {
	n := len(order)
	tenants, ids, ds := make([]string, n), make([]uuid.UUID, n), make([]time.Time, n)
	acts, books := make([]int32, n), make([]int32, n)
	for i, dk := range order {
		tenants[i], ids[i], ds[i] = dk.tenant, dk.id, dk.day
		acts[i], books[i] = int32(pending[dk].activities), int32(pending[dk].bookings)
	}
	b.Queue(fmt.Sprintf(`INSERT INTO %s AS d (tenant_id, customer_id, day, activities, bookings)
SELECT * FROM unnest($1::text[], $2::uuid[], $3::date[], $4::int[], $5::int[])
ON CONFLICT (tenant_id, customer_id, day) DO UPDATE SET activities = d.activities + excluded.activities, bookings = d.bookings + excluded.bookings`, table),
		tenants, ids, ds, acts, books)
}

// payment answers a received payment's amount and currency.
func payment(v any) (int64, string, bool) {
	r, ok := v.(*customer.Recorded)
	if !ok {
		return 0, "", false
	}
	d, err := r.Parse()
	if err != nil {
		return 0, "", false
	}
	pay, ok := d.(*customer.Payment)
	if !ok || pay.AmountCents == nil {
		return 0, "", false
	}
	cur := strings.ToUpper(strings.TrimSpace(pay.Currency))
	if cur == "" {
		cur = NoCurrency
	}
	return *pay.AmountCents, cur, true
}

func later(a, b *time.Time) *time.Time {
	switch {
	case a == nil:
		return b
	case b == nil || !b.After(*a):
		return a
	}
	return b
}

func keyOf(e eventstore.Event) (key, bool) {
	id, ok := customer.StreamID(e.Stream)
	if !ok {
		return key{}, false
	}
	return key{tenant: e.Metadata.TenantID, id: id}, true
}

func load(ctx context.Context, tx pgx.Tx, table string, keys []key) (map[key]*profile, error) {
	tenants, ids := make([]string, len(keys)), make([]uuid.UUID, len(keys))
	out := make(map[key]*profile, len(keys))
	for i, k := range keys {
		tenants[i], ids[i] = k.tenant, k.id
		out[k] = &profile{lifetime: map[string]int64{}}
	}
	rows, err := tx.Query(ctx, fmt.Sprintf(`SELECT m.tenant_id, m.customer_id, m.last_activity_at, m.lifetime_cents, m.windows_as_of FROM %s m
		WHERE (m.tenant_id, m.customer_id) IN (SELECT * FROM unnest($1::text[], $2::uuid[]))`, table), tenants, ids)
	if err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k key
		var last *time.Time
		var life []byte
		var asOf time.Time
		if err := rows.Scan(&k.tenant, &k.id, &last, &life, &asOf); err != nil {
			return nil, fmt.Errorf("read metrics: %w", err)
		}
		p := out[k]
		p.last, p.existed, p.asOf = last, true, asOf.UTC()
		if err := json.Unmarshal(life, &p.lifetime); err != nil {
			return nil, fmt.Errorf("decode lifetime of %s: %w", k.id, err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	return out, nil
}

func send(ctx context.Context, tx pgx.Tx, b *pgx.Batch) error {
	if b.Len() == 0 {
		return nil
	}
	br := tx.SendBatch(ctx, b)
	for i := 0; i < b.Len(); i++ {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return fmt.Errorf("write metrics read model (statement %d of %d): %w", i+1, b.Len(), err)
		}
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("write metrics read model: %w", err)
	}
	return nil
}
