package commands_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/adapters/postgres/pgtest"
	"github.com/clubcrm/crm/commands"
	"github.com/clubcrm/crm/domain/segment"
	"github.com/clubcrm/crm/eventstore"
	pgstore "github.com/clubcrm/crm/eventstore/postgres"
)

// segmentWorld is a store of its own (a fresh database) with the segment
// commands on it.
type segmentWorld struct {
	store eventstore.Store
	h     *commands.Segments
}

func newSegmentWorld(t *testing.T) *segmentWorld {
	t.Helper()
	pool, _ := pgtest.New(t)
	store := pgstore.New(pool)
	t.Cleanup(func() { store.Close() })
	return &segmentWorld{store: store, h: &commands.Segments{Store: store}}
}

func goldDef() segment.Definition {
	return segment.Definition{Name: "Gold", Type: segment.Dynamic, Combinator: "AND",
		Rules: []segment.Rule{{Field: "membershipTier", Operator: segment.Eq, Value: json.RawMessage(`"Gold"`)}}}
}

func vipDef() segment.Definition { return segment.Definition{Name: "VIPs", Type: segment.Static} }

func (w *segmentWorld) create(t *testing.T, d segment.Definition) uuid.UUID {
	t.Helper()
	id := uuid.New()
	_, err := w.h.Create(context.Background(), staff("staff-1"), id, d)
	require.NoError(t, err)
	return id
}

func (w *segmentWorld) load(t *testing.T, id uuid.UUID) *segment.Segment {
	t.Helper()
	s, err := w.h.Load(context.Background(), "club-a", id)
	require.NoError(t, err)
	return s
}

func (w *segmentWorld) events(t *testing.T, id uuid.UUID) []eventstore.Event {
	t.Helper()
	evs, err := w.store.ReadStream(context.Background(), segment.Stream(id), 1, 1000)
	require.NoError(t, err)
	return evs
}

func TestSegmentCreateAndLoad(t *testing.T) {
	t.Parallel()
	w := newSegmentWorld(t)
	ctx := context.Background()
	a := staff("staff-1")
	id := uuid.New()
	d := goldDef()
	d.Name, d.Combinator = "  Gold  ", "and"
	res, err := w.h.Create(ctx, a, id, d)
	require.NoError(t, err)
	assert.NotEqual(t, eventstore.Position{}, res.Position)
	assert.Equal(t, id, res.Segment.ID)
	assert.Equal(t, "club-a", res.Segment.TenantID)
	assert.EqualValues(t, 1, res.Segment.Version)
	assert.Equal(t, "Gold", res.Segment.Definition.Name, "stored normalised")
	assert.Equal(t, segment.And, res.Segment.Definition.Combinator)
	assert.Equal(t, "staff-1", res.Segment.CreatedBy)

	got := w.load(t, id)
	assert.Equal(t, res.Segment.Definition, got.Definition, "a load folds what the command answered")
	assert.Equal(t, id, got.ID)
	assert.Equal(t, "club-a", got.TenantID)
	assert.EqualValues(t, 1, got.Version)
	assert.Equal(t, "staff-1", got.CreatedBy)
	assert.False(t, got.CreatedAt.IsZero())
	assert.False(t, got.Deleted)

	evs := w.events(t, id)
	require.Len(t, evs, 1)
	e := evs[0]
	assert.Equal(t, segment.TypeCreated, e.Type)
	assert.Equal(t, res.Position, e.Position)
	assert.Equal(t, eventstore.Metadata{TenantID: "club-a", CorrelationID: a.CommandID, CausationID: a.CommandID, Actor: "staff-1"}, e.Metadata)
	assert.Equal(t, eventstore.DeriveID("club-a", a.CommandID, segment.Stream(id), segment.TypeCreated), e.ID)
	v, err := segment.Decode(e.Type, e.Data)
	require.NoError(t, err)
	assert.Equal(t, id, v.(*segment.Created).SegmentID)
	assert.Equal(t, "staff-1", v.(*segment.Created).Actor)

	// A retry of the same command answers the segment; another command
	// finds the id taken.
	again, err := w.h.Create(ctx, a, id, d)
	require.NoError(t, err, "a retried create (same command id) succeeds")
	assert.Equal(t, eventstore.Position{}, again.Position)
	assert.EqualValues(t, 1, again.Segment.Version)
	_, err = w.h.Create(ctx, staff("staff-2"), id, vipDef())
	assert.ErrorIs(t, err, segment.ErrExists)
	assert.Len(t, w.events(t, id), 1)

	st := w.create(t, vipDef())
	s := w.load(t, st)
	assert.Equal(t, segment.Static, s.Definition.Type)
	assert.Empty(t, s.Definition.Rules)

	_, err = w.h.Load(ctx, "club-a", uuid.New())
	assert.ErrorIs(t, err, segment.ErrNotFound)
}

