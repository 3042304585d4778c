package commands

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/encoding/json"

	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/domain/segment"
	"github.com/clubcrm/crm/eventstore"
)

// Segments creates, edits and deletes customer segments and changes the
// members of STATIC ones. Each command appends at the version it read, so
// two staff members editing one segment at once both land: the one that
// loses the race reads again and decides again on the other's change.
type Segments struct {
	Store eventstore.Store
}

// SegmentWritten says where a command left the segment. Position is where
// its events landed, zero when the command changed nothing.
type SegmentWritten struct {
	Segment  *segment.Segment
	Position eventstore.Position
}

// MembersWritten is the segment after a member change, with the members
// the change added and removed (empty, never nil, when it changed
// nothing).
type MembersWritten struct {
	SegmentWritten
	Added, Removed []uuid.UUID
}

// Create opens segment id (chosen by the caller) with definition d. An id
// already taken answers segment.ErrExists, unless this very command (the
// same command id) opened it: a retry answers the segment as it is.
func (h *Segments) Create(ctx context.Context, a Actor, id uuid.UUID, d segment.Definition) (SegmentWritten, error) {
	var out SegmentWritten
	err := retryConflicts(ctx, func() error {
		l, err := loadSegment(ctx, h.Store, a.Tenant, id)
		if err != nil {
			return err
		}
		if l.foreign {
			return segment.ErrExists
		}
		if l.seg.Exists() && l.createdBy == a.CommandID {
			out = SegmentWritten{Segment: l.seg}
			return nil
		}
		evs, err := l.seg.Create(d, a.Subject)
		if err != nil {
			return err
		}
		out, err = h.append(ctx, a, l.seg, evs)
		return err
	})
	return out, err
}

// Update changes segment id's definition to what edit makes of the
// current one (a PATCH overlays the fields it was given). edit may run
// more than once, on a fresher definition each time another writer won
// the race; it gets a copy it may change. A definition equal to the
// current appends nothing.
func (h *Segments) Update(ctx context.Context, a Actor, id uuid.UUID, edit func(segment.Definition) segment.Definition) (SegmentWritten, error) {
	return h.run(ctx, a, id, func(s *segment.Segment) ([]segment.Event, error) {
		if !s.Exists() || s.Deleted {
			return nil, segment.ErrNotFound
		}
		d, err := cloneDefinition(s.Definition)
		if err != nil {
			return nil, err
		}
		return s.Update(edit(d), a.Subject)
	})
}

// Delete ends segment id: it has no members from then on.
func (h *Segments) Delete(ctx context.Context, a Actor, id uuid.UUID) (SegmentWritten, error) {
	return h.run(ctx, a, id, func(s *segment.Segment) ([]segment.Event, error) { return s.Delete(a.Subject) })
}

// ChangeMembers adds and removes members of STATIC segment id. An id both
// added and removed is removed; a change that changes nothing appends
// nothing.
func (h *Segments) ChangeMembers(ctx context.Context, a Actor, id uuid.UUID, add, remove []uuid.UUID) (MembersWritten, error) {
	var evs []segment.Event
	w, err := h.run(ctx, a, id, func(s *segment.Segment) ([]segment.Event, error) {
		var err error
		evs, err = s.ChangeMembers(add, remove, a.Subject)
		return evs, err
	})
	if err != nil {
		return MembersWritten{}, err
	}
	out := MembersWritten{SegmentWritten: w, Added: []uuid.UUID{}, Removed: []uuid.UUID{}}
	for _, e := range evs {
		if c, ok := e.Data.(*segment.MembersChanged); ok {
			out.Added, out.Removed = append(out.Added, c.Added...), append(out.Removed, c.Removed...)
		}
	}
	return out, nil
}

// Load folds segment id of tenant from its stream. A segment never
// created, or another tenant's, answers segment.ErrNotFound; a deleted one
// comes back with Deleted set.
func (h *Segments) Load(ctx context.Context, tenant string, id uuid.UUID) (*segment.Segment, error) {
	l, err := loadSegment(ctx, h.Store, tenant, id)
	if err != nil {
		return nil, err
	}
	if !l.seg.Exists() {
		return nil, fmt.Errorf("%w: %s", segment.ErrNotFound, id)
	}
	return l.seg, nil
}

