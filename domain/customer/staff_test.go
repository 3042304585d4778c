package customer

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/domain/identity"
)

func member(t *testing.T) *Profile {
	p := &Profile{ID: uuid.New(), TenantID: "club-a"}
	ingest(t, p, "member.created", `{"memberId": 42, "email": "jane@mail.com", "firstName": "Jane"}`, identity.Decision{})
	return p
}

func TestNotes(t *testing.T) {
	p := member(t)
	id := uuid.New()
	evs, err := p.AddNote(id, "staff-1", "  Prefers early tee times.  ", false)
	require.NoError(t, err)
	fold(t, p, evs)
	n, ok := p.NoteByID(id)
	require.True(t, ok)
	assert.Equal(t, Note{ID: id, Author: "staff-1", Body: "Prefers early tee times.", CreatedAt: t0, UpdatedAt: t0}, n)
	again, err := p.AddNote(id, "staff-1", "x", false)
	require.NoError(t, err)
	assert.Empty(t, again, "a retried command adds the note once")

	_, err = p.AddNote(uuid.New(), "staff-1", "   ", false)
	assert.ErrorIs(t, err, ErrInvalid)
	_, err = p.AddNote(uuid.New(), "staff-1", strings.Repeat("é", MaxNoteLength+1), false)
	assert.ErrorIs(t, err, ErrInvalid)

	// Only the author or an administrator may change it.
	_, err = p.EditNote(id, ptr("changed"), nil, "staff-2", false)
	assert.ErrorIs(t, err, ErrForbidden)
	_, err = p.DeleteNote(id, "staff-2", false)
	assert.ErrorIs(t, err, ErrForbidden)
	evs, err = p.EditNote(id, ptr("Prefers early tee times."), ptr(false), "staff-1", false)
	require.NoError(t, err)
	assert.Empty(t, evs, "no change, no event")
	evs, err = p.EditNote(id, nil, ptr(true), "staff-2", true)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	assert.Equal(t, &NoteEdited{NoteID: id, Pinned: ptr(true), Actor: "staff-2"}, evs[0].Data)
	fold(t, p, evs)
	n, _ = p.NoteByID(id)
	assert.True(t, n.Pinned)

	evs, err = p.DeleteNote(id, "staff-1", false)
	require.NoError(t, err)
	fold(t, p, evs)
	_, ok = p.NoteByID(id)
	assert.False(t, ok)
	_, err = p.EditNote(id, ptr("x"), nil, "staff-1", false)
	assert.ErrorIs(t, err, ErrNoteNotFound)
	_, err = p.DeleteNote(id, "staff-1", true)
	assert.ErrorIs(t, err, ErrNoteNotFound)
}

func TestMergeBringsNotes(t *testing.T) {
	survivor, source := member(t), member(t)
	id := uuid.New()
	evs, err := source.AddNote(id, "staff-1", "From the duplicate", false)
	require.NoError(t, err)
	fold(t, source, evs)
	kept, _, err := survivor.Merge(source, "staff-2", "cmd:1")
	require.NoError(t, err)
	fold(t, survivor, kept)
	n, ok := survivor.NoteByID(id)
	require.True(t, ok, "the author edits the absorbed profile's note through the survivor")
	assert.Equal(t, "staff-1", n.Author)
}

