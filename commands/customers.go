package commands

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/domain/identity"
	"github.com/clubcrm/crm/eventstore"
)

// Actor is who issues a staff command: the token's subject.
type Actor struct {
	Tenant  string
	Subject string
	// CommandID makes a command idempotent: the Idempotency-Key when the
	// caller sent one, else a fresh id.
	CommandID string
}

// Written says where a command left the profile, so a caller can wait for
// read models to catch up with it.
type Written struct {
	Profile  *customer.Profile
	Position eventstore.Position
}

// RegisterCustomer asks for a profile for a person staff enter by hand.
type RegisterCustomer struct {
	AuthUserID, Email, PhoneNumber, Country          string
	SCLMemberID, TeeTimePlayerID, MessagingContactID string
	FirstName, LastName, DisplayName                 string
	ExternalIDs                                      customer.ExternalIDs
}

// RegisterResult says whether the person was known.
type RegisterResult struct {
	Written
	Created    bool
	MatchedBy  string
	Confidence int
}

// ErrNoIdentity answers a registration with no identifier at all.
var ErrNoIdentity = errors.New("at least one of authUserId, email, phoneNumber, sclMemberId, teetimePlayerId or messagingContactId is required")

// Register resolves the person first: an existing profile comes back as it
// is; otherwise a new one is opened.
type Register struct {
	Store    eventstore.Store
	Index    IdentityIndex
	Settings SettingsSource
}

// Handle runs the command.
func (h *Register) Handle(ctx context.Context, a Actor, c RegisterCustomer) (RegisterResult, error) {
	settings, err := h.Settings.IdentitySettings(ctx, a.Tenant)
	if err != nil {
		return RegisterResult{}, err
	}
	x := identity.Extract(identity.Raw{AuthUserID: c.AuthUserID, SCLMemberID: c.SCLMemberID, TeeTimePlayerID: c.TeeTimePlayerID,
		MessagingContactID: c.MessagingContactID, Email: c.Email, Phone: c.PhoneNumber, Country: c.Country}, settings)
	if len(x.Keys) == 0 && len(x.Ignored) == 0 {
		return RegisterResult{}, ErrNoIdentity
	}
	name := identity.Name{First: c.FirstName, Last: c.LastName}
	var out RegisterResult
	err = retryConflicts(ctx, func() error {
		var err error
		out, err = h.once(ctx, a, c, x, name, settings)
		return err
	})
	return out, err
}

func (h *Register) once(ctx context.Context, a Actor, c RegisterCustomer, x identity.Extracted, name identity.Name, settings identity.Settings) (RegisterResult, error) {
	var d identity.Decision
	var id uuid.UUID
	err := h.Index.Resolve(ctx, []ResolveRequest{{Tenant: a.Tenant, Keys: x.Keys, Email: x.Email, Name: name, CausedBy: a.CommandID}},
		func(_ int, cands identity.Candidates) (uuid.UUID, []identity.Key) {
			d = identity.Resolve(x.Keys, cands, name, settings)
			if !d.New() {
				id = d.Customer
				return id, nil // known: answer the profile as it is
			}
			if len(x.Keys) > 0 {
				id = eventstore.DeriveID(a.Tenant, "customer", firstKey(x.Keys).String())
			} else {
				id = eventstore.DeriveID(a.Tenant, "command", a.CommandID)
			}
			return id, d.Link
		})
	if err != nil {
		return RegisterResult{}, fmt.Errorf("resolve identity: %w", err)
	}
	p, err := LoadProfile(ctx, h.Store, a.Tenant, id)
	if err != nil {
		return RegisterResult{}, err
	}
	if !d.New() && p.Exists() {
		for hops := 0; p.Status == customer.StatusMerged && p.MergedInto != nil && hops < 16; hops++ {
			if p, err = LoadProfile(ctx, h.Store, a.Tenant, *p.MergedInto); err != nil {
				return RegisterResult{}, err
			}
		}
		return RegisterResult{Written: Written{Profile: p}, MatchedBy: d.MatchedBy, Confidence: d.Confidence}, nil
	}
	if p.Exists() {
		// Opened a moment ago by a retry of this same command.
		return RegisterResult{Written: Written{Profile: p}, Created: true, MatchedBy: "new"}, nil
	}
	d.Link = x.Keys
	evs, err := p.Register(customer.Registration{FirstName: c.FirstName, LastName: c.LastName, DisplayName: c.DisplayName,
		ExternalIDs: c.ExternalIDs, Extracted: x, Decision: d, Actor: a.Subject, CommandID: a.CommandID, At: time.Now().UTC()})
	if err != nil {
		return RegisterResult{}, err
	}
	pos, err := appendProfile(ctx, h.Store, a, p, evs)
	if err != nil {
		return RegisterResult{}, err
	}
	return RegisterResult{Written: Written{Profile: p, Position: pos}, Created: true, MatchedBy: "new"}, nil
}

// appendProfile appends a profile's new events at the version it was
// loaded at, then folds them into p.
func appendProfile(ctx context.Context, store eventstore.Store, a Actor, p *customer.Profile, evs []customer.Event) (eventstore.Position, error) {
	if len(evs) == 0 {
		return eventstore.Position{}, nil
	}
	stream := customer.Stream(p.ID)
	now := time.Now().UTC()
	data, err := cause{id: a.CommandID, tenant: a.Tenant, actor: a.Subject, occurredAt: now}.eventData(stream, evs)
	if err != nil {
		return eventstore.Position{}, err
	}
	res, err := store.Append(ctx, stream, eventstore.Exact(p.Version), data...)
	if err != nil {
		return eventstore.Position{}, err
	}
	if err := applyAll(p, evs, now); err != nil {
		return eventstore.Position{}, err
	}
	return res.Position, nil
}

