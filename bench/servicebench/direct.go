package servicebench

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/clubcrm/crm/adapters/postgres"
	"github.com/clubcrm/crm/bench/population"
	"github.com/clubcrm/crm/commands"
	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/domain/identity"
	"github.com/clubcrm/crm/eventstore"
)

// DirectResult is the part of the history written without crm serve (at
// the large scale), tenant by tenant in the history's order:
//
//   - activity of people the identity index already links (bookings,
//     payments, messages, opens and clicks, handicap and tier changes,
//     named by a service id the index holds) goes straight into the event
//     store, exactly as the ingest command records it: one
//     customer.Recorded event per envelope, with the same derived id and
//     metadata (checked against what crm serve recorded, see
//     checkDirect), appended by AppendMulti;
//   - everything that needs identity resolution (people joining, contact
//     details) goes through the ingest command handler in-process.
//
// Nothing is projected: the rebuilds that follow project it all.
type DirectResult struct {
	Events   int     `json:"events"`
	Straight int     `json:"straightIntoStore"`
	Command  int     `json:"throughCommand"`
	Seconds  float64 `json:"seconds"`
	PerSec   float64 `json:"perSec"`
	Invalid  int     `json:"invalid"`
}

// directBatch is the envelopes gathered per tenant before they are
// written; directWorkers write at once, each for clubs of its own.
const (
	directBatch   = 500
	directWorkers = 2
)

// serviceKey answers the service id an activity envelope names its
// person by, as the identity index keys it; ok is false for the types that
// carry contact details or open a profile, which need resolving.
func serviceKey(typ string, p *population.Person) (kind identity.Kind, value string, ok bool) {
	switch typ {
	case "teetime.booked", "teetime.completed", "handicap.updated", "competition.entered":
		return identity.TeeTimePlayer, p.PlayerID(), true
	case "payment.received", "payment.failed", "tier.changed", "member.updated":
		return identity.SCLMember, strconv.FormatInt(p.MemberID, 10), true
	case "message.sent", "message.delivered", "email.opened", "email.clicked":
		return identity.MessagingContact, p.ContactID(), true
	}
	return "", "", false
}

// ownKey answers the service id an envelope that opens or updates a
// profile gives its person.
func ownKey(typ string, p *population.Person) (identity.Kind, string, bool) {
	switch typ {
	case "member.created":
		return identity.SCLMember, strconv.FormatInt(p.MemberID, 10), true
	case "player.created":
		return identity.TeeTimePlayer, p.PlayerID(), true
	case "contactPreference.updated":
		return identity.MessagingContact, p.ContactID(), true
	}
	return serviceKey(typ, p)
}

func keyOf(kind identity.Kind, value string) string { return string(kind) + "\x00" + value }

// recordedData answers the event the ingest command appends for an
// activity envelope of a person it knows (commands: cause.eventData).
func recordedData(e population.Event, profile uuid.UUID) (string, eventstore.EventData, error) {
	stream := customer.Stream(profile)
	b, err := json.Marshal(customer.Recorded{
		Upstream: customer.Upstream{ID: e.ID, Type: e.Type, Source: e.Source, OccurredAt: e.OccurredAt},
		Data:     e.Data,
	})
	if err != nil {
		return "", eventstore.EventData{}, fmt.Errorf("encode %s: %w", e.ID, err)
	}
	return stream, eventstore.EventData{
		ID:         eventstore.DeriveID(e.Tenant, e.ID, stream, e.Type),
		Type:       e.Type,
		Data:       b,
		Metadata:   eventstore.Metadata{TenantID: e.Tenant, CorrelationID: e.ID, CausationID: e.ID, Actor: e.Source},
		OccurredAt: e.OccurredAt,
	}, nil
}

// directWriter writes one worker's clubs.
type directWriter struct {
	store  eventstore.Store
	ingest *commands.Ingest
	people []population.Person
	keys   map[int32]map[string]uuid.UUID // per club: service id → profile
	res    DirectResult
}