func TestSegmentCreateInvalid(t *testing.T) {
	t.Parallel()
	w := newSegmentWorld(t)
	for _, c := range []struct {
		name  string
		def   func(*segment.Definition)
		paths []string
	}{
		{"no name", func(d *segment.Definition) { d.Name = "  " }, []string{"name"}},
		{"unknown type", func(d *segment.Definition) { d.Type = "WEEKLY" }, []string{"type"}},
		{"dynamic without rules", func(d *segment.Definition) { d.Rules = nil }, []string{"rules"}},
		{"unknown field", func(d *segment.Definition) { d.Rules[0].Field = "shoeSize" }, []string{"rules[0].field"}},
		{"wrong operator", func(d *segment.Definition) { d.Rules[0].Operator = segment.HasTag }, []string{"rules[0].operator"}},
		{"bad combinator, no name", func(d *segment.Definition) { d.Combinator, d.Name = "XOR", "" }, []string{"combinator", "name"}},
		{"static with rules", func(d *segment.Definition) { d.Type = segment.Static }, []string{"rules"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := goldDef()
			c.def(&d)
			id := uuid.New()
			_, err := w.h.Create(context.Background(), staff("staff-1"), id, d)
			var inv segment.ErrInvalid
			require.True(t, errors.As(err, &inv), "want ErrInvalid, got %v", err)
			for _, p := range c.paths {
				assert.Contains(t, inv, p)
			}
			assert.Len(t, inv, len(c.paths), "%v", inv)
			_, err = w.h.Load(context.Background(), "club-a", id)
			assert.ErrorIs(t, err, segment.ErrNotFound, "nothing was appended")
		})
	}
}

func TestSegmentUpdate(t *testing.T) {
	t.Parallel()
	w := newSegmentWorld(t)
	ctx := context.Background()
	id := w.create(t, goldDef())
	platinum := segment.Rule{Field: "membershipTier", Operator: segment.Eq, Value: json.RawMessage(`"Platinum"`)}
	for _, c := range []struct {
		name    string
		edit    func(segment.Definition) segment.Definition
		err     error
		written bool
		check   func(*testing.T, segment.Definition)
	}{
		{"name overlay", func(d segment.Definition) segment.Definition { d.Name = "Gold members"; return d }, nil, true,
			func(t *testing.T, d segment.Definition) {
				assert.Equal(t, "Gold members", d.Name)
				assert.Len(t, d.Rules, 1, "rules not given are kept")
			}},
		{"rules overlay", func(d segment.Definition) segment.Definition {
			d.Combinator, d.Rules = "or", append(d.Rules, platinum)
			return d
		}, nil, true, func(t *testing.T, d segment.Definition) {
			assert.Equal(t, "Gold members", d.Name)
			assert.Equal(t, segment.Or, d.Combinator)
			require.Len(t, d.Rules, 2)
			assert.JSONEq(t, `"Platinum"`, string(d.Rules[1].Value))
		}},
		{"identical", func(d segment.Definition) segment.Definition { return d }, nil, false, nil},
		{"identical once normalised", func(d segment.Definition) segment.Definition {
			d.Name, d.Combinator = " Gold members ", "OR"
			return d
		}, nil, false, nil},
		{"a rule changed in place", func(d segment.Definition) segment.Definition {
			d.Rules[1].Value = json.RawMessage(`"Silver"`)
			return d
		}, nil, true, func(t *testing.T, d segment.Definition) { assert.JSONEq(t, `"Silver"`, string(d.Rules[1].Value)) }},
		{"type change", func(d segment.Definition) segment.Definition { d.Type, d.Rules = segment.Static, nil; return d }, segment.ErrTypeChange, false, nil},
		{"invalid", func(d segment.Definition) segment.Definition { d.Rules[0].Field = "nope"; return d }, segment.ErrInvalid{}, false, nil},
	} {
		before := w.load(t, id)
		res, err := w.h.Update(ctx, staff("staff-2"), id, c.edit)
		after := w.load(t, id)
		switch want := c.err.(type) {
		case nil:
			require.NoError(t, err, c.name)
		case segment.ErrInvalid:
			assert.True(t, errors.As(err, &want), "%s: want ErrInvalid, got %v", c.name, err)
			assert.Contains(t, want, "rules[0].field", c.name)
		default:
			assert.ErrorIs(t, err, c.err, c.name)
		}
		if c.err != nil {
			assert.Equal(t, before, after, c.name)
			continue
		}
		assert.Equal(t, c.written, res.Position != eventstore.Position{}, c.name)
		assert.Equal(t, after.Definition, res.Segment.Definition, "%s: the answer is what a load folds", c.name)
		assert.Equal(t, after.Version, res.Segment.Version, c.name)
		if c.written {
			assert.Equal(t, before.Version+1, after.Version, c.name)
		} else {
			assert.Equal(t, before, after, "%s: nothing appended", c.name)
		}
		if c.check != nil {
			c.check(t, after.Definition)
		}
	}

	evs := w.events(t, id)
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
	}
	assert.Equal(t, []string{segment.TypeCreated, segment.TypeUpdated, segment.TypeUpdated, segment.TypeUpdated}, types)
	assert.Equal(t, "staff-2", evs[1].Metadata.Actor)
	v, err := segment.Decode(evs[1].Type, evs[1].Data)
	require.NoError(t, err)
	assert.Equal(t, "Gold members", v.(*segment.Updated).Definition.Name, "the whole definition is recorded")
	assert.Len(t, v.(*segment.Updated).Definition.Rules, 1)

	_, err = w.h.Update(ctx, staff("staff-1"), uuid.New(), func(d segment.Definition) segment.Definition { return goldDef() })
	assert.ErrorIs(t, err, segment.ErrNotFound)
}

