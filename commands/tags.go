package commands

import (
	"context"

	"github.com/google/uuid"

	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/eventstore"
)

// Tags adds and removes tags on profiles. Concurrent edits by two staff
// members both land: each appends at the version it read, and the one that
// loses the race reads again and decides again, so a tag added by the other
// is kept and one both add is recorded once.
type Tags struct {
	Store eventstore.Store
}

// Change adds and removes tags; an edit that changes nothing appends
// nothing.
func (h *Tags) Change(ctx context.Context, a Actor, id uuid.UUID, add, remove []string) (TagsWritten, error) {
	return h.run(ctx, a, id, func(p *customer.Profile) ([]customer.Event, error) { return p.ChangeTags(add, remove, a.Subject) })
}

// Replace makes tags the profile's whole set.
func (h *Tags) Replace(ctx context.Context, a Actor, id uuid.UUID, tags []string) (TagsWritten, error) {
	return h.run(ctx, a, id, func(p *customer.Profile) ([]customer.Event, error) { return p.ReplaceTags(tags, a.Subject) })
}

// TagsWritten is the profile after a tag command, with what it changed.
type TagsWritten struct {
	Written
	Added, Removed []string
}

func (h *Tags) run(ctx context.Context, a Actor, id uuid.UUID, decide func(*customer.Profile) ([]customer.Event, error)) (TagsWritten, error) {
	var out TagsWritten
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
		out = TagsWritten{Written: Written{Profile: p, Position: pos}, Added: []string{}, Removed: []string{}}
		for _, e := range evs {
			if c, ok := e.Data.(*customer.TagsChanged); ok {
				out.Added, out.Removed = append(out.Added, c.Added...), append(out.Removed, c.Removed...)
			}
		}
		return nil
	})
	return out, err
}

// HandleWithTags runs an edit that may also replace the tag set (tags nil
// leaves them as they are): both changes are appended together, or
// neither.
func (h *Edit) HandleWithTags(ctx context.Context, a Actor, id uuid.UUID, c EditCustomer, tags []string) (Written, error) {
	if tags == nil {
		return h.Handle(ctx, a, id, c)
	}
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
		tagEvs, err := p.ReplaceTags(tags, a.Subject)
		if err != nil {
			return err
		}
		pos, err := appendProfile(ctx, h.Store, a, p, append(evs, tagEvs...))
		w = Written{Profile: p, Position: pos}
		return err
	})
	return w, err
}