func TestTags(t *testing.T) {
	p := member(t)
	evs, err := p.ChangeTags([]string{" VIP ", "Early  Bird", "vip"}, nil, "staff-1")
	require.NoError(t, err)
	require.Len(t, evs, 1)
	assert.Equal(t, &TagsChanged{Added: []string{"vip", "early bird"}, Actor: "staff-1"}, evs[0].Data)
	fold(t, p, evs)
	assert.Equal(t, []string{"vip", "early bird"}, p.Tags)

	evs, err = p.ChangeTags([]string{"vip"}, []string{"junior"}, "staff-2")
	require.NoError(t, err)
	assert.Empty(t, evs, "adding a tag it has, or removing one it lacks, is no change")

	evs, err = p.ChangeTags([]string{"senior"}, []string{"EARLY BIRD"}, "staff-2")
	require.NoError(t, err)
	fold(t, p, evs)
	assert.Equal(t, []string{"vip", "senior"}, p.Tags)

	evs, err = p.ReplaceTags([]string{"senior", "juniors coach"}, "staff-2")
	require.NoError(t, err)
	assert.Equal(t, &TagsChanged{Added: []string{"juniors coach"}, Removed: []string{"vip"}, Actor: "staff-2"}, evs[0].Data)
	fold(t, p, evs)
	assert.Equal(t, []string{"senior", "juniors coach"}, p.Tags)

	_, err = p.ChangeTags([]string{"a"}, []string{"A"}, "s")
	assert.ErrorIs(t, err, ErrInvalid)
	for _, bad := range []string{"", "  ", "-lead", strings.Repeat("x", MaxTagLength+1), "semi;colon", "emoji 🙂"} {
		_, err = p.ChangeTags([]string{bad}, nil, "s")
		assert.ErrorIs(t, err, ErrInvalid, "%q", bad)
	}
	for in, want := range map[string]string{"Ünïcode Tag": "ünïcode tag", "2026:champs": "2026:champs", "a/b & c+d_e.f": "a/b & c+d_e.f"} {
		got, err := NormalizeTag(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got)
	}
	many := make([]string, MaxTags+1)
	for i := range many {
		many[i] = "t" + strings.Repeat("x", i%40) + string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	_, err = p.ReplaceTags(many, "s")
	assert.ErrorIs(t, err, ErrInvalid)
}

func TestRecordActivity(t *testing.T) {
	p := member(t)
	now := t0.Add(48 * time.Hour)
	evs, err := p.RecordActivity(ActivityRecorded{ActivityID: uuid.New(), Kind: "visit", Title: " Came in ", OccurredAt: t0.Add(123 * time.Nanosecond), Actor: "staff-1"}, now)
	require.NoError(t, err)
	a := evs[0].Data.(*ActivityRecorded)
	assert.Equal(t, KindVisit, a.Kind)
	assert.Equal(t, "Came in", a.Title)
	assert.Equal(t, "IN_PERSON", a.Channel)
	assert.Equal(t, t0, a.OccurredAt, "microseconds, as stored")
	v := p.Version
	fold(t, p, evs)
	assert.Equal(t, v+1, p.Version)

	for _, bad := range []ActivityRecorded{
		{Kind: "LUNCH", Title: "x", OccurredAt: t0},
		{Kind: KindCall, Title: "", OccurredAt: t0},
		{Kind: KindCall, Title: "x"},
		{Kind: KindCall, Title: "x", OccurredAt: now.Add(time.Hour)},
		{Kind: KindCall, Title: "x", OccurredAt: t0, Channel: "PIGEON"},
		{Kind: KindCall, Title: strings.Repeat("x", MaxActivityTitle+1), OccurredAt: t0},
	} {
		_, err := p.RecordActivity(bad, now)
		assert.ErrorIs(t, err, ErrInvalid, "%+v", bad)
	}
}

func TestStaffCommandsOnAMergedProfile(t *testing.T) {
	survivor, source := member(t), member(t)
	_, closed, err := survivor.Merge(source, "s", "c")
	require.NoError(t, err)
	fold(t, source, closed)
	_, err = source.AddNote(uuid.New(), "s", "x", false)
	assert.ErrorIs(t, err, ErrMerged)
	_, err = source.ChangeTags([]string{"x"}, nil, "s")
	assert.ErrorIs(t, err, ErrMerged)
	_, err = source.RecordActivity(ActivityRecorded{Kind: KindCall, Title: "x", OccurredAt: t0}, t0)
	assert.ErrorIs(t, err, ErrMerged)
}

func TestStaffEventsRoundTrip(t *testing.T) {
	for typ, v := range map[string]any{
		TypeNoteAdded:        &NoteAdded{NoteID: uuid.New(), Author: "a", Body: "b", Pinned: true},
		TypeNoteEdited:       &NoteEdited{NoteID: uuid.New(), Body: ptr("b"), Actor: "a"},
		TypeNoteDeleted:      &NoteDeleted{NoteID: uuid.New(), Actor: "a"},
		TypeTagsChanged:      &TagsChanged{Added: []string{"x"}, Actor: "a"},
		TypeActivityRecorded: &ActivityRecorded{ActivityID: uuid.New(), Kind: KindCall, Title: "t", OccurredAt: t0, Actor: "a"},
	} {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		got, err := Decode(typ, b)
		require.NoError(t, err)
		assert.Equal(t, v, got, typ)
	}
}

func ptr[T any](v T) *T { return &v }