// write writes one club's envelopes in order, in runs of the same way.
func (w *directWriter) write(ctx context.Context, club int32, batch []population.Event) error {
	keys := w.keys[club]
	if keys == nil {
		keys = map[string]uuid.UUID{}
		w.keys[club] = keys
	}
	var run []population.Event
	straight := false
	flush := func() error {
		if len(run) == 0 {
			return nil
		}
		var err error
		if straight {
			err = w.appendRun(ctx, keys, run)
		} else {
			err = w.commandRun(ctx, keys, run)
		}
		run = run[:0]
		return err
	}
	for _, e := range batch {
		kind, value, ok := serviceKey(e.Type, &w.people[e.Person])
		if ok {
			_, ok = keys[keyOf(kind, value)]
		}
		if ok != straight {
			if err := flush(); err != nil {
				return err
			}
			straight = ok
		}
		run = append(run, e)
	}
	return flush()
}

func (w *directWriter) appendRun(ctx context.Context, keys map[string]uuid.UUID, run []population.Event) error {
	var appends []eventstore.Append
	at := map[string]int{}
	for _, e := range run {
		kind, value, _ := serviceKey(e.Type, &w.people[e.Person])
		stream, data, err := recordedData(e, keys[keyOf(kind, value)])
		if err != nil {
			return err
		}
		i, ok := at[stream]
		if !ok {
			i = len(appends)
			at[stream] = i
			appends = append(appends, eventstore.Append{Stream: stream, Expected: eventstore.Any})
		}
		appends[i].Events = append(appends[i].Events, data)
	}
	if _, err := w.store.AppendMulti(ctx, appends); err != nil {
		return fmt.Errorf("direct write: append: %w", err)
	}
	w.res.Straight += len(run)
	return nil
}

func (w *directWriter) commandRun(ctx context.Context, keys map[string]uuid.UUID, run []population.Event) error {
	envs := make([]commands.Envelope, len(run))
	for i, e := range run {
		envs[i] = commands.Envelope{ID: e.ID, Type: e.Type, Source: e.Source, TenantID: e.Tenant, OccurredAt: e.OccurredAt, Data: e.Data}
	}
	results, err := w.ingest.Handle(ctx, envs)
	if err != nil {
		return fmt.Errorf("direct write: ingest: %w", err)
	}
	for i, r := range results {
		if r.Status == commands.Invalid {
			w.res.Invalid++
			continue
		}
		if r.CustomerID != nil {
			if kind, value, ok := ownKey(run[i].Type, &w.people[run[i].Person]); ok {
				keys[keyOf(kind, value)] = *r.CustomerID
			}
		}
	}
	w.res.Command += len(run)
	return nil
}

