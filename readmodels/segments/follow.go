package segments

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/segmentio/encoding/json"

	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/domain/segment"
	"github.com/clubcrm/crm/eventstore"
	"github.com/clubcrm/crm/projections"
	"github.com/clubcrm/crm/readmodels/activities"
	"github.com/clubcrm/crm/readmodels/customers"
	"github.com/clubcrm/crm/readmodels/metrics"
	"github.com/clubcrm/crm/readmodels/scores"
)

// MembershipName is the membership projector's name and checkpoint.
const MembershipName = "segment-membership"

// MembershipProjector keeps segment membership following events: for every
// profile a batch of events touched, it recomputes that profile's
// membership of its tenant's segments (one statement per segment over just
// those profiles); a segment created or redefined is recomputed whole, a
// deleted one emptied. A segment whose rules read only the profile's own
// fields is recomputed only for the profiles an event moved fields of
// (customer.MovesFields): the bookings, payments and messages that make up
// most of the traffic leave it alone. It reads the read models rules are
// written over, so it follows their projectors (projections.Follower): a
// batch waits until they have applied it.
//
// It owns no tables of its own to rebuild: membership is a function of the
// read models, and a full refresh (Refresher, the schedule) recomputes it.
type MembershipProjector struct {
	// Clock answers now for withinLast windows (tests); time.Now when nil.
	Clock func() time.Time
}

var _ projections.Follower = MembershipProjector{}

// Name implements projections.Projector.
func (MembershipProjector) Name() string { return MembershipName }

// Tables implements projections.Projector: none to rebuild.
func (MembershipProjector) Tables() []string { return nil }

// After implements projections.Follower: the projectors of the read models
// rules read, and the segment definitions.
func (MembershipProjector) After() []string {
	return []string{customers.Name, metrics.Name, scores.Name, activities.Name, Name}
}

// Filter implements projections.Projector: every profile event (any of them
// may move a field, a count or a score) and every segment event.
func (MembershipProjector) Filter() eventstore.Filter {
	return eventstore.Filter{Categories: []string{customer.Category, segment.Category}}
}

// touched is what a batch did to one tenant.
type touched struct {
	profiles map[uuid.UUID]bool
	moved    map[uuid.UUID]bool   // of profiles, those whose own fields may have changed
	full     map[uuid.UUID]bool   // created or redefined: recompute whole
	deleted  map[uuid.UUID]uint64 // segment id → its version at deletion
}

