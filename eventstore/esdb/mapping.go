package esdb

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/segmentio/encoding/json"

	"github.com/clubcrm/crm/eventstore"
)

// This file holds the translations between the eventstore contract and the
// EventStoreDB client's types. None of it talks to a server, so all of it is
// covered by unit tests.

// expectedRevision maps an expectation onto EventStoreDB's. Our versions
// count events (a stream with n events is at version n) while EventStoreDB
// revisions number them from 0, so Exact(n) is revision n-1; Exact(0), a
// stream holding no events, is NoStream.
func expectedRevision(e eventstore.Expected) (esdbclient.ExpectedRevision, error) {
	switch {
	case e == eventstore.Any:
		return esdbclient.Any{}, nil
	case e == eventstore.NoStream, e == 0:
		return esdbclient.NoStream{}, nil
	case e == eventstore.StreamExists:
		return esdbclient.StreamExists{}, nil
	case e > 0:
		return esdbclient.Revision(uint64(e) - 1), nil
	}
	return nil, fmt.Errorf("%w: expected version %d", eventstore.ErrInvalid, int64(e))
}

// conflictActual is the Actual of a ConflictError for a stream at version
// cur: -1 stands for a stream that holds no events, as in every backend.
func conflictActual(cur uint64) int64 {
	if cur == 0 || cur > math.MaxInt64 {
		return -1
	}
	return int64(cur)
}

// streamFrom maps a 1-based version to a read start. Version 0 means the
// beginning forwards and the newest event backwards.
func streamFrom(version uint64, dir esdbclient.Direction) esdbclient.StreamPosition {
	if version == 0 {
		if dir == esdbclient.Backwards {
			return esdbclient.End{}
		}
		return esdbclient.Start{}
	}
	return esdbclient.Revision(version - 1)
}

// readCount maps a read limit onto the client's count; zero or less means
// no limit, as in the PostgreSQL backend. The server takes the count as a
// signed 64-bit number, so "everything" is MaxInt64, not MaxUint64.
func readCount(limit int) uint64 {
	if limit <= 0 {
		return math.MaxInt64
	}
	return uint64(limit)
}

// fromPosition maps a global position onto a $all read start: the zero
// position is the start of the log.
func fromPosition(p eventstore.Position) esdbclient.AllPosition {
	if p == eventstore.Start {
		return esdbclient.Start{}
	}
	return esdbclient.Position{Commit: p.Commit, Prepare: p.Prepare}
}

// toPosition maps EventStoreDB's log position onto ours.
func toPosition(p esdbclient.Position) eventstore.Position {
	return eventstore.Position{Commit: p.Commit, Prepare: p.Prepare}
}

// noPosition is what servers put in an event's position when they have none
// to give (their Position.End, -1 as unsigned): events read from a single
// stream by some server versions carry it.
var noPosition = esdbclient.Position{Commit: math.MaxUint64, Prepare: math.MaxUint64}

// eventPosition answers where a read event sits in the global log. An event
// the server gave no position is answered with the zero Position rather than
// the sentinel, which as a checkpoint would skip the rest of the log.
func eventPosition(ev *esdbclient.ResolvedEvent) eventstore.Position {
	rec := ev.OriginalEvent()
	if rec.Position != noPosition {
		return toPosition(rec.Position)
	}
	if ev.Commit != nil {
		return eventstore.Position{Commit: *ev.Commit, Prepare: *ev.Commit}
	}
	return eventstore.Position{}
}

// isSystem reports whether an event type belongs to EventStoreDB itself
// ($stats, $metadata, $>, $streamDeleted …); such events never reach callers.
func isSystem(eventType string) bool {
	return strings.HasPrefix(eventType, "$")
}

// storedMetadata is the JSON kept as an event's user metadata: ours plus
// when the event occurred. EventStoreDB records only its own creation time,
// which is answered as RecordedAt.
type storedMetadata struct {
	eventstore.Metadata
	OccurredAt time.Time `json:"occurredAt,omitzero"`
}

// toEventData encodes an event for appending. now stands in for a missing
// OccurredAt, as the PostgreSQL backend does.
func toEventData(e eventstore.EventData, now time.Time) (esdbclient.EventData, error) {
	occurred := e.OccurredAt
	if occurred.IsZero() {
		occurred = now
	}
	meta, err := json.Marshal(storedMetadata{Metadata: e.Metadata, OccurredAt: occurred.UTC()})
	if err != nil {
		return esdbclient.EventData{}, fmt.Errorf("event %s: encode metadata: %w", e.ID, err)
	}
	return esdbclient.EventData{
		// Always set: the client replaces uuid.Nil with a random id, which
		// would defeat idempotent retries. Validate has rejected uuid.Nil.
		EventID:     e.ID,
		EventType:   e.Type,
		ContentType: esdbclient.ContentTypeJson,
		Data:        e.Data,
		Metadata:    meta,
	}, nil
}

