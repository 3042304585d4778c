package commands

import (
	"context"

	"github.com/google/uuid"

	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/eventstore"
)

// NoteWritten is a note as a command left it, with where its event landed.
type NoteWritten struct {
	Written
	Note customer.Note
}

// Notes adds, edits and deletes staff notes on profiles.
type Notes struct {
	Store eventstore.Store
}

// NoteID answers the id a command gives the note it adds: derived from the
// command's id, so a retried command adds one note.
func NoteID(a Actor) uuid.UUID { return eventstore.DeriveID(a.Tenant, a.CommandID, "note") }

// Add writes note n (its body, pin and complaint mark) by the actor on
// profile id; the command names the note and its author.
func (h *Notes) Add(ctx context.Context, a Actor, id uuid.UUID, n customer.NoteAdded) (NoteWritten, error) {
	n.NoteID, n.Author = NoteID(a), a.Subject
	return h.run(ctx, a, id, n.NoteID, func(p *customer.Profile) ([]customer.Event, error) {
		return p.AddNote(n)
	})
}

// Edit changes note noteID as c asks: its body, its pin, whether it is a
// complaint (nil leaves a field as it is). Only its author may, or an
// administrator (admin).
func (h *Notes) Edit(ctx context.Context, a Actor, admin bool, id, noteID uuid.UUID, c customer.NoteEdited) (NoteWritten, error) {
	c.NoteID, c.Actor = noteID, a.Subject
	return h.run(ctx, a, id, noteID, func(p *customer.Profile) ([]customer.Event, error) {
		return p.EditNote(c, admin)
	})
}

// Delete takes a note off the profile; its history keeps it. Only its
// author may, or an administrator (admin).
func (h *Notes) Delete(ctx context.Context, a Actor, admin bool, id, noteID uuid.UUID) (Written, error) {
	var w Written
	err := retryConflicts(ctx, func() error {
		p, err := LoadProfile(ctx, h.Store, a.Tenant, id)
		if err != nil {
			return err
		}
		evs, err := p.DeleteNote(noteID, a.Subject, admin)
		if err != nil {
			return err
		}
		pos, err := appendProfile(ctx, h.Store, a, p, evs)
		w = Written{Profile: p, Position: pos}
		return err
	})
	return w, err
}

func (h *Notes) run(ctx context.Context, a Actor, id, noteID uuid.UUID, decide func(*customer.Profile) ([]customer.Event, error)) (NoteWritten, error) {
	var out NoteWritten
	err := retryConflicts(ctx, func() error {
		p, err := LoadProfile(ctx, h.Store, a.Tenant, id)
		if err != nil {
			return err
		}
		evs, err := decide(p)
		if err != nil {
			return err
		}
		pos, err := appendProfile(ctx, h.Store, a, p, evs)
		if err != nil {
			return err
		}
		n, _ := p.NoteByID(noteID)
		out = NoteWritten{Written: Written{Profile: p, Position: pos}, Note: n}
		return nil
	})
	return out, err
}
