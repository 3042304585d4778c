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
	Complaint bool `json:",omitempty"` // a complaint, which churn scoring counts
	CreatedAt time.Time
	UpdatedAt time.Time
	EditedBy  string `json:",omitempty"` // who last edited it
}

// NoteAdded records a staff note on the profile. Complaint marks it as a
// complaint (absent in events written before complaints: false).
type NoteAdded struct {
	NoteID    uuid.UUID `json:"noteId"`
	Author    string    `json:"author"`
	Body      string    `json:"body"`
	Pinned    bool      `json:"pinned"`
	Complaint bool      `json:"complaint,omitempty"`
}

// NoteEdited records a change to a note: the fields set are the new values.
// Actor is who changed it (the author or an administrator). Complaint set
// marks (true) or unmarks (false) the note as a complaint.
type NoteEdited struct {
	NoteID    uuid.UUID `json:"noteId"`
	Body      *string   `json:"body,omitempty"`
	Pinned    *bool     `json:"pinned,omitempty"`
	Complaint *bool     `json:"complaint,omitempty"`
	Actor     string    `json:"actor"`
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

// AddNote validates the note n (by n.Author, named n.NoteID) and answers
// its event. The command derives the id from its own id, so a retried
// command adds the note once.
func (p *Profile) AddNote(n NoteAdded) ([]Event, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	body, err := checkBody(n.Body)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(n.Author) == "" {
		return nil, fmt.Errorf("%w: author: missing", ErrInvalid)
	}
	if _, ok := p.noteIndex(n.NoteID); ok {
		return nil, nil // added already, by this very command
	}
	n.Body = body
	return []Event{{TypeNoteAdded, &n}}, nil
}

// mayChange answers ErrForbidden unless actor wrote the note or is an
// administrator.
func mayChange(n Note, actor string, admin bool) error {
	if admin || (actor != "" && actor == n.Author) {
		return nil
	}
	return fmt.Errorf("%w: only the note's author (%s) or an administrator may change it", ErrForbidden, n.Author)
}

// EditNote changes note c.NoteID as c asks, by c.Actor: its body, its pin,
// whether it is a complaint; nil leaves a field as it is. Only the author
// or an administrator (admin) may. The event holds only what changes, and
// an edit that changes nothing is no event.
func (p *Profile) EditNote(c NoteEdited, admin bool) ([]Event, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	i, ok := p.noteIndex(c.NoteID)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNoteNotFound, c.NoteID)
	}
	n := p.Notes[i]
	if err := mayChange(n, c.Actor, admin); err != nil {
		return nil, err
	}
	e := NoteEdited{NoteID: c.NoteID, Actor: c.Actor}
	if c.Body != nil {
		b, err := checkBody(*c.Body)
		if err != nil {
			return nil, err
		}
		if b != n.Body {
			e.Body = &b
		}
	}
	if c.Pinned != nil && *c.Pinned != n.Pinned {
		v := *c.Pinned
		e.Pinned = &v
	}
	if c.Complaint != nil && *c.Complaint != n.Complaint {
		v := *c.Complaint
		e.Complaint = &v
	}
	if e.Body == nil && e.Pinned == nil && e.Complaint == nil {
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
			p.Notes = append(p.Notes, Note{ID: e.NoteID, Author: e.Author, Body: e.Body, Pinned: e.Pinned, Complaint: e.Complaint,
				CreatedAt: at, UpdatedAt: at})
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
			if e.Complaint != nil {
				n.Complaint = *e.Complaint
			}
			n.UpdatedAt, n.EditedBy = at, e.Actor
		}
	case *NoteDeleted:
		if i, ok := p.noteIndex(e.NoteID); ok {
			p.Notes = slices.Delete(p.Notes, i, i+1)
		}
	}
}