// fromResolved decodes a read event.
func fromResolved(ev *esdbclient.ResolvedEvent) (eventstore.Event, error) {
	rec := ev.OriginalEvent()
	e := eventstore.Event{
		ID:         rec.EventID,
		Stream:     rec.StreamID,
		Version:    rec.EventNumber + 1,
		Position:   eventPosition(ev),
		Type:       rec.EventType,
		RecordedAt: rec.CreatedDate.UTC(),
	}
	if len(rec.Data) > 0 {
		e.Data = json.RawMessage(rec.Data)
	}
	if len(rec.UserMetadata) > 0 {
		var m storedMetadata
		if err := json.Unmarshal(rec.UserMetadata, &m); err != nil {
			return eventstore.Event{}, fmt.Errorf("event %s in %s: decode metadata: %w", rec.EventID, rec.StreamID, err)
		}
		e.Metadata = m.Metadata
		if !m.OccurredAt.IsZero() {
			e.OccurredAt = m.OccurredAt.UTC()
		}
	}
	return e, nil
}

// errorCode answers the client error code carried by err. errors.As rather
// than esdbclient.FromError: FromError answers ok=false for every non-nil
// error and does not look through the wrapping the client itself adds
// ("could not construct append operation. Reason: %w").
func errorCode(err error) (esdbclient.ErrorCode, bool) {
	var e *esdbclient.Error
	if errors.As(err, &e) {
		return e.Code(), true
	}
	return 0, false
}

func hasCode(err error, code esdbclient.ErrorCode) bool {
	c, ok := errorCode(err)
	return ok && c == code
}

// isStreamMissing reports whether a read failed because the stream holds no
// readable events: never written, soft-deleted (not found) or tombstoned
// (deleted).
func isStreamMissing(err error) bool {
	c, ok := errorCode(err)
	return ok && missingCode(c)
}

func missingCode(c esdbclient.ErrorCode) bool {
	return c == esdbclient.ErrorCodeResourceNotFound || c == esdbclient.ErrorCodeStreamDeleted
}

// readError maps a failed read of stream onto the contract's errors.
func readError(op, stream string, err error) error {
	if isStreamMissing(err) {
		return fmt.Errorf("%s %s: %w", op, stream, eventstore.ErrStreamNotFound)
	}
	return wrap(op+" "+stream, err)
}

// wrap adds context to a client error and marks one from a closed client
// with ErrClosed.
func wrap(op string, err error) error {
	if hasCode(err, esdbclient.ErrorCodeConnectionClosed) {
		return fmt.Errorf("%s: %w (%w)", op, ErrClosed, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// currentRevision finds the stream's revision in the client's
// wrong-expected-version error, whose text is the only place it keeps it:
// "wrong expected version: expecting '4' but got '7'" (or "… got 'no_stream'").
var currentRevision = regexp.MustCompile(`but got '([^']*)'`)

// actualVersion answers the version a wrong-expected-version error reports
// the stream at, or -1 when the stream does not exist or the error does not
// say.
func actualVersion(err error) int64 {
	m := currentRevision.FindStringSubmatch(err.Error())
	if m == nil {
		return -1
	}
	rev, perr := strconv.ParseInt(m[1], 10, 64)
	if perr != nil || rev < 0 || rev == math.MaxInt64 {
		return -1 // "no_stream", or nothing we can read
	}
	return rev + 1
}

// subscriptionFilter builds the server-side part of a subscription filter.
// The server narrows by one criterion only, so with both types and
// categories it narrows by types and the rest is left to the client-side
// check every delivered event gets (see subscription.accept). Prefixes are
// literal, so a server-side prefix filter can only let through more than
// asked, never less, and the client-side check makes it exact:
//
//   - a type prefix "X" also admits "X2", which the client drops;
//   - a category is matched with its bare name as the stream prefix rather
//     than "name-": a stream called just "customer" is in category
//     "customer" (eventstore.Category), which "customer-" would miss.
//
// With neither, the filter drops system events. A filter is always set
// because the server sends checkpoints only to filtered subscriptions, and
// checkpoints are what move a subscription past long filtered-out stretches.
func subscriptionFilter(f eventstore.Filter) *esdbclient.SubscriptionFilter {
	switch {
	case len(f.Types) > 0:
		return &esdbclient.SubscriptionFilter{Type: esdbclient.EventFilterType, Prefixes: distinct(f.Types)}
	case len(f.Categories) > 0:
		return &esdbclient.SubscriptionFilter{Type: esdbclient.StreamFilterType, Prefixes: distinct(f.Categories)}
	}
	return esdbclient.ExcludeSystemEventsFilter()
}

func distinct(list []string) []string {
	out := make([]string, 0, len(list))
	seen := make(map[string]bool, len(list))
	for _, s := range list {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
