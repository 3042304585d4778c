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
	evs, err := p.AddNote(NoteAdded{NoteID: id, Author: "staff-1", Body: "  Prefers early tee times.  "})
	require.NoError(t, err)
	fold(t, p, evs)
	n, ok := p.NoteByID(id)
	require.True(t, ok)
	assert.Equal(t, Note{ID: id, Author: "staff-1", Body: "Prefers early tee times.", CreatedAt: t0, UpdatedAt: t0}, n)
	again, err := p.AddNote(NoteAdded{NoteID: id, Author: "staff-1", Body: "x"})
	require.NoError(t, err)
	assert.Empty(t, again, "a retried command adds the note once")

	_, err = p.AddNote(NoteAdded{NoteID: uuid.New(), Author: "staff-1", Body: "   "})
	assert.ErrorIs(t, err, ErrInvalid)
	_, err = p.AddNote(NoteAdded{NoteID: uuid.New(), Author: "staff-1", Body: strings.Repeat("é", MaxNoteLength+1)})
	assert.ErrorIs(t, err, ErrInvalid)

	// Only the author or an administrator may change it.
	_, err = p.EditNote(NoteEdited{NoteID: id, Body: ptr("changed"), Actor: "staff-2"}, false)
	assert.ErrorIs(t, err, ErrForbidden)
	_, err = p.DeleteNote(id, "staff-2", false)
	assert.ErrorIs(t, err, ErrForbidden)
	evs, err = p.EditNote(NoteEdited{NoteID: id, Body: ptr("Prefers early tee times."), Pinned: ptr(false), Actor: "staff-1"}, false)
	require.NoError(t, err)
	assert.Empty(t, evs, "no change, no event")
	evs, err = p.EditNote(NoteEdited{NoteID: id, Pinned: ptr(true), Actor: "staff-2"}, true)
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
	_, err = p.EditNote(NoteEdited{NoteID: id, Body: ptr("x"), Actor: "staff-1"}, false)
	assert.ErrorIs(t, err, ErrNoteNotFound)
	_, err = p.DeleteNote(id, "staff-1", true)
	assert.ErrorIs(t, err, ErrNoteNotFound)
}

// A note marked as a complaint when added, marked or unmarked by an edit:
// the event holds only a real change, and the profile's note follows.
func TestComplaintNotes(t *testing.T) {
	for _, c := range []struct {
		name      string
		added     bool  // Complaint when added
		edit      *bool // the edit's Complaint
		pinned    *bool // the edit's Pinned
		event     *NoteEdited
		complaint bool // the note's Complaint after the edit
	}{
		{name: "added as a complaint, edit leaves it", added: true, pinned: ptr(true),
			event: &NoteEdited{Pinned: ptr(true), Actor: "staff-1"}, complaint: true},
		{name: "marked by an edit", edit: ptr(true), event: &NoteEdited{Complaint: ptr(true), Actor: "staff-1"}, complaint: true},
		{name: "unmarked by an edit", added: true, edit: ptr(false), event: &NoteEdited{Complaint: ptr(false), Actor: "staff-1"}},
		{name: "marking a complaint again is no event", added: true, edit: ptr(true), complaint: true},
		{name: "unmarking a note that is none is no event", edit: ptr(false)},
		{name: "marked and pinned at once", edit: ptr(true), pinned: ptr(true),
			event: &NoteEdited{Pinned: ptr(true), Complaint: ptr(true), Actor: "staff-1"}, complaint: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := member(t)
			id := uuid.New()
			evs, err := p.AddNote(NoteAdded{NoteID: id, Author: "staff-1", Body: " Greens were not cut ", Complaint: c.added})
			require.NoError(t, err)
			require.Len(t, evs, 1)
			assert.Equal(t, &NoteAdded{NoteID: id, Author: "staff-1", Body: "Greens were not cut", Complaint: c.added}, evs[0].Data)
			fold(t, p, evs)
			n, _ := p.NoteByID(id)
			assert.Equal(t, c.added, n.Complaint)

			evs, err = p.EditNote(NoteEdited{NoteID: id, Pinned: c.pinned, Complaint: c.edit, Actor: "staff-1"}, false)
			require.NoError(t, err)
			if c.event == nil {
				assert.Empty(t, evs, "no change, no event")
			} else {
				require.Len(t, evs, 1)
				want := *c.event
				want.NoteID = id
				assert.Equal(t, &want, evs[0].Data)
			}
			fold(t, p, evs)
			n, _ = p.NoteByID(id)
			assert.Equal(t, c.complaint, n.Complaint)
		})
	}

	// Only the author or an administrator marks or unmarks it.
	p := member(t)
	id := uuid.New()
	fold(t, p, must(p.AddNote(NoteAdded{NoteID: id, Author: "staff-1", Body: "x"})))
	_, err := p.EditNote(NoteEdited{NoteID: id, Complaint: ptr(true), Actor: "staff-2"}, false)
	assert.ErrorIs(t, err, ErrForbidden)
	evs, err := p.EditNote(NoteEdited{NoteID: id, Complaint: ptr(true), Actor: "boss"}, true)
	require.NoError(t, err)
	assert.Len(t, evs, 1)
}

func must(evs []Event, err error) []Event {
	if err != nil {
		panic(err)
	}
	return evs
}