// direct writes the rest of the history (see DirectResult).
func (b *bench) direct(ctx context.Context) (DirectResult, error) {
	var res DirectResult
	total := b.pop.Remaining()
	if total <= 0 {
		return res, nil
	}
	store := eventstore.Upcasting(b.store, commands.Schemas())
	index := &postgres.IdentityIndex{Pool: b.pool}
	h := &commands.Ingest{Store: store, Index: index, Inbox: index, Settings: &commands.Settings{Store: store},
		Log: slog.New(slog.DiscardHandler)}
	writers := make([]*directWriter, directWorkers)
	for i := range writers {
		writers[i] = &directWriter{store: store, ingest: h, people: b.pop.People, keys: map[int32]map[string]uuid.UUID{}}
	}
	// What the identity index links so far, by club.
	rows, err := b.pool.Query(ctx, `SELECT tenant_id, kind, value, customer_id FROM identity_keys
WHERE kind IN ('sclMemberId', 'teetimePlayerId', 'messagingContactId')`)
	if err != nil {
		return res, fmt.Errorf("direct write: identity keys: %w", err)
	}
	for rows.Next() {
		var tenant, kind, value string
		var id uuid.UUID
		if err := rows.Scan(&tenant, &kind, &value, &id); err != nil {
			rows.Close()
			return res, fmt.Errorf("direct write: identity keys: %w", err)
		}
		club, err := strconv.Atoi(tenant[len("club-"):])
		if err != nil {
			continue
		}
		w := writers[club%directWorkers]
		if w.keys[int32(club)] == nil {
			w.keys[int32(club)] = map[string]uuid.UUID{}
		}
		w.keys[int32(club)][keyOf(identity.Kind(kind), value)] = id
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return res, fmt.Errorf("direct write: identity keys: %w", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type job struct {
		club  int32
		batch []population.Event
	}
	work := make([]chan job, directWorkers)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	written := 0
	prog := b.progress("write the rest of the history straight into the event store", total)
	for i := range work {
		work[i] = make(chan job, 4)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work[i] {
				err := writers[i].write(ctx, j.club, j.batch)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
					cancel()
				}
				written += len(j.batch)
				prog.set(written)
				mu.Unlock()
			}
		}()
	}
	began := time.Now()
	buffers := map[int32][]population.Event{}
	send := func(club int32) bool {
		select {
		case work[int(club)%directWorkers] <- job{club, buffers[club]}:
			buffers[club] = nil
			return true
		case <-ctx.Done():
			return false
		}
	}
	for ctx.Err() == nil {
		e, ok := b.pop.Next()
		if !ok {
			break
		}
		club := b.pop.People[e.Person].Club
		buffers[club] = append(buffers[club], e)
		if len(buffers[club]) == directBatch && !send(club) {
			break
		}
	}
	for club := range int32(b.pop.Clubs) {
		if len(buffers[club]) > 0 && !send(club) {
			break
		}
	}
	for _, ch := range work {
		close(ch)
	}
	wg.Wait()
	prog.done()
	if firstErr != nil {
		return res, firstErr
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	for _, w := range writers {
		res.Straight += w.res.Straight
		res.Command += w.res.Command
		res.Invalid += w.res.Invalid
	}
	res.Events = written
	res.Seconds = time.Since(began).Seconds()
	res.PerSec = float64(written) / res.Seconds
	return res, nil
}

// checkDirect compares what crm serve recorded for an activity envelope of
// the ingest phase with what the direct write would append for it, so a
// change to how the command records events cannot make the directly
// written history quietly differ from the service's.
func (b *bench) checkDirect(ctx context.Context, e population.Event) error {
	rows, err := b.pool.Query(ctx, `SELECT stream, id, type, data::text, metadata::text, occurred_at FROM events
WHERE metadata->>'causationId' = $1 AND tenant_id = $2`, e.ID, e.Tenant)
	if err != nil {
		return fmt.Errorf("check direct write: %w", err)
	}
	type stored struct {
		stream, typ, data, meta string
		id                      uuid.UUID
		occurred                time.Time
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (stored, error) {
		var s stored
		return s, r.Scan(&s.stream, &s.id, &s.typ, &s.data, &s.meta, &s.occurred)
	})
	if err != nil {
		return fmt.Errorf("check direct write: %w", err)
	}
	if len(got) != 1 {
		return fmt.Errorf("check direct write: crm serve recorded %d events for %s %s, the direct write would record 1", len(got), e.Type, e.ID)
	}
	g := got[0]
	id, err := uuid.Parse(g.stream[len(customer.Category)+1:])
	if err != nil {
		return fmt.Errorf("check direct write: stream %s: %w", g.stream, err)
	}
	stream, want, err := recordedData(e, id)
	if err != nil {
		return err
	}
	var wantMeta eventstore.Metadata
	if err := json.Unmarshal([]byte(g.meta), &wantMeta); err != nil {
		return fmt.Errorf("check direct write: %w", err)
	}
	same := stream == g.stream && want.ID == g.id && want.Type == g.typ && want.OccurredAt.Equal(g.occurred) &&
		jsonEqual(want.Data, []byte(g.data)) && wantMeta.TenantID == want.Metadata.TenantID &&
		wantMeta.CorrelationID == want.Metadata.CorrelationID && wantMeta.CausationID == want.Metadata.CausationID &&
		wantMeta.Actor == want.Metadata.Actor
	if !same {
		return fmt.Errorf("check direct write: crm serve recorded %s %s as %s %s %s %s; the direct write would append %s %s %s %s %+v",
			e.Type, e.ID, g.stream, g.id, g.data, g.meta, stream, want.ID, want.Data, want.Type, want.Metadata)
	}
	return nil
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return string(xb) == string(yb)
}
