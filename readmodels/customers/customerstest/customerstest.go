// Package customerstest builds customer profiles for tests the way the
// command side does: the aggregate decides, the events go to the real
// PostgreSQL event store with the metadata commands write, the identity
// index learns the keys, and the customers projector folds the log into the
// read model.
package customerstest

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/segmentio/encoding/json"

	"github.com/clubcrm/crm/adapters/postgres/pgtest"
	"github.com/clubcrm/crm/commands"
	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/domain/identity"
	"github.com/clubcrm/crm/eventstore"
	pgstore "github.com/clubcrm/crm/eventstore/postgres"
	"github.com/clubcrm/crm/projections"
	"github.com/clubcrm/crm/readmodels/customers"
)

// Env is one test's database, event store and projection position.
type Env struct {
	T     testing.TB
	Pool  *pgxpool.Pool
	Store *pgstore.Store

	causes int
	pos    eventstore.Position // of the last event projected
	all    eventstore.Position // of the last event Apply applied
}

// New answers an Env on a fresh database.
func New(t testing.TB) *Env {
	t.Helper()
	pool, _ := pgtest.New(t)
	store := pgstore.New(pool)
	t.Cleanup(func() { store.Close() })
	return &Env{T: t, Pool: pool, Store: store}
}

func (e *Env) cause() string {
	e.causes++
	return "cause-" + strconv.Itoa(e.causes)
}

// Ingest records an upstream event (its type and data JSON) on p, or on a
// new profile of tenant when p is nil, linking every key the event names
// that the profile lacks, and flagging conflicts for review. It answers the
// profile reloaded from the store.
func (e *Env) Ingest(tenant string, p *customer.Profile, typ, data string, conflicts ...identity.Conflict) *customer.Profile {
	e.T.Helper()
	return e.IngestAt(tenant, p, typ, data, time.Now().UTC(), conflicts...)
}

// IngestAt is Ingest of an upstream event that occurred at at.
func (e *Env) IngestAt(tenant string, p *customer.Profile, typ, data string, at time.Time, conflicts ...identity.Conflict) *customer.Profile {
	e.T.Helper()
	if p == nil {
		p = &customer.Profile{ID: uuid.New(), TenantID: tenant}
	}
	v, err := customer.ParseUpstream(typ, json.RawMessage(data))
	e.check(err)
	person := customer.PersonOf(v)
	x := extract(person)
	d := identity.Decision{Customer: p.ID, MatchedBy: "test", Confidence: 100, Conflicts: conflicts}
	if !p.Exists() {
		d = identity.Decision{MatchedBy: "new", Conflicts: conflicts}
	}
	for _, k := range x.Keys {
		if !p.Holds(k) {
			d.Link = append(d.Link, k)
		}
	}
	id := e.cause()
	evs, err := p.Ingest(customer.Ingestion{
		Upstream: customer.Upstream{ID: id, Type: typ, Source: customer.SourceOf(typ), OccurredAt: at},
		Data:     json.RawMessage(data), Person: person, Extracted: x, Decision: d,
	})
	e.check(err)
	return e.Record(p, evs, customer.SourceOf(typ), id)
}

// Record appends events p decided to its stream, indexes the keys it holds
// afterwards, and answers it reloaded.
func (e *Env) Record(p *customer.Profile, evs []customer.Event, actor, causedBy string) *customer.Profile {
	e.T.Helper()
	e.appendAll([]eventstore.Append{e.appendOf(p, evs, actor, causedBy)})
	return e.reload(p)
}

// Merge merges source into survivor as a staff member would, moving the
// source's keys in the index, and answers both reloaded.
func (e *Env) Merge(survivor, source *customer.Profile, actor string) (*customer.Profile, *customer.Profile) {
	e.T.Helper()
	id := e.cause()
	s, c, err := survivor.Merge(source, actor, id)
	e.check(err)
	e.appendAll([]eventstore.Append{e.appendOf(survivor, s, actor, id), e.appendOf(source, c, actor, id)})
	_, err = e.Pool.Exec(context.Background(), `
		WITH moved AS (DELETE FROM identity_keys WHERE tenant_id = $1 AND customer_id = $2 RETURNING kind, value, caused_by)
		INSERT INTO identity_keys (tenant_id, kind, value, customer_id, caused_by)
		SELECT $1, kind, value, $3, caused_by FROM moved ON CONFLICT DO NOTHING`, survivor.TenantID, source.ID, survivor.ID)
	e.check(err)
	return e.reload(survivor), e.reload(source)
}