// run loads the segment, decides on it and appends what was decided,
// again while it loses races to other writers.
func (h *Segments) run(ctx context.Context, a Actor, id uuid.UUID, decide func(*segment.Segment) ([]segment.Event, error)) (SegmentWritten, error) {
	var out SegmentWritten
	err := retryConflicts(ctx, func() error {
		l, err := loadSegment(ctx, h.Store, a.Tenant, id)
		if err != nil {
			return err
		}
		evs, err := decide(l.seg)
		if err != nil {
			return err
		}
		out, err = h.append(ctx, a, l.seg, evs)
		return err
	})
	return out, err
}

// append appends a segment's new events at the version it was loaded at,
// with the metadata profile commands give theirs, then folds them into s.
func (h *Segments) append(ctx context.Context, a Actor, s *segment.Segment, evs []segment.Event) (SegmentWritten, error) {
	if len(evs) == 0 {
		return SegmentWritten{Segment: s}, nil
	}
	stream := segment.Stream(s.ID)
	now := time.Now().UTC()
	ce := make([]customer.Event, len(evs))
	for i, e := range evs {
		ce[i] = customer.Event{Type: e.Type, Data: e.Data}
	}
	data, err := cause{id: a.CommandID, tenant: a.Tenant, actor: a.Subject, occurredAt: now}.eventData(stream, ce)
	if err != nil {
		return SegmentWritten{}, err
	}
	res, err := h.Store.Append(ctx, stream, eventstore.Exact(s.Version), data...)
	if err != nil {
		return SegmentWritten{}, err
	}
	if res.Position == (eventstore.Position{}) {
		// The stream holds these events already (this command ran before):
		// answer the segment as the stream has it, not as decided again.
		l, err := loadSegment(ctx, h.Store, a.Tenant, s.ID)
		if err != nil {
			return SegmentWritten{}, err
		}
		return SegmentWritten{Segment: l.seg}, nil
	}
	for _, e := range evs {
		// Round-trip through the stored form so the in-memory state is
		// exactly what a later load folds.
		b, err := jsonMarshal(e.Data)
		if err != nil {
			return SegmentWritten{}, err
		}
		v, err := segment.Decode(e.Type, b)
		if err != nil {
			return SegmentWritten{}, err
		}
		s.Apply(v, now)
	}
	return SegmentWritten{Segment: s, Position: res.Position}, nil
}

// loadedSegment is a folded segment with what a load learnt besides.
type loadedSegment struct {
	seg       *segment.Segment
	createdBy string // the command id that created it
	foreign   bool   // the stream is another tenant's
}

// loadSegment folds a segment from its stream. One with no events comes
// back empty (Exists reports false) with its id and tenant set; so does
// another tenant's, marked foreign.
func loadSegment(ctx context.Context, store eventstore.Store, tenant string, id uuid.UUID) (loadedSegment, error) {
	l := loadedSegment{seg: &segment.Segment{ID: id, TenantID: tenant}}
	stream := segment.Stream(id)
	for from := uint64(1); ; {
		evs, err := store.ReadStream(ctx, stream, from, loadPage)
		if errors.Is(err, eventstore.ErrStreamNotFound) {
			return l, nil
		}
		if err != nil {
			return loadedSegment{}, fmt.Errorf("load %s: %w", stream, err)
		}
		for _, e := range evs {
			if e.Metadata.TenantID != tenant {
				// Another tenant's segment answers as if it did not exist.
				return loadedSegment{seg: &segment.Segment{ID: id, TenantID: tenant}, foreign: true}, nil
			}
			v, err := segment.Decode(e.Type, e.Data)
			if err != nil {
				return loadedSegment{}, fmt.Errorf("load %s version %d: %w", stream, e.Version, err)
			}
			if e.Version == 1 {
				l.createdBy = e.Metadata.CausationID
			}
			l.seg.Apply(v, e.RecordedAt)
		}
		if len(evs) < loadPage {
			return l, nil
		}
		from += uint64(len(evs))
	}
}

// cloneDefinition answers a deep copy of d, so an edit that changes its
// rules in place leaves the loaded segment alone.
func cloneDefinition(d segment.Definition) (segment.Definition, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return segment.Definition{}, err
	}
	var c segment.Definition
	if err := json.Unmarshal(b, &c); err != nil {
		return segment.Definition{}, err
	}
	return c, nil
}
