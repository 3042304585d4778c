package commands

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/domain/identity"
	"github.com/clubcrm/crm/eventstore"
)

// Outcome says what became of one upstream event.
type Outcome string

// Outcomes.
const (
	Recorded  Outcome = "recorded"  // turned into domain events now
	Duplicate Outcome = "duplicate" // processed before: nothing changed
	Invalid   Outcome = "invalid"   // refused: see Error (dead-lettered when it came by stream)
)

// Result is the outcome of one upstream event.
type Result struct {
	ID         string              `json:"id"`
	Status     Outcome             `json:"status"`
	CustomerID *uuid.UUID          `json:"customerId,omitempty"`
	MatchedBy  string              `json:"matchedBy,omitempty"`
	Confidence int                 `json:"confidence,omitempty"`
	Stream     string              `json:"stream,omitempty"`
	Error      string              `json:"error,omitempty"`
	Position   eventstore.Position `json:"-"`
}

// Ingest turns upstream events into domain events on the people they
// concern. It works on batches: one identity transaction and one append
// per tenant per batch, so throughput comes from batching, not from
// skipping a guarantee.
type Ingest struct {
	Store    eventstore.Store
	Index    IdentityIndex
	Inbox    Inbox
	Settings SettingsSource
	Log      *slog.Logger
}

// Handle processes a batch. It answers a result per envelope, in order;
// an error means nothing of the batch may be taken as done (the caller
// retries or redelivers: every step is idempotent).
func (h *Ingest) Handle(ctx context.Context, batch []Envelope) ([]Result, error) {
	results := make([]Result, len(batch))
	byTenant := map[string][]int{}
	var tenants []string
	for i := range batch {
		e := &batch[i]
		results[i] = Result{ID: e.ID}
		if err := e.Validate(); err != nil {
			results[i].Status, results[i].Error = Invalid, err.Error()
			continue
		}
		if e.OccurredAt.IsZero() {
			e.OccurredAt = time.Now().UTC()
		}
		if _, ok := byTenant[e.TenantID]; !ok {
			tenants = append(tenants, e.TenantID)
		}
		byTenant[e.TenantID] = append(byTenant[e.TenantID], i)
	}
	for _, t := range tenants {
		if err := h.handleTenant(ctx, t, batch, byTenant[t], results); err != nil {
			return nil, fmt.Errorf("tenant %s: %w", t, err)
		}
	}
	return results, nil
}

// plan is what one envelope will do.
type plan struct {
	idx      int
	stream   string
	person   customer.Person
	extract  identity.Extracted
	decision identity.Decision
	customer uuid.UUID
}

func (h *Ingest) handleTenant(ctx context.Context, tenant string, batch []Envelope, idxs []int, results []Result) error {
	ids := make([]string, len(idxs))
	for n, i := range idxs {
		ids[n] = batch[i].ID
	}
	seen, err := h.Inbox.Seen(ctx, tenant, ids)
	if err != nil {
		return err
	}
	var fresh []int
	inBatch := map[string]bool{}
	for _, i := range idxs {
		if stream, ok := seen[batch[i].ID]; ok || inBatch[batch[i].ID] {
			results[i].Status, results[i].Stream = Duplicate, stream
			continue
		}
		inBatch[batch[i].ID] = true
		fresh = append(fresh, i)
	}
	if len(fresh) == 0 {
		return nil
	}
	settings, err := h.Settings.IdentitySettings(ctx, tenant)
	if err != nil {
		return err
	}
	return retryConflicts(ctx, func() error {
		return h.attempt(ctx, tenant, settings, batch, fresh, results)
	})
}

