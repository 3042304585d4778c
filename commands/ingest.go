package commands

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/encoding/json"

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
// concern. It works on batches: one inbox look-up, one identity
// transaction, one append and one inbox record per tenant per batch, the
// tenants of a batch in parallel, so throughput comes from batching, not
// from skipping a guarantee. Profiles are kept folded between batches (see
// profileCache), so an event about someone seen recently reads no stream.
type Ingest struct {
	Store    eventstore.Store
	Index    IdentityIndex
	Inbox    Inbox
	Settings SettingsSource
	Log      *slog.Logger
	// ProfileCacheSize bounds how many folded profiles are kept between
	// batches (see profileCache): 0 means DefaultProfileCacheSize, a
	// negative number none at all.
	ProfileCacheSize int
	// Snapshots, when set, keeps folded profiles that loading a profile
	// the cache does not hold starts from, so that only the events after
	// one are read. An attempt after a lost race reads whole streams.
	Snapshots ProfileSnapshots

	cacheOnce sync.Once
	cache     *profileCache
}

// profiles answers the profile cache, nil when there is none.
func (h *Ingest) profiles() *profileCache {
	h.cacheOnce.Do(func() {
		size := h.ProfileCacheSize
		if size == 0 {
			size = DefaultProfileCacheSize
		}
		if size > 0 {
			h.cache = newProfileCache(size)
		}
	})
	return h.cache
}

