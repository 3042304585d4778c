package customer

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// MaxNoteLength bounds a note's body, in characters.
const MaxNoteLength = 10_000

// Note is a staff note as the profile holds it.
type Note struct {
	ID        uuid.UUID
	Author    string // the token subject of the staff member who wrote it
	Body      string
	Pinned    bool
	CreatedAt time.Time
	UpdatedAt time.Time
	EditedBy  string `json:",omitempty"` // who last edited it
}

// NoteAdded records a staff note on the profile.
type NoteAdded struct {
	NoteID uuid.UUID `json:"noteId"`
	Author string    `json:"author"`
	Body   string    `json:"body"`
	Pinned bool      `json:"pinned"`
}

// NoteEdited records a change to a note: the fields set are the new values.
// Actor is who changed it (the author or an administrator).
type NoteEdited struct {
	NoteID uuid.UUID `json:"noteId"`
	Body   *string   `json:"body,omitempty"`
	Pinned *bool     `json:"pinned,omitempty"`
	Actor  string    `json:"actor"`
}

// NoteDeleted records a note taken off the profile. The note stays in the
// stream's history.
type NoteDeleted struct {
	NoteID uuid.UUID `json:"noteId"`
	Actor  string    `json:"actor"`
}

// NoteByID answers the note id, if the profile holds it.
func (p *Profile) NoteByID(id uuid.UUID) (Note, bool) {
	i, ok := p.noteIndex(id)
	if !ok {
		return Note{}, false
	}
	return p.Notes[i], true
}

func (p *Profile) noteIndex(id uuid.UUID) (int, bool) {
	i := slices.IndexFunc(p.Notes, func(n Note) bool { return n.ID == id })
	return i, i >= 0
}

func checkBody(body string) (string, error) {
	body = strings.TrimSpace(body)
	switch {
	case body == "":
		return "", fmt.Errorf("%w: body: must not be empty", ErrInvalid)
	case utf8.RuneCountInString(body) > MaxNoteLength:
		return "", fmt.Errorf("%w: body: must be at most %d characters", ErrInvalid, MaxNoteLength)
	}
	return body, nil
}

// AddNote records a note by author. id names the note; the command derives
// it from its own id, so a retried command adds the note once.
func (p *Profile) AddNote(id uuid.UUID, author, body string, pinned bool) ([]Event, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	body, err := checkBody(body)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(author) == "" {
		return nil, fmt.Errorf("%w: author: missing", ErrInvalid)
	}
	if _, ok := p.noteIndex(id); ok {
		return nil, nil // added already, by this very command
	}
	return []Event{{TypeNoteAdded, &NoteAdded{NoteID: id, Author: author, Body: body, Pinned: pinned}}}, nil
}

// mayChange answers ErrForbidden unless actor wrote the note or is an
// administrator.
func mayChange(n Note, actor string, admin bool) error {
	if admin || (actor != "" && actor == n.Author) {
		return nil
	}
	return fmt.Errorf("%w: only the note's author (%s) or an administrator may change it", ErrForbidden, n.Author)
}

// EditNote changes a note's body or pin; nil leaves a field as it is. Only
// the author or an administrator may. Nothing that changes nothing is
// recorded.
func (p *Profile) EditNote(id uuid.UUID, body *string, pinned *bool, actor string, admin bool) ([]Event, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	i, ok := p.noteIndex(id)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNoteNotFound, id)
	}
	n := p.Notes[i]
	if err := mayChange(n, actor, admin); err != nil {
		return nil, err
	}
	e := NoteEdited{NoteID: id, Actor: actor}
	if body != nil {
		b, err := checkBody(*body)
		if err != nil {
			return nil, err
		}
		if b != n.Body {
			e.Body = &b
		}
	}
	if pinned != nil && *pinned != n.Pinned {
		v := *pinned
		e.Pinned = &v
	}
	if e.Body == nil && e.Pinned == nil {
		return nil, nil
	}
	return []Event{{TypeNoteEdited, &e}}, nil
}

// DeleteNote takes a note off the profile. Only the author or an
// administrator may; a note deleted already is not found.
func (p *Profile) DeleteNote(id uuid.UUID, actor string, admin bool) ([]Event, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	i, ok := p.noteIndex(id)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNoteNotFound, id)
	}
	if err := mayChange(p.Notes[i], actor, admin); err != nil {
		return nil, err
	}
	return []Event{{TypeNoteDeleted, &NoteDeleted{NoteID: id, Actor: actor}}}, nil
}

func (p *Profile) applyNote(v any, at time.Time) {
	switch e := v.(type) {
	case *NoteAdded:
		if _, ok := p.noteIndex(e.NoteID); !ok {
			p.Notes = append(p.Notes, Note{ID: e.NoteID, Author: e.Author, Body: e.Body, Pinned: e.Pinned, CreatedAt: at, UpdatedAt: at})
		}
	case *NoteEdited:
		if i, ok := p.noteIndex(e.NoteID); ok {
			n := &p.Notes[i]
			if e.Body != nil {
				n.Body = *e.Body
			}
			if e.Pinned != nil {
				n.Pinned = *e.Pinned
			}
			n.UpdatedAt, n.EditedBy = at, e.Actor
		}
	case *NoteDeleted:
		if i, ok := p.noteIndex(e.NoteID); ok {
			p.Notes = slices.Delete(p.Notes, i, i+1)
		}
	}
}