// EditCustomer carries the CRM-owned fields staff may change; nil leaves a
// field as it is.
type EditCustomer = customer.Edited

// Edit changes CRM-owned fields of a profile.
type Edit struct {
	Store eventstore.Store
}

// Handle runs the command.
func (h *Edit) Handle(ctx context.Context, a Actor, id uuid.UUID, c EditCustomer) (Written, error) {
	c.Actor = a.Subject
	var w Written
	err := retryConflicts(ctx, func() error {
		p, err := LoadProfile(ctx, h.Store, a.Tenant, id)
		if err != nil {
			return err
		}
		evs, err := p.Edit(c)
		if err != nil {
			return err
		}
		pos, err := appendProfile(ctx, h.Store, a, p, evs)
		w = Written{Profile: p, Position: pos}
		return err
	})
	return w, err
}

// ErrAlreadyMerged answers a merge whose source went into another profile.
var ErrAlreadyMerged = errors.New("source is already merged into another profile")

// Merge absorbs one profile into another.
type Merge struct {
	Store eventstore.Store
	Index IdentityIndex
}

// Handle merges source into survivor. Retrying a merge that completed, or
// that stopped half way, finishes it and answers the survivor.
func (h *Merge) Handle(ctx context.Context, a Actor, survivorID, sourceID uuid.UUID) (Written, error) {
	if survivorID == sourceID {
		return Written{}, customer.ErrSelfMerge
	}
	var w Written
	err := retryConflicts(ctx, func() error {
		var err error
		w, err = h.once(ctx, a, survivorID, sourceID)
		return err
	})
	return w, err
}

func (h *Merge) once(ctx context.Context, a Actor, survivorID, sourceID uuid.UUID) (Written, error) {
	survivor, err := LoadProfile(ctx, h.Store, a.Tenant, survivorID)
	if err != nil {
		return Written{}, err
	}
	source, err := LoadProfile(ctx, h.Store, a.Tenant, sourceID)
	if err != nil {
		return Written{}, err
	}
	if !survivor.Exists() {
		return Written{}, fmt.Errorf("%w: %s", customer.ErrNotFound, survivorID)
	}
	if !source.Exists() {
		return Written{}, fmt.Errorf("%w: %s", customer.ErrNotFound, sourceID)
	}
	if source.Status == customer.StatusMerged {
		if source.MergedInto == nil || *source.MergedInto != survivorID {
			return Written{}, fmt.Errorf("%w: %s is merged into %s", ErrAlreadyMerged, sourceID, source.MergedInto)
		}
		// Done before, perhaps half way: the index may still point at the source.
		return Written{Profile: survivor}, h.Index.Repoint(ctx, a.Tenant, sourceID, survivorID, a.CommandID)
	}
	kept, closed, err := survivor.Merge(source, a.Subject, a.CommandID)
	if err != nil {
		return Written{}, err
	}
	now := time.Now().UTC()
	c := cause{id: a.CommandID, tenant: a.Tenant, actor: a.Subject, occurredAt: now}
	srcData, err := c.eventData(customer.Stream(sourceID), closed)
	if err != nil {
		return Written{}, err
	}
	survData, err := c.eventData(customer.Stream(survivorID), kept)
	if err != nil {
		return Written{}, err
	}
	// The source closes first: where appends across streams are not atomic,
	// a crash in between leaves a closed source that a retry completes.
	res, err := h.Store.AppendMulti(ctx, []eventstore.Append{
		{Stream: customer.Stream(sourceID), Expected: eventstore.Exact(source.Version), Events: srcData},
		{Stream: customer.Stream(survivorID), Expected: eventstore.Exact(survivor.Version), Events: survData},
	})
	if err != nil {
		return Written{}, err
	}
	if err := applyAll(survivor, kept, now); err != nil {
		return Written{}, err
	}
	if err := h.Index.Repoint(ctx, a.Tenant, sourceID, survivorID, a.CommandID); err != nil {
		return Written{}, err
	}
	return Written{Profile: survivor, Position: res[len(res)-1].Position}, nil
}

// Duplicate actions.
const (
	ActionMerge   = "merge"
	ActionDismiss = "dismiss"
)

// ResolveDuplicate decides a flagged pair: merge the newer profile into the
// older, or dismiss the pair.
type ResolveDuplicate struct {
	Store eventstore.Store
	Merge *Merge
}

// Handle records the decision on the survivor's stream. survivor and other
// come from the duplicate candidate.
func (h *ResolveDuplicate) Handle(ctx context.Context, a Actor, survivorID, otherID uuid.UUID, action string) (Written, error) {
	if action == ActionMerge {
		if _, err := h.Merge.Handle(ctx, a, survivorID, otherID); err != nil {
			return Written{}, err
		}
	}
	outcome := "dismissed"
	if action == ActionMerge {
		outcome = "merged"
	}
	var w Written
	err := retryConflicts(ctx, func() error {
		p, err := LoadProfile(ctx, h.Store, a.Tenant, survivorID)
		if err != nil {
			return err
		}
		evs, err := p.ClearDuplicate(otherID, outcome, a.Subject)
		if err != nil {
			return err
		}
		pos, err := appendProfile(ctx, h.Store, a, p, evs)
		w = Written{Profile: p, Position: pos}
		return err
	})
	return w, err
}