// Register opens profiles for each of people at once (one append, so they
// share their recorded time), each from member.created data.
func (e *Env) Register(tenant string, data ...string) []*customer.Profile {
	e.T.Helper()
	var appends []eventstore.Append
	var out []*customer.Profile
	id := e.cause()
	for _, d := range data {
		p := &customer.Profile{ID: uuid.New(), TenantID: tenant}
		v, err := customer.ParseUpstream("member.created", json.RawMessage(d))
		e.check(err)
		person := customer.PersonOf(v)
		x := extract(person)
		evs, err := p.Ingest(customer.Ingestion{
			Upstream: customer.Upstream{ID: id + "-" + p.ID.String(), Type: "member.created", Source: "scl", OccurredAt: time.Now().UTC()},
			Data:     json.RawMessage(d), Person: person, Extracted: x, Decision: identity.Decision{MatchedBy: "new", Link: x.Keys},
		})
		e.check(err)
		appends = append(appends, e.appendOf(p, evs, "scl", id+"-"+p.ID.String()))
		out = append(out, p)
	}
	e.appendAll(appends)
	for i, p := range out {
		out[i] = e.reload(p)
	}
	return out
}

func extract(p customer.Person) identity.Extracted {
	return identity.Extract(identity.Raw{AuthUserID: p.AuthUserID, SCLMemberID: p.SCLMemberID, TeeTimePlayerID: p.TeeTimePlayerID,
		MessagingContactID: p.MessagingContactID, Email: p.Email, Phone: p.Phone, Country: p.Country}, identity.DefaultSettings())
}

func (e *Env) appendOf(p *customer.Profile, evs []customer.Event, actor, causedBy string) eventstore.Append {
	stream := customer.Stream(p.ID)
	a := eventstore.Append{Stream: stream, Expected: eventstore.Exact(p.Version)}
	for _, ev := range evs {
		b, err := json.Marshal(ev.Data)
		e.check(err)
		a.Events = append(a.Events, eventstore.EventData{
			ID:         eventstore.DeriveID(p.TenantID, causedBy, stream, ev.Type),
			Type:       ev.Type,
			Data:       b,
			Metadata:   eventstore.Metadata{TenantID: p.TenantID, CorrelationID: causedBy, CausationID: causedBy, Actor: actor, SchemaVersion: 1},
			OccurredAt: time.Now().UTC(),
		})
	}
	return a
}

func (e *Env) appendAll(appends []eventstore.Append) {
	e.T.Helper()
	_, err := e.Store.AppendMulti(context.Background(), appends)
	e.check(err)
}

// reload folds p from the store and indexes its keys, as the command side
// reserves them.
func (e *Env) reload(p *customer.Profile) *customer.Profile {
	e.T.Helper()
	got, err := commands.LoadProfile(context.Background(), e.Store, p.TenantID, p.ID)
	e.check(err)
	var kinds, values []string
	for _, k := range got.IndexedKeys() {
		kinds, values = append(kinds, string(k.Kind)), append(values, k.Value)
	}
	if got.Status != customer.StatusMerged && len(kinds) > 0 {
		_, err = e.Pool.Exec(context.Background(), `
			INSERT INTO identity_keys (tenant_id, kind, value, customer_id, caused_by)
			SELECT $1, k, v, $2, 'test' FROM unnest($3::text[], $4::text[]) AS r(k, v)
			ON CONFLICT DO NOTHING`, got.TenantID, got.ID, kinds, values)
		e.check(err)
	}
	return got
}

