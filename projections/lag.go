package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/clubcrm/crm/eventstore"
)

// MaxLagEvents is where counting the events behind a projector stops: the
// count reads the log, and a projector far behind need not cost a full read
// on every measurement to say so.
const MaxLagEvents = 10_000

// lagPage is how many events a lag measurement reads at a time.
const lagPage = 1000

// Lag is how far a projector's checkpoint trails the global log.
type Lag struct {
	// Events is the number of events in the global log after the
	// checkpoint that readers can see, whether or not they pass the
	// projector's filter (the checkpoint must move past them all), counted
	// up to MaxLagEvents. 0 means caught up.
	Events int
	// Saturated reports that counting stopped at MaxLagEvents: at least
	// that many events are behind.
	Saturated bool
	// Seconds is the age of the oldest event the projector has yet to pass:
	// the database's clock now minus the recorded time of the first event
	// after the checkpoint, or 0 when there is none. A read model is never
	// staler than this: it holds everything recorded before that event.
	// Unlike the span between the head and checkpoint events, it keeps
	// growing while a stuck projector waits, even when the log is quiet.
	Seconds float64
}

// measureLag answers the lag of a projector at checkpoint cp, now being the
// database's clock (the clock recorded times come from).
func measureLag(ctx context.Context, store eventstore.Store, cp eventstore.Position, now time.Time) (Lag, error) {
	var lag Lag
	from := cp
	for lag.Events < MaxLagEvents {
		events, err := store.ReadAll(ctx, from, min(lagPage, MaxLagEvents-lag.Events))
		if err != nil {
			return Lag{}, fmt.Errorf("measure lag after %s: %w", cp, err)
		}
		if len(events) == 0 {
			break
		}
		if lag.Events == 0 {
			lag.Seconds = max(0, now.Sub(events[0].RecordedAt).Seconds())
		}
		lag.Events += len(events)
		from = events[len(events)-1].Position
	}
	lag.Saturated = lag.Events >= MaxLagEvents
	return lag, nil
}