func (h *Ingest) attempt(ctx context.Context, tenant string, settings identity.Settings, batch []Envelope, fresh []int, results []Result) error {
	var plans []plan
	var people []int // indexes into plans of events about a person
	for _, i := range fresh {
		e := batch[i]
		p := plan{idx: i}
		if e.Type == TypeCompetitionPublished {
			c, _ := parseCompetition(e.Data)
			p.stream = eventstore.StreamName(CompetitionCategory, eventstore.DeriveID(tenant, "competition", c.CompetitionID).String())
		} else {
			v, _ := customer.ParseUpstream(e.Type, e.Data) // validated above
			p.person = customer.PersonOf(v)
			p.extract = identity.Extract(identity.Raw{
				AuthUserID: p.person.AuthUserID, SCLMemberID: p.person.SCLMemberID, TeeTimePlayerID: p.person.TeeTimePlayerID,
				MessagingContactID: p.person.MessagingContactID, Email: p.person.Email, Phone: p.person.Phone, Country: p.person.Country,
			}, settings)
			people = append(people, len(plans))
		}
		plans = append(plans, p)
	}

	// Decide who each person is, reserving keys as we go.
	reqs := make([]ResolveRequest, len(people))
	for n, pi := range people {
		p := plans[pi]
		reqs[n] = ResolveRequest{Keys: p.extract.Keys, Email: p.extract.Email, Name: identity.Name{First: p.person.FirstName, Last: p.person.LastName}, CausedBy: batch[p.idx].ID}
	}
	if len(reqs) > 0 {
		err := h.Index.Resolve(ctx, tenant, reqs, func(n int, c identity.Candidates) (uuid.UUID, []identity.Key) {
			p := &plans[people[n]]
			p.decision = identity.Resolve(reqs[n].Keys, c, reqs[n].Name, settings)
			p.customer = p.decision.Customer
			if p.decision.New() {
				if len(p.extract.Keys) == 0 {
					// Nothing usable to match on: the same upstream id
					// must still land on the same profile when redelivered.
					p.customer = eventstore.DeriveID(tenant, "upstream", batch[p.idx].ID)
				} else {
					p.customer = eventstore.DeriveID(tenant, "customer", firstKey(p.extract.Keys).String())
				}
			}
			return p.customer, p.decision.Link
		})
		if err != nil {
			return fmt.Errorf("resolve identities: %w", err)
		}
	}

	// Load each profile once, let it decide in order, append per stream.
	profiles := map[uuid.UUID]*customer.Profile{}
	loaded := map[uuid.UUID]uint64{}
	var order []string
	pending := map[string][]eventstore.EventData{}
	expected := map[string]eventstore.Expected{}
	for n := range plans {
		p := &plans[n]
		e := batch[p.idx]
		c := cause{id: e.ID, tenant: tenant, actor: e.Source, occurredAt: e.OccurredAt}
		var evs []customer.Event
		if p.person == (customer.Person{}) {
			evs = []customer.Event{{Type: e.Type, Data: &customer.Recorded{Upstream: upstreamOf(e), Data: e.Data}}}
			if _, ok := expected[p.stream]; !ok {
				expected[p.stream] = eventstore.Any
			}
		} else {
			prof, err := h.profile(ctx, tenant, p.customer, profiles, loaded)
			if err != nil {
				return err
			}
			p.customer, p.stream = prof.ID, customer.Stream(prof.ID)
			evs, err = prof.Ingest(customer.Ingestion{Upstream: upstreamOf(e), Data: e.Data, Person: p.person, Extracted: p.extract, Decision: p.decision})
			if err != nil {
				return fmt.Errorf("ingest %s into %s: %w", e.ID, p.stream, err)
			}
			if err := applyAll(prof, evs, e.OccurredAt); err != nil {
				return err
			}
			if _, ok := expected[p.stream]; !ok {
				expected[p.stream] = eventstore.Exact(loaded[prof.ID])
			}
		}
		data, err := c.eventData(p.stream, evs)
		if err != nil {
			return err
		}
		if _, ok := pending[p.stream]; !ok {
			order = append(order, p.stream)
		}
		pending[p.stream] = append(pending[p.stream], data...)
	}
	appends := make([]eventstore.Append, len(order))
	for n, s := range order {
		appends[n] = eventstore.Append{Stream: s, Expected: expected[s], Events: pending[s]}
	}
	res, err := h.Store.AppendMulti(ctx, appends)
	if err != nil {
		return fmt.Errorf("append: %w", err)
	}
	positions := map[string]eventstore.Position{}
	for n, s := range order {
		if n < len(res) {
			positions[s] = res[n].Position
		}
	}
	entries := make([]InboxEntry, 0, len(plans))
	for _, p := range plans {
		e := batch[p.idx]
		r := &results[p.idx]
		r.Status, r.Stream, r.Position = Recorded, p.stream, positions[p.stream]
		if p.person != (customer.Person{}) {
			id := p.customer
			r.CustomerID, r.MatchedBy, r.Confidence = &id, p.decision.MatchedBy, p.decision.Confidence
		}
		entries = append(entries, InboxEntry{EventID: e.ID, Type: e.Type, Stream: p.stream})
	}
	return h.Inbox.Record(ctx, tenant, entries)
}

// profile answers the profile id names, loading it once per batch and
// following merges to the survivor.
func (h *Ingest) profile(ctx context.Context, tenant string, id uuid.UUID, profiles map[uuid.UUID]*customer.Profile, loaded map[uuid.UUID]uint64) (*customer.Profile, error) {
	for hops := 0; hops < 16; hops++ {
		p, ok := profiles[id]
		if !ok {
			var err error
			p, err = LoadProfile(ctx, h.Store, tenant, id)
			if err != nil {
				return nil, err
			}
			profiles[id], loaded[id] = p, p.Version
		}
		if p.Status != customer.StatusMerged || p.MergedInto == nil {
			return p, nil
		}
		id = *p.MergedInto
	}
	return nil, fmt.Errorf("profile %s: merge chain longer than 16", id)
}

func applyAll(p *customer.Profile, evs []customer.Event, at time.Time) error {
	for _, e := range evs {
		// Round-trip through the stored form so the in-memory state is
		// exactly what a later load folds.
		b, err := jsonMarshal(e.Data)
		if err != nil {
			return err
		}
		v, err := customer.Decode(e.Type, b)
		if err != nil {
			return err
		}
		p.Apply(v, at)
	}
	return nil
}

func upstreamOf(e Envelope) customer.Upstream {
	return customer.Upstream{ID: e.ID, Type: e.Type, Source: e.Source, OccurredAt: e.OccurredAt}
}

// firstKey answers the strongest key: new profiles take their id from it,
// so two handlers that decide "new" for the same person at the same moment
// choose the same id.
func firstKey(keys []identity.Key) identity.Key {
	best := keys[0]
	for _, k := range keys[1:] {
		if rankOf(k.Kind) < rankOf(best.Kind) {
			best = k
		}
	}
	return best
}

func rankOf(k identity.Kind) int {
	for i, o := range identity.Order {
		if o == k {
			return i
		}
	}
	return len(identity.Order)
}