// Apply implements projections.Projector.
func (p MembershipProjector) Apply(ctx context.Context, tx pgx.Tx, _ projections.Tables, events []eventstore.Event) error {
	now := time.Now().UTC()
	if p.Clock != nil {
		now = p.Clock().UTC()
	}
	work := map[string]*touched{}
	for _, e := range events {
		t := work[e.Metadata.TenantID]
		if t == nil {
			t = &touched{profiles: map[uuid.UUID]bool{}, moved: map[uuid.UUID]bool{}, full: map[uuid.UUID]bool{}, deleted: map[uuid.UUID]uint64{}}
			work[e.Metadata.TenantID] = t
		}
		if err := t.note(e); err != nil {
			return err
		}
	}
	tenants := make([]string, 0, len(work))
	for tenant := range work {
		tenants = append(tenants, tenant)
	}
	slices.Sort(tenants)
	segs, err := loadLive(ctx, tx, tenants, nil)
	if err != nil {
		return err
	}
	// Segments created or redefined are recomputed whole, one by one; the
	// others only for the profiles the batch touched that they can answer
	// differently for, every statement sent in one round trip.
	var (
		full, partial []live
		only          [][]uuid.UUID
	)
	for _, l := range segs {
		t := work[l.Tenant]
		if t.full[l.ID] {
			full = append(full, l)
			continue
		}
		_, n, err := l.predicate(&params{}, now)
		if err != nil {
			return fmt.Errorf("segment %s: %w", l.ID, err)
		}
		ids := t.profiles
		if n.fieldsOnly() {
			ids = t.moved
		}
		if len(ids) > 0 {
			partial, only = append(partial, l), append(only, sortedKeys(ids))
		}
	}
	if err := lockAll(ctx, tx, append(append([]live{}, full...), partial...)); err != nil {
		return err
	}
	for _, l := range full {
		start := time.Now()
		c, err := refresh(ctx, tx, l, now, nil)
		if err != nil {
			return err
		}
		took := time.Since(start)
		if err := record(ctx, tx, l.Tenant, l.ID, l.Version, c, ReasonRefresh, now, &took); err != nil {
			return err
		}
	}
	changes, err := refreshMany(ctx, tx, partial, now, only)
	if err != nil {
		return err
	}
	if err := recordMany(ctx, tx, partial, changes, ReasonIncremental, now); err != nil {
		return err
	}
	for _, tenant := range tenants {
		for _, id := range sortedKeys(work[tenant].deleted) {
			if err := lock(ctx, tx, tenant, id); err != nil {
				return err
			}
			c, err := clear(ctx, tx, tenant, id)
			if err != nil {
				return err
			}
			if err := record(ctx, tx, tenant, id, int64(work[tenant].deleted[id]), c, ReasonDeleted, now, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// refreshMany recomputes the membership of only[i] in each segs[i], the
// statements pipelined in one batch.
func refreshMany(ctx context.Context, tx pgx.Tx, segs []live, now time.Time, only [][]uuid.UUID) ([]Change, error) {
	if len(segs) == 0 {
		return nil, nil
	}
	b := &pgx.Batch{}
	for i, l := range segs {
		sql, args, err := refreshSQL(l, now, only[i])
		if err != nil {
			return nil, err
		}
		b.Queue(sql, args...)
	}
	br := tx.SendBatch(ctx, b)
	out := make([]Change, len(segs))
	for i, l := range segs {
		c, err := scanChange(br.QueryRow(), l)
		if err != nil {
			br.Close()
			return nil, err
		}
		out[i] = c
	}
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("refresh %d segments: %w", len(segs), err)
	}
	return out, nil
}

// note records what event e touched.
func (t *touched) note(e eventstore.Event) error {
	switch e.Category() {
	case customer.Category:
		id, ok := customer.StreamID(e.Stream)
		if !ok {
			return nil
		}
		t.profiles[id] = true
		if customer.MovesFields(e.Type) {
			t.moved[id] = true
		}
		if e.Type == customer.TypeMerged {
			// The source closes as MERGED: it leaves every segment.
			var m customer.Merged
			if err := json.Unmarshal(e.Data, &m); err != nil {
				return fmt.Errorf("decode %s %s: %w", e.Type, e.ID, err)
			}
			t.profiles[m.SourceID], t.moved[m.SourceID] = true, true
		}
	case segment.Category:
		id, ok := segment.StreamID(e.Stream)
		if !ok {
			return nil
		}
		switch e.Type {
		case segment.TypeCreated, segment.TypeUpdated:
			t.full[id] = true
		case segment.TypeDeleted:
			delete(t.full, id)
			t.deleted[id] = e.Version
		case segment.TypeMembersChanged:
			v, err := segment.Decode(e.Type, e.Data)
			if err != nil {
				return fmt.Errorf("%s %s: %w", e.Stream, e.ID, err)
			}
			m := v.(*segment.MembersChanged)
			for _, c := range append(append([]uuid.UUID{}, m.Added...), m.Removed...) {
				t.profiles[c], t.moved[c] = true, true
			}
		}
	}
	return nil
}

// sortedKeys answers a map's ids in order: locks and arrays in a
// predictable order.
func sortedKeys[V any](set map[uuid.UUID]V) []uuid.UUID {
	ids := make([]uuid.UUID, 0, len(set))
	for id := range set {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	return ids
}
