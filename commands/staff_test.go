package commands_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/adapters/postgres"
	"github.com/clubcrm/crm/adapters/postgres/pgtest"
	"github.com/clubcrm/crm/commands"
	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/eventstore"
	pgstore "github.com/clubcrm/crm/eventstore/postgres"
)

// staffWorld is a store with one registered profile.
type staffWorld struct {
	store eventstore.Store
	id    uuid.UUID
}

func newStaffWorld(t *testing.T) *staffWorld {
	t.Helper()
	pool, _ := pgtest.New(t)
	store := pgstore.New(pool)
	t.Cleanup(func() { store.Close() })
	index := &postgres.IdentityIndex{Pool: pool}
	reg := &commands.Register{Store: store, Index: index, Settings: &commands.Settings{Store: store}}
	res, err := reg.Handle(context.Background(), staff("staff-1"), commands.RegisterCustomer{Email: "jane@mail.com", FirstName: "Jane"})
	require.NoError(t, err)
	return &staffWorld{store: store, id: res.Profile.ID}
}

func staff(sub string) commands.Actor {
	return commands.Actor{Tenant: "club-a", Subject: sub, CommandID: "cmd:" + uuid.NewString()}
}

func (w *staffWorld) load(t *testing.T) *customer.Profile {
	t.Helper()
	p, err := commands.LoadProfile(context.Background(), w.store, "club-a", w.id)
	require.NoError(t, err)
	return p
}