func TestSegmentDelete(t *testing.T) {
	t.Parallel()
	w := newSegmentWorld(t)
	ctx := context.Background()
	id := w.create(t, vipDef())
	res, err := w.h.Delete(ctx, staff("staff-1"), id)
	require.NoError(t, err)
	assert.NotEqual(t, eventstore.Position{}, res.Position)
	assert.True(t, res.Segment.Deleted)
	s := w.load(t, id)
	assert.True(t, s.Deleted, "a deleted segment still loads, marked deleted")
	assert.EqualValues(t, 2, s.Version)

	for name, run := range map[string]func() error{
		"update": func() error {
			_, err := w.h.Update(ctx, staff("staff-1"), id, func(d segment.Definition) segment.Definition { d.Name = "x"; return d })
			return err
		},
		"delete": func() error { _, err := w.h.Delete(ctx, staff("staff-1"), id); return err },
		"members": func() error {
			_, err := w.h.ChangeMembers(ctx, staff("staff-1"), id, []uuid.UUID{uuid.New()}, nil)
			return err
		},
	} {
		assert.ErrorIs(t, run(), segment.ErrNotFound, name)
	}
	_, err = w.h.Create(ctx, staff("staff-1"), id, vipDef())
	assert.ErrorIs(t, err, segment.ErrExists, "a deleted segment's id is not reused")
	_, err = w.h.Delete(ctx, staff("staff-1"), uuid.New())
	assert.ErrorIs(t, err, segment.ErrNotFound)
	assert.Len(t, w.events(t, id), 2)
}

func TestSegmentMembers(t *testing.T) {
	t.Parallel()
	w := newSegmentWorld(t)
	ctx := context.Background()
	id := w.create(t, vipDef())
	m1, m2, m3 := uuid.New(), uuid.New(), uuid.New()
	for _, c := range []struct {
		name             string
		add, remove      []uuid.UUID
		added, removed   []uuid.UUID
		written          bool
		err              error
		invalidAtPath    string
		membersAfterCall []uuid.UUID
	}{
		{name: "adds, deduped", add: []uuid.UUID{m1, m2, m1}, added: []uuid.UUID{m1, m2}, removed: []uuid.UUID{}, written: true,
			membersAfterCall: []uuid.UUID{m1, m2}},
		{name: "removes, deduped", remove: []uuid.UUID{m1, m1}, added: []uuid.UUID{}, removed: []uuid.UUID{m1}, written: true,
			membersAfterCall: []uuid.UUID{m2}},
		{name: "added and removed is removed", add: []uuid.UUID{m3, m1}, remove: []uuid.UUID{m3}, added: []uuid.UUID{m1}, removed: []uuid.UUID{m3}, written: true,
			membersAfterCall: []uuid.UUID{m1, m2}},
		{name: "nothing", added: []uuid.UUID{}, removed: []uuid.UUID{}, membersAfterCall: []uuid.UUID{m1, m2}},
		{name: "too many", add: make([]uuid.UUID, segment.MaxMembersCall+1), err: segment.ErrInvalid{}, invalidAtPath: "add",
			membersAfterCall: []uuid.UUID{m1, m2}},
	} {
		before := w.load(t, id)
		res, err := w.h.ChangeMembers(ctx, staff("staff-1"), id, c.add, c.remove)
		if c.err != nil {
			var inv segment.ErrInvalid
			require.True(t, errors.As(err, &inv), "%s: want ErrInvalid, got %v", c.name, err)
			assert.Contains(t, inv, c.invalidAtPath, c.name)
			assert.Equal(t, before.Version, w.load(t, id).Version, c.name)
		} else {
			require.NoError(t, err, c.name)
			assert.Equal(t, c.added, res.Added, c.name)
			assert.Equal(t, c.removed, res.Removed, c.name)
			assert.NotNil(t, res.Added, c.name)
			assert.NotNil(t, res.Removed, c.name)
			assert.Equal(t, c.written, res.Position != eventstore.Position{}, c.name)
			wantVersion := before.Version
			if c.written {
				wantVersion++
			}
			assert.Equal(t, wantVersion, res.Segment.Version, c.name)
			assert.Equal(t, wantVersion, w.load(t, id).Version, c.name)
		}
		assert.ElementsMatch(t, c.membersAfterCall, members(t, w.events(t, id)), c.name)
	}

	dyn := w.create(t, goldDef())
	_, err := w.h.ChangeMembers(ctx, staff("staff-1"), dyn, []uuid.UUID{m1}, nil)
	assert.ErrorIs(t, err, segment.ErrNotStatic)
	assert.Len(t, w.events(t, dyn), 1)
	_, err = w.h.ChangeMembers(ctx, staff("staff-1"), uuid.New(), []uuid.UUID{m1}, nil)
	assert.ErrorIs(t, err, segment.ErrNotFound)
}