// A complaint note survives a merge: the survivor holds it marked.
func TestMergeKeepsComplaints(t *testing.T) {
	survivor, source := member(t), member(t)
	id := uuid.New()
	fold(t, source, must(source.AddNote(NoteAdded{NoteID: id, Author: "staff-1", Body: "Rude starter", Complaint: true})))
	kept, _, err := survivor.Merge(source, "staff-2", "cmd:1")
	require.NoError(t, err)
	fold(t, survivor, kept)
	n, ok := survivor.NoteByID(id)
	require.True(t, ok)
	assert.True(t, n.Complaint)
}

func TestMergeBringsNotes(t *testing.T) {
	survivor, source := member(t), member(t)
	id := uuid.New()
	evs, err := source.AddNote(NoteAdded{NoteID: id, Author: "staff-1", Body: "From the duplicate"})
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
	assert.False(t, a.Complaint)
	v := p.Version
	fold(t, p, evs)
	assert.Equal(t, v+1, p.Version)

	evs, err = p.RecordActivity(ActivityRecorded{ActivityID: uuid.New(), Kind: KindCall, Title: "Complained about slow play", OccurredAt: t0, Actor: "staff-1", Complaint: true}, now)
	require.NoError(t, err)
	assert.True(t, evs[0].Data.(*ActivityRecorded).Complaint, "the complaint mark is kept")

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
	_, err = source.AddNote(NoteAdded{NoteID: uuid.New(), Author: "s", Body: "x"})
	assert.ErrorIs(t, err, ErrMerged)
	_, err = source.ChangeTags([]string{"x"}, nil, "s")
	assert.ErrorIs(t, err, ErrMerged)
	_, err = source.RecordActivity(ActivityRecorded{Kind: KindCall, Title: "x", OccurredAt: t0}, t0)
	assert.ErrorIs(t, err, ErrMerged)
}

func TestStaffEventsRoundTrip(t *testing.T) {
	for typ, v := range map[string]any{
		TypeNoteAdded:                       &NoteAdded{NoteID: uuid.New(), Author: "a", Body: "b", Pinned: true},
		TypeNoteEdited:                      &NoteEdited{NoteID: uuid.New(), Body: ptr("b"), Actor: "a"},
		TypeNoteDeleted:                     &NoteDeleted{NoteID: uuid.New(), Actor: "a"},
		TypeTagsChanged:                     &TagsChanged{Added: []string{"x"}, Actor: "a"},
		TypeActivityRecorded:                &ActivityRecorded{ActivityID: uuid.New(), Kind: KindCall, Title: "t", OccurredAt: t0, Actor: "a"},
		TypeNoteAdded + " complaint":        &NoteAdded{NoteID: uuid.New(), Author: "a", Body: "b", Complaint: true},
		TypeNoteEdited + " unmark":          &NoteEdited{NoteID: uuid.New(), Complaint: ptr(false), Actor: "a"},
		TypeActivityRecorded + " complaint": &ActivityRecorded{ActivityID: uuid.New(), Kind: KindOther, Title: "t", OccurredAt: t0, Actor: "a", Complaint: true},
	} {
		typ, _, _ := strings.Cut(typ, " ")
		b, err := json.Marshal(v)
		require.NoError(t, err)
		got, err := Decode(typ, b)
		require.NoError(t, err)
		assert.Equal(t, v, got, typ)
	}
}

// Events written before complaints carry no "complaint": they decode as no
// complaint; and an event that is no complaint is written without it.
func TestComplaintJSON(t *testing.T) {
	for _, c := range []struct {
		typ, data string
		want      any
	}{
		{TypeNoteAdded, `{"noteId": "0b6f1c1a-0000-4000-8000-000000000001", "author": "a", "body": "b", "pinned": false}`,
			&NoteAdded{NoteID: uuid.MustParse("0b6f1c1a-0000-4000-8000-000000000001"), Author: "a", Body: "b"}},
		{TypeNoteEdited, `{"noteId": "0b6f1c1a-0000-4000-8000-000000000001", "pinned": true, "actor": "a"}`,
			&NoteEdited{NoteID: uuid.MustParse("0b6f1c1a-0000-4000-8000-000000000001"), Pinned: ptr(true), Actor: "a"}},
		{TypeActivityRecorded, `{"activityId": "0b6f1c1a-0000-4000-8000-000000000002", "kind": "CALL", "title": "t", "occurredAt": "2026-03-14T07:30:00Z", "actor": "a"}`,
			&ActivityRecorded{ActivityID: uuid.MustParse("0b6f1c1a-0000-4000-8000-000000000002"), Kind: KindCall, Title: "t", OccurredAt: t0, Actor: "a"}},
	} {
		t.Run(c.typ, func(t *testing.T) {
			got, err := Decode(c.typ, json.RawMessage(c.data))
			require.NoError(t, err)
			assert.Equal(t, c.want, got)
			b, err := json.Marshal(got)
			require.NoError(t, err)
			assert.NotContains(t, string(b), "complaint")
		})
	}
	b, err := json.Marshal(&NoteEdited{NoteID: uuid.New(), Complaint: ptr(false), Actor: "a"})
	require.NoError(t, err)
	assert.Contains(t, string(b), `"complaint":false`, "unmarking is written")
}

func ptr[T any](v T) *T { return &v }