// Two staff members edit one profile's tags at once, many times over: every
// tag either adds survives, and a tag both add is recorded once.
func TestConcurrentTagEdits(t *testing.T) {
	t.Parallel()
	w := newStaffWorld(t)
	tags := &commands.Tags{Store: w.store}
	ctx := context.Background()
	const rounds = 8
	var wg sync.WaitGroup
	errs := make(chan error, 4*rounds)
	for i := range rounds {
		for _, who := range []string{"staff-1", "staff-2"} {
			wg.Go(func() {
				_, err := tags.Change(ctx, staff(who), w.id, []string{fmt.Sprintf("%s-%d", who, i), "shared"}, nil)
				errs <- err
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	p := w.load(t)
	assert.Len(t, p.Tags, 2*rounds+1)
	for i := range rounds {
		assert.Contains(t, p.Tags, fmt.Sprintf("staff-1-%d", i))
		assert.Contains(t, p.Tags, fmt.Sprintf("staff-2-%d", i))
	}
	evs, err := w.store.ReadStream(ctx, customer.Stream(w.id), 1, 1000)
	require.NoError(t, err)
	shared := 0
	for _, e := range evs {
		if e.Type == customer.TypeTagsChanged {
			v, err := customer.Decode(e.Type, e.Data)
			require.NoError(t, err)
			if slices.Contains(v.(*customer.TagsChanged).Added, "shared") {
				shared++
			}
		}
	}
	assert.Equal(t, 1, shared, "a tag both add is added once")

	// Idempotent: adding what is there appends nothing.
	before := w.load(t).Version
	res, err := tags.Change(ctx, staff("staff-1"), w.id, []string{"SHARED"}, []string{"never-there"})
	require.NoError(t, err)
	assert.Empty(t, res.Added)
	assert.Empty(t, res.Removed)
	assert.Equal(t, eventstore.Position{}, res.Position)
	assert.Equal(t, before, w.load(t).Version)

	res, err = tags.Replace(ctx, staff("staff-2"), w.id, []string{"Shared", "new"})
	require.NoError(t, err)
	assert.Equal(t, []string{"new"}, res.Added)
	assert.Len(t, res.Removed, 2*rounds)
	assert.Equal(t, []string{"shared", "new"}, w.load(t).Tags)
}

func TestNotePermissions(t *testing.T) {
	t.Parallel()
	w := newStaffWorld(t)
	notes := &commands.Notes{Store: w.store}
	ctx := context.Background()
	author := staff("staff-1")
	added, err := notes.Add(ctx, author, w.id, customer.NoteAdded{Body: "Prefers early tee times"})
	require.NoError(t, err)
	assert.Equal(t, commands.NoteID(author), added.Note.ID)
	assert.Equal(t, "staff-1", added.Note.Author)
	assert.NotEqual(t, eventstore.Position{}, added.Position)
	again, err := notes.Add(ctx, author, w.id, customer.NoteAdded{Body: "Prefers early tee times"})
	require.NoError(t, err, "a retried command (same id) adds one note")
	assert.Equal(t, added.Note.ID, again.Note.ID)
	assert.Len(t, w.load(t).Notes, 1)

	_, err = notes.Edit(ctx, staff("staff-2"), false, w.id, added.Note.ID, customer.NoteEdited{Body: ptrTo("mine now")})
	assert.ErrorIs(t, err, customer.ErrForbidden)
	_, err = notes.Delete(ctx, staff("staff-2"), false, w.id, added.Note.ID)
	assert.ErrorIs(t, err, customer.ErrForbidden)
	edited, err := notes.Edit(ctx, staff("staff-1"), false, w.id, added.Note.ID, customer.NoteEdited{Body: ptrTo("Prefers 07:00 starts")})
	require.NoError(t, err)
	assert.Equal(t, "Prefers 07:00 starts", edited.Note.Body)
	pinned, err := notes.Edit(ctx, staff("admin-1"), true, w.id, added.Note.ID, customer.NoteEdited{Pinned: ptrTo(true)})
	require.NoError(t, err, "an administrator may change anyone's note")
	assert.True(t, pinned.Note.Pinned)
	_, err = notes.Edit(ctx, staff("staff-1"), false, w.id, uuid.New(), customer.NoteEdited{Body: ptrTo("x")})
	assert.ErrorIs(t, err, customer.ErrNoteNotFound)
	_, err = notes.Delete(ctx, staff("staff-1"), false, w.id, added.Note.ID)
	require.NoError(t, err)
	assert.Empty(t, w.load(t).Notes)
	_, err = notes.Add(ctx, staff("staff-1"), uuid.New(), customer.NoteAdded{Body: "x"})
	assert.ErrorIs(t, err, customer.ErrNotFound)

	// Edits and deletions stay in the history.
	evs, err := w.store.ReadStream(ctx, customer.Stream(w.id), 1, 100)
	require.NoError(t, err)
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
	}
	assert.Equal(t, []string{customer.TypeCreated, customer.TypeNoteAdded, customer.TypeNoteEdited, customer.TypeNoteEdited, customer.TypeNoteDeleted}, types)
}

// Complaints through the commands, against the event store: each step's
// event lands (or, changing nothing, does not) and the loaded profile
// agrees.
func TestComplaintNotes(t *testing.T) {
	t.Parallel()
	w := newStaffWorld(t)
	notes := &commands.Notes{Store: w.store}
	ctx := context.Background()
	added, err := notes.Add(ctx, staff("staff-1"), w.id, customer.NoteAdded{Body: "Greens were not cut", Complaint: true})
	require.NoError(t, err)
	assert.True(t, added.Note.Complaint)
	id := added.Note.ID
	for _, c := range []struct {
		name      string
		actor     commands.Actor
		admin     bool
		edit      customer.NoteEdited
		written   bool // an event was appended
		complaint bool // the note is a complaint after it
	}{
		{"marking a complaint again changes nothing", staff("staff-1"), false, customer.NoteEdited{Complaint: ptrTo(true)}, false, true},
		{"the author unmarks it", staff("staff-1"), false, customer.NoteEdited{Complaint: ptrTo(false)}, true, false},
		{"an administrator marks it", staff("boss"), true, customer.NoteEdited{Complaint: ptrTo(true)}, true, true},
		{"a body edit leaves the mark", staff("staff-1"), false, customer.NoteEdited{Body: ptrTo("Greens were not cut on Saturday")}, true, true},
	} {
		before := w.load(t).Version
		res, err := notes.Edit(ctx, c.actor, c.admin, w.id, id, c.edit)
		require.NoError(t, err, c.name)
		assert.Equal(t, c.written, res.Position != eventstore.Position{}, c.name)
		assert.Equal(t, c.complaint, res.Note.Complaint, c.name)
		n, ok := w.load(t).NoteByID(id)
		require.True(t, ok)
		assert.Equal(t, c.complaint, n.Complaint, c.name)
		if !c.written {
			assert.Equal(t, before, w.load(t).Version, c.name)
		}
	}
	_, err = notes.Edit(ctx, staff("staff-2"), false, w.id, id, customer.NoteEdited{Complaint: ptrTo(false)})
	assert.ErrorIs(t, err, customer.ErrForbidden, "only the author or an administrator")

	// The history holds each mark as written.
	evs, err := w.store.ReadStream(ctx, customer.Stream(w.id), 1, 100)
	require.NoError(t, err)
	var marks []string
	for _, e := range evs {
		v, err := customer.Decode(e.Type, e.Data)
		require.NoError(t, err)
		switch d := v.(type) {
		case *customer.NoteAdded:
			marks = append(marks, fmt.Sprintf("added %v", d.Complaint))
		case *customer.NoteEdited:
			if d.Complaint == nil {
				marks = append(marks, "edited")
			} else {
				marks = append(marks, fmt.Sprintf("edited %v", *d.Complaint))
			}
		}
	}
	assert.Equal(t, []string{"added true", "edited false", "edited true", "edited"}, marks)
}

func TestRecordActivity(t *testing.T) {
	t.Parallel()
	w := newStaffWorld(t)
	now := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	h := &commands.RecordActivity{Store: w.store, Clock: func() time.Time { return now }}
	ctx := context.Background()
	a := staff("staff-1")
	res, err := h.Handle(ctx, a, w.id, customer.ActivityRecorded{Kind: customer.KindCall, Title: "Called about renewal"})
	require.NoError(t, err)
	assert.Equal(t, commands.ActivityID(a), res.Activity.ActivityID)
	assert.Equal(t, now, res.Activity.OccurredAt, "no time given: now")
	assert.Equal(t, "PHONE", res.Activity.Channel)
	assert.Equal(t, "staff-1", res.Activity.Actor)
	assert.False(t, res.Activity.Complaint)
	_, err = h.Handle(ctx, staff("staff-1"), w.id, customer.ActivityRecorded{Kind: customer.KindVisit, Title: "x", OccurredAt: now.Add(time.Hour)})
	assert.ErrorIs(t, err, customer.ErrInvalid)

	res, err = h.Handle(ctx, staff("staff-1"), w.id, customer.ActivityRecorded{Kind: customer.KindCall, Title: "Complained about slow play", Complaint: true})
	require.NoError(t, err)
	assert.True(t, res.Activity.Complaint)
	evs, err := w.store.ReadStream(ctx, customer.Stream(w.id), res.Profile.Version, 1)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	assert.JSONEq(t, `true`, string(mustField(t, evs[0].Data, "complaint")), "stored with the event")
}

func mustField(t *testing.T, data []byte, name string) json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(data, &m))
	require.Contains(t, m, name)
	return m[name]
}

func TestEditWithTags(t *testing.T) {
	t.Parallel()
	w := newStaffWorld(t)
	edit := &commands.Edit{Store: w.store}
	name := "JD"
	res, err := edit.HandleWithTags(context.Background(), staff("staff-1"), w.id, commands.EditCustomer{DisplayName: &name}, []string{"VIP", "Junior"})
	require.NoError(t, err)
	assert.Equal(t, "JD", res.Profile.DisplayName)
	assert.Equal(t, []string{"vip", "junior"}, res.Profile.Tags)
	p := w.load(t)
	assert.Equal(t, []string{"vip", "junior"}, p.Tags)
	assert.EqualValues(t, 3, p.Version, "created, edited, tags changed: one append")
	_, err = edit.HandleWithTags(context.Background(), staff("staff-1"), w.id, commands.EditCustomer{}, []string{"bad;tag"})
	assert.ErrorIs(t, err, customer.ErrInvalid)
}

func ptrTo[T any](v T) *T { return &v }