// Handle processes a batch. It answers a result per envelope, in order;
// an error means nothing of the batch may be taken as done (the caller
// retries or redelivers: every step is idempotent).
//
// The envelopes may be of many tenants (clubs): each step — the inbox
// look-up, the identity transaction, the append, the inbox record — serves
// all of them at once, so a batch costs the same few round trips whether
// it holds one club's events or two hundred clubs'.
func (h *Ingest) Handle(ctx context.Context, batch []Envelope) ([]Result, error) {
	results := make([]Result, len(batch))
	var valid []int
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
		valid = append(valid, i)
	}
	if len(valid) == 0 {
		return results, nil
	}
	keys := make([]InboxKey, len(valid))
	for n, i := range valid {
		keys[n] = InboxKey{Tenant: batch[i].TenantID, EventID: batch[i].ID}
	}
	seen, err := h.Inbox.Seen(ctx, keys)
	if err != nil {
		return nil, err
	}
	var fresh []int
	first := map[InboxKey]int{} // envelope → index of its first fresh occurrence
	var again []int             // repeats within the batch
	settings := map[string]identity.Settings{}
	for n, i := range valid {
		k := keys[n]
		if stream, ok := seen[k]; ok {
			results[i].Status, results[i].Stream = Duplicate, stream
			continue
		}
		if _, ok := first[k]; ok {
			again = append(again, i)
			continue
		}
		first[k] = i
		fresh = append(fresh, i)
		if _, ok := settings[k.Tenant]; !ok {
			settings[k.Tenant] = identity.Settings{}
		}
	}
	if err := h.loadSettings(ctx, settings); err != nil {
		return nil, err
	}
	if len(fresh) > 0 {
		// After a lost race, every attempt reads each profile from its
		// stream: the conflict may come from what the cache or the guess
		// that a new profile is empty held.
		cautious := false
		err = retryConflicts(ctx, func() error {
			err := h.attempt(ctx, settings, batch, fresh, results, cautious)
			cautious = cautious || errors.Is(err, eventstore.ErrConflict)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	// A repeat within the batch answers like a redelivery after it.
	for _, i := range again {
		results[i].Status, results[i].Stream = Duplicate, results[first[InboxKey{batch[i].TenantID, batch[i].ID}]].Stream
	}
	return results, nil
}

// settingsParallelism bounds the settings reads a batch runs at once.
const settingsParallelism = 8

// loadSettings fills settings, keyed by tenant, with each tenant's identity
// settings. The source caches them for a few seconds, so most batches read
// nothing; but a batch of two hundred clubs finds them expired together
// every few seconds, and reading them one after another cost two hundred
// round trips in a row.
func (h *Ingest) loadSettings(ctx context.Context, settings map[string]identity.Settings) error {
	if len(settings) == 0 {
		return nil
	}
	tenants := make([]string, 0, len(settings))
	for t := range settings {
		tenants = append(tenants, t)
	}
	got := make([]identity.Settings, len(tenants))
	errs := make([]error, len(tenants))
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(settingsParallelism, len(tenants)) {
		wg.Go(func() {
			for i := range next {
				got[i], errs[i] = h.Settings.IdentitySettings(ctx, tenants[i])
			}
		})
	}
	for i := range tenants {
		next <- i
	}
	close(next)
	wg.Wait()
	for i, t := range tenants {
		if errs[i] != nil {
			return errs[i]
		}
		settings[t] = got[i]
	}
	return nil
}

// DecodeEnvelope decodes an envelope without checking it against the
// contract: Handle does that, and answers Invalid with the reasons. A
// caller that hands the envelope to Handle anyway saves checking it twice.
// It unmarshals rather than streams: the library's Decoder allocates a
// 32 KiB buffer for each value, a tenth of crm serve's processor time
// while ingesting (docs/performance.md, 2026-12-08).
func DecodeEnvelope(b []byte) (Envelope, error) {
	var e Envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return e, fmt.Errorf("%w: envelope is not JSON of the contract's shape: %v", ErrInvalidEnvelope, err)
	}
	return e, nil
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

// attempt resolves, decides and appends the fresh envelopes, of every
// tenant at once.
// Unless cautious, profiles come from the cache when they are there, and a
// profile the identity index has just decided to create is taken to be
// empty without reading its stream: both are checked by the append's
// exact expected versions, and a conflict makes the next attempt cautious.
func (h *Ingest) attempt(ctx context.Context, settings map[string]identity.Settings, batch []Envelope, fresh []int, results []Result, cautious bool) error {
	plans := make([]plan, 0, len(fresh))
	people := make([]int, 0, len(fresh)) // indexes into plans of events about a person
	for _, i := range fresh {
		e := batch[i]
		tenant := e.TenantID
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
			}, settings[tenant])
			people = append(people, len(plans))
		}
		plans = append(plans, p)
	}

	// Decide who each person is, reserving keys as we go.
	reqs := make([]ResolveRequest, len(people))
	for n, pi := range people {
		p := plans[pi]
		reqs[n] = ResolveRequest{Tenant: batch[p.idx].TenantID, Keys: p.extract.Keys, Email: p.extract.Email, Name: identity.Name{First: p.person.FirstName, Last: p.person.LastName}, CausedBy: batch[p.idx].ID}
	}
	if len(reqs) > 0 {
		err := h.Index.Resolve(ctx, reqs, func(n int, c identity.Candidates) (uuid.UUID, []identity.Key) {
			p := &plans[people[n]]
			tenant := reqs[n].Tenant
			p.decision = identity.Resolve(reqs[n].Keys, c, reqs[n].Name, settings[tenant])
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

	// Gather each profile once, let it decide in order, append per stream.
	bps := map[string]*batchProfiles{}
	for _, i := range fresh {
		t := batch[i].TenantID
		if _, ok := bps[t]; !ok {
			bps[t] = &batchProfiles{tenant: t, byID: map[uuid.UUID]*customer.Profile{}, loaded: map[uuid.UUID]uint64{}}
			if !cautious {
				bps[t].cache = h.profiles()
			}
		}
	}
	var toLoad []profileKey
	reading := map[profileKey]bool{}
	for _, pi := range people {
		p := plans[pi]
		bp := bps[batch[p.idx].TenantID]
		k := profileKey{bp.tenant, p.customer}
		if _, ok := bp.byID[k.id]; ok || reading[k] {
			continue
		}
		if c := bp.cache.take(k.tenant, k.id); c != nil {
			bp.add(k.id, c)
		} else if !cautious && p.decision.New() {
			bp.add(k.id, &customer.Profile{ID: k.id, TenantID: k.tenant})
		} else {
			toLoad, reading[k] = append(toLoad, k), true
		}
	}
	got, err := h.loadProfiles(ctx, toLoad, !cautious)
	if err != nil {
		return err
	}
	for k, p := range got {
		bps[k.tenant].add(k.id, p)
	}

	var order []string
	pending := map[string][]eventstore.EventData{}
	expected := map[string]eventstore.Expected{}
	for n := range plans {
		p := &plans[n]
		e := batch[p.idx]
		bp := bps[e.TenantID]
		c := cause{id: e.ID, tenant: e.TenantID, actor: e.Source, occurredAt: e.OccurredAt}
		var evs []customer.Event
		if p.person == (customer.Person{}) {
			evs = []customer.Event{{Type: e.Type, Data: &customer.Recorded{Upstream: upstreamOf(e), Data: e.Data}}}
			if _, ok := expected[p.stream]; !ok {
				expected[p.stream] = eventstore.Any
			}
		} else {
			prof, err := h.profile(ctx, p.customer, bp)
			if err != nil {
				return err
			}
			p.customer, p.stream = prof.ID, customer.Stream(prof.ID)
			evs, err = prof.Ingest(customer.Ingestion{Upstream: upstreamOf(e), Data: e.Data, Person: p.person, Extracted: p.extract, Decision: p.decision})
			if err != nil {
				return fmt.Errorf("ingest %s into %s: %w", e.ID, p.stream, err)
			}
			if _, ok := expected[p.stream]; !ok {
				expected[p.stream] = eventstore.Exact(bp.loaded[prof.ID])
			}
		}
		data, err := c.eventData(p.stream, evs)
		if err != nil {
			return err
		}
		if p.person != (customer.Person{}) {
			prof := bp.byID[p.customer]
			if err := applyData(prof, data, e.OccurredAt); err != nil {
				return err
			}
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
	versions := map[string]uint64{}
	for n, s := range order {
		if n < len(res) {
			positions[s], versions[s] = res[n].Position, res[n].Version
		}
	}
	// Keep what the batch now knows for the next one. A profile is kept
	// only if the append wrote every event decided for it: if the store
	// skipped some as already held, the profile in memory was folded on a
	// version the stream had already left.
	for _, bp := range bps {
		for id, prof := range bp.byID {
			s := customer.Stream(id)
			if evs, ok := pending[s]; ok {
				if v, ok := versions[s]; !ok || v != bp.loaded[id]+uint64(len(evs)) || prof.Version != v {
					continue
				}
			} else if prof.Version != bp.loaded[id] {
				continue
			}
			if prof.Exists() {
				h.profiles().put(bp.tenant, prof)
			}
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
		entries = append(entries, InboxEntry{Tenant: e.TenantID, EventID: e.ID, Type: e.Type, Stream: p.stream})
	}
	return h.Inbox.Record(ctx, entries)
}

// batchProfiles are the profiles one attempt works on, each with the
// version it had when gathered.
type batchProfiles struct {
	tenant string
	cache  *profileCache // nil when the attempt reads every stream
	byID   map[uuid.UUID]*customer.Profile
	loaded map[uuid.UUID]uint64
}

func (b *batchProfiles) add(id uuid.UUID, p *customer.Profile) {
	b.byID[id], b.loaded[id] = p, p.Version
}

// profile answers the profile id names, following merges to the survivor;
// a profile first reached through a merge is read here.
func (h *Ingest) profile(ctx context.Context, id uuid.UUID, bp *batchProfiles) (*customer.Profile, error) {
	for hops := 0; hops < 16; hops++ {
		p, ok := bp.byID[id]
		if !ok {
			if p = bp.cache.take(bp.tenant, id); p == nil {
				var err error
				if p, err = LoadProfile(ctx, h.Store, bp.tenant, id); err != nil {
					return nil, err
				}
			}
			bp.add(id, p)
		}
		if p.Status != customer.StatusMerged || p.MergedInto == nil {
			return p, nil
		}
		id = *p.MergedInto
	}
	return nil, fmt.Errorf("profile %s: merge chain longer than 16", id)
}

// applyData folds events about to be appended into p, from the form they
// are stored in, so the state in memory is exactly what a later load folds.
func applyData(p *customer.Profile, data []eventstore.EventData, at time.Time) error {
	for _, d := range data {
		v, err := customer.Decode(d.Type, d.Data)
		if err != nil {
			return fmt.Errorf("fold %s into %s: %w", d.Type, customer.Stream(p.ID), err)
		}
		p.Apply(v, at)
	}
	return nil
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