// members folds a STATIC segment's member list from its events, as the
// read side does.
func members(t *testing.T, evs []eventstore.Event) []uuid.UUID {
	t.Helper()
	set := map[uuid.UUID]bool{}
	for _, e := range evs {
		v, err := segment.Decode(e.Type, e.Data)
		require.NoError(t, err)
		if c, ok := v.(*segment.MembersChanged); ok {
			for _, id := range c.Added {
				set[id] = true
			}
			for _, id := range c.Removed {
				delete(set, id)
			}
		}
	}
	out := []uuid.UUID{}
	for id := range set {
		out = append(out, id)
	}
	return out
}

// Ten staff members edit one segment at once: each adds a rule of its own
// and sets the description. Every rule lands (the losers of each race
// reload and decide again), and the description is one of theirs.
func TestSegmentConcurrentUpdates(t *testing.T) {
	t.Parallel()
	w := newSegmentWorld(t)
	ctx := context.Background()
	id := w.create(t, goldDef())
	const writers = 10
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Go(func() {
			_, err := w.h.Update(ctx, staff(fmt.Sprintf("staff-%d", i)), id, func(d segment.Definition) segment.Definition {
				d.Description = fmt.Sprintf("edited by %d", i)
				d.Rules = append(d.Rules, segment.Rule{Field: "membershipTier", Operator: segment.Neq, Value: json.RawMessage(fmt.Sprintf(`"Tier-%d"`, i))})
				return d
			})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	s := w.load(t, id)
	assert.EqualValues(t, 1+writers, s.Version)
	require.Len(t, s.Definition.Rules, 1+writers, "no update was lost")
	var values []string
	for _, r := range s.Definition.Rules[1:] {
		values = append(values, string(r.Value))
	}
	var descs []string
	for i := range writers {
		assert.Contains(t, values, fmt.Sprintf(`"Tier-%d"`, i))
		descs = append(descs, fmt.Sprintf("edited by %d", i))
	}
	assert.Contains(t, descs, s.Definition.Description)
}

func TestSegmentOtherTenant(t *testing.T) {
	t.Parallel()
	w := newSegmentWorld(t)
	ctx := context.Background()
	id := w.create(t, vipDef())
	other := commands.Actor{Tenant: "club-b", Subject: "intruder", CommandID: "cmd:" + uuid.NewString()}
	_, err := w.h.Load(ctx, "club-b", id)
	assert.ErrorIs(t, err, segment.ErrNotFound)
	_, err = w.h.Update(ctx, other, id, func(d segment.Definition) segment.Definition { d.Name = "Mine"; return d })
	assert.ErrorIs(t, err, segment.ErrNotFound)
	_, err = w.h.Delete(ctx, other, id)
	assert.ErrorIs(t, err, segment.ErrNotFound)
	_, err = w.h.ChangeMembers(ctx, other, id, []uuid.UUID{uuid.New()}, nil)
	assert.ErrorIs(t, err, segment.ErrNotFound)
	_, err = w.h.Create(ctx, other, id, vipDef())
	assert.ErrorIs(t, err, segment.ErrExists, "the stream is taken, whoever holds it")
	s := w.load(t, id)
	assert.EqualValues(t, 1, s.Version, "club-a's segment is untouched")
	assert.Equal(t, "VIPs", s.Definition.Name)
}
