package commands

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/eventstore"
)

// RecordActivity records manual activities (a visit, a phone call) staff
// enter by hand.
type RecordActivity struct {
	Store eventstore.Store
	// Clock answers now, bounding how far ahead an activity may be dated
	// and dating one given no time; time.Now when nil.
	Clock func() time.Time
}

// ActivityWritten is a manual activity as recorded.
type ActivityWritten struct {
	Written
	Activity customer.ActivityRecorded
}

// ActivityID answers the id a command gives the activity it records.
func ActivityID(a Actor) uuid.UUID { return eventstore.DeriveID(a.Tenant, a.CommandID, "activity") }

// Handle records act (its kind, text, channel, time and complaint mark) on
// profile id; the command names the activity and its actor, and a zero
// OccurredAt means now.
func (h *RecordActivity) Handle(ctx context.Context, a Actor, id uuid.UUID, act customer.ActivityRecorded) (ActivityWritten, error) {
	now := time.Now
	if h.Clock != nil {
		now = h.Clock
	}
	act.ActivityID, act.Actor = ActivityID(a), a.Subject
	if act.OccurredAt.IsZero() {
		act.OccurredAt = now()
	}
	var out ActivityWritten
	err := retryConflicts(ctx, func() error {
		p, err := LoadProfile(ctx, h.Store, a.Tenant, id)
		if err != nil {
			return err
		}
		evs, err := p.RecordActivity(act, now())
		if err != nil {
			return err
		}
		pos, err := appendProfile(ctx, h.Store, a, p, evs)
		if err != nil {
			return err
		}
		out = ActivityWritten{Written: Written{Profile: p, Position: pos}, Activity: *evs[0].Data.(*customer.ActivityRecorded)}
		return nil
	})
	return out, err
}