// Project runs the customers projector over every event appended since the
// last call, in batches of up to size events (all at once when size < 1),
// one transaction per batch as the projections runtime does.
func (e *Env) Project(size int) {
	e.T.Helper()
	tables := projections.Tables{"customers": "customers", "duplicate_candidates": "duplicate_candidates"}
	pending := e.readLog()
	if size < 1 {
		size = max(len(pending), 1)
	}
	for len(pending) > 0 {
		n := min(size, len(pending))
		e.ApplyBatch(tables, pending[:n])
		pending = pending[n:]
	}
}

// readLog answers the customer events after the last one read, in log
// order. It reads the events table itself rather than Store.ReadAll: the
// store holds back events while any transaction on the server that began
// before them is still open, and other tests (or benchmarks) sharing the
// server can keep one open for seconds. Every append here has committed
// before it returns, so nothing can still slip in before what is read.
func (e *Env) readLog() []eventstore.Event {
	e.T.Helper()
	return e.read(&e.pos, customers.Projector{}.Filter())
}

// read answers the events after *from that pass filter, in log order, and
// moves *from past every event read.
func (e *Env) read(from *eventstore.Position, filter eventstore.Filter) []eventstore.Event {
	e.T.Helper()
	rows, err := e.Pool.Query(context.Background(), `
		SELECT tx_id, seq, id, stream, version, type, data, metadata, occurred_at, recorded_at
		FROM events WHERE (tx_id, seq) > ($1::xid8, $2::bigint) ORDER BY tx_id, seq`, from.Commit, int64(from.Prepare))
	e.check(err)
	defer rows.Close()
	var out []eventstore.Event
	for rows.Next() {
		var ev eventstore.Event
		var version int64
		var data, meta []byte
		e.check(rows.Scan(&ev.Position.Commit, &ev.Position.Prepare, &ev.ID, &ev.Stream, &version, &ev.Type, &data, &meta, &ev.OccurredAt, &ev.RecordedAt))
		ev.Version = uint64(version)
		if data != nil {
			ev.Data = json.RawMessage(data)
		}
		e.check(json.Unmarshal(meta, &ev.Metadata))
		ev.OccurredAt, ev.RecordedAt = ev.OccurredAt.UTC(), ev.RecordedAt.UTC()
		*from = ev.Position
		if filter.Match(ev) {
			out = append(out, ev)
		}
	}
	e.check(rows.Err())
	return out
}

// Apply runs projectors, in the order given, over every event of the log
// (of any stream) appended since the last Apply, each projector in one
// transaction with the events its filter passes: the order the runtime's
// Follower wait guarantees when a later projector follows an earlier one.
func (e *Env) Apply(ps ...projections.Projector) {
	e.T.Helper()
	ctx := context.Background()
	evs := e.read(&e.all, eventstore.Filter{})
	for _, p := range ps {
		var matching []eventstore.Event
		for _, ev := range evs {
			if p.Filter().Match(ev) {
				matching = append(matching, ev)
			}
		}
		if len(matching) == 0 {
			continue
		}
		tables := projections.Tables{}
		for _, t := range p.Tables() {
			tables[t] = t
		}
		e.check(pgx.BeginFunc(ctx, e.Pool, func(tx pgx.Tx) error { return p.Apply(ctx, tx, tables, matching) }))
	}
}

// ApplyBatch applies events with the projector in one transaction.
func (e *Env) ApplyBatch(tables projections.Tables, events []eventstore.Event) {
	e.T.Helper()
	ctx := context.Background()
	err := pgx.BeginFunc(ctx, e.Pool, func(tx pgx.Tx) error {
		return customers.Projector{}.Apply(ctx, tx, tables, events)
	})
	e.check(err)
}

// Events answers every customer event of the log, in log order.
func (e *Env) Events() []eventstore.Event {
	e.T.Helper()
	pos := e.pos
	e.pos = eventstore.Start
	defer func() { e.pos = pos }()
	return e.readLog()
}

func (e *Env) check(err error) {
	e.T.Helper()
	if err != nil {
		e.T.Fatalf("customerstest: %v", err)
	}
}
