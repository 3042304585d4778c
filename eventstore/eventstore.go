// Package eventstore declares the event log every aggregate and read model
// rests on. Backends live in sub-packages (postgres, esdb) and must pass the
// conformance suite in storetest.
package eventstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/encoding/json"
)

// Expected states what version a stream must be at for an append to succeed.
// Values of zero and above are exact versions (the number of events the
// stream holds; 0 is the same as NoStream).
type Expected int64

const (
	// Any appends whatever the stream's state.
	Any Expected = -1
	// NoStream appends only to a stream that holds no events.
	NoStream Expected = -2
	// StreamExists appends only to a stream that holds at least one event.
	StreamExists Expected = -3
)

// Exact expects the stream to hold exactly v events.
func Exact(v uint64) Expected { return Expected(v) }

// Allows reports whether a stream holding version events meets e.
func (e Expected) Allows(version uint64) bool {
	switch e {
	case Any:
		return true
	case NoStream:
		return version == 0
	case StreamExists:
		return version > 0
	}
	return uint64(e) == version
}

func (e Expected) String() string {
	switch e {
	case Any:
		return "any"
	case NoStream:
		return "no stream"
	case StreamExists:
		return "stream exists"
	}
	return fmt.Sprintf("version %d", int64(e))
}

// Position is a place in the global log. PostgreSQL fills both parts from its
// own ordering key; EventStoreDB uses its commit and prepare positions.
// Positions compare by Commit, then Prepare. The zero Position is the start.
type Position struct {
	Commit  uint64 `json:"commit"`
	Prepare uint64 `json:"prepare"`
}

// Start is the position before the first event.
var Start = Position{}

// Less reports whether p comes before q in the global log.
func (p Position) Less(q Position) bool {
	if p.Commit != q.Commit {
		return p.Commit < q.Commit
	}
	return p.Prepare < q.Prepare
}

func (p Position) String() string { return fmt.Sprintf("%d/%d", p.Commit, p.Prepare) }

// Metadata travels with every event.
type Metadata struct {
	TenantID      string `json:"tenantId"`
	CorrelationID string `json:"correlationId,omitempty"`
	CausationID   string `json:"causationId,omitempty"`
	Actor         string `json:"actor,omitempty"`
	SchemaVersion int    `json:"schemaVersion,omitempty"`
}

// EventData is an event to append. ID must be set and should be derived
// deterministically from whatever caused the event (see DeriveID), so that
// a retried append is recognised and becomes a no-op.
type EventData struct {
	ID         uuid.UUID
	Type       string
	Data       json.RawMessage
	Metadata   Metadata
	OccurredAt time.Time
}

// Event is a recorded event.
type Event struct {
	ID         uuid.UUID       `json:"id"`
	Stream     string          `json:"stream"`
	Version    uint64          `json:"version"` // 1 for a stream's first event
	Position   Position        `json:"position"`
	Type       string          `json:"type"`
	Data       json.RawMessage `json:"data"`
	Metadata   Metadata        `json:"metadata"`
	OccurredAt time.Time       `json:"occurredAt"`
	RecordedAt time.Time       `json:"recordedAt"`
}

// Category answers the part of the event's stream name before the first '-'.
func (e Event) Category() string { return Category(e.Stream) }

// AppendResult tells where an append left its stream.
type AppendResult struct {
	Version  uint64   // the stream's version after the append
	Position Position // the global position of the last event written (zero for a no-op)
}

// Append is one stream's share of an AppendMulti call.
type Append struct {
	Stream   string
	Expected Expected
	Events   []EventData
}

// Filter narrows a subscription. Empty fields match everything; a filled
// field matches an event listed in it (categories by exact name).
type Filter struct {
	Categories []string
	Types      []string
}

// Match reports whether e passes the filter.
func (f Filter) Match(e Event) bool {
	return (len(f.Categories) == 0 || contains(f.Categories, e.Category())) &&
		(len(f.Types) == 0 || contains(f.Types, e.Type))
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Batch is what a subscription hands over at a time: the events that passed
// the filter, and the position the subscription has reached (which may lie
// past the last event when filtered-out events followed it). Storing Position
// as a checkpoint and resubscribing from it resumes exactly after the batch.
type Batch struct {
	Events   []Event
	Position Position
}

// Subscription follows the global log: it first catches up from its start
// position, then waits for new events.
type Subscription interface {
	// Next blocks until at least one event passes the filter or the reached
	// position moves, then answers up to the subscription's batch size.
	Next(ctx context.Context) (Batch, error)
	Close() error
}

// Store is the event log.
type Store interface {
	// Append writes events to one stream if it is at the expected version.
	// Events whose IDs the stream already holds are skipped; if all are, the
	// append succeeds without writing, whatever was expected.
	Append(ctx context.Context, stream string, expected Expected, events ...EventData) (AppendResult, error)
	// AppendMulti appends to several streams. The PostgreSQL backend does so
	// atomically (any conflict fails the whole call); backends that cannot
	// append across streams atomically apply them in order and stop at the
	// first error.
	AppendMulti(ctx context.Context, appends []Append) ([]AppendResult, error)
	// ReadStream answers up to limit events of a stream, oldest first,
	// starting at version from (1 for the beginning). A stream that does not
	// exist answers ErrStreamNotFound.
	ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]Event, error)
	// ReadStreamBackward answers up to limit events, newest first, starting
	// at version from (0 for the newest).
	ReadStreamBackward(ctx context.Context, stream string, from uint64, limit int) ([]Event, error)
	// ReadAll answers up to limit events of the global log that come after
	// position from, in log order. It never answers an event while an event
	// before it may still commit.
	ReadAll(ctx context.Context, from Position, limit int) ([]Event, error)
	// Head answers the position of the newest event readers can see.
	Head(ctx context.Context) (Position, error)
	// Subscribe follows the global log from after position from.
	Subscribe(ctx context.Context, from Position, filter Filter, batchSize int) (Subscription, error)
	Close() error
}

// StreamsReader is a Store that reads many streams in one call: a command
// handler loading every aggregate a batch touches pays one round trip
// instead of one per stream. Backends without it are read stream by
// stream.
type StreamsReader interface {
	// ReadStreams answers, by stream, the events of each stream in from at
	// version from[stream] and later, oldest first: the whole stream for 0
	// or 1, only what follows a snapshot for the snapshot's version + 1. A
	// stream with no such event (none at all, or none that late) has no
	// entry.
	ReadStreams(ctx context.Context, from map[string]uint64) (map[string][]Event, error)
}

// CategoryReader is a Store that reads a category stream by stream. A read
// model whose rows are each the fold of one stream (the customers profiles)
// is rebuilt from it writing each row once, where reading the log in its
// order wrote a row once for every batch its stream appeared in: about six
// times a profile at 1,000,000 people. Backends without it (EventStoreDB,
// whose log has no index by stream name) are rebuilt in log order.
type CategoryReader interface {
	// ReadCategory calls each, in turn, with every event of the streams of
	// category that lies no later in the global log than upTo, in (stream
	// name, version) order, stream names compared byte by byte: since a
	// stream's events appear in the log in version order, each stream's
	// events up to upTo, whole and in order. upTo must be a position every
	// event before which is visible (Head's answer, or a checkpoint of what
	// a reader has seen). It stops at the first error each answers and
	// answers it. A read the backend cannot find room for wraps
	// ErrReadTooLarge, possibly after some streams were handed to each.
	ReadCategory(ctx context.Context, category string, upTo Position, each func(Event) error) error
}

var (
	// ErrConflict is wrapped by *ConflictError.
	ErrConflict = errors.New("wrong expected version")
	// ErrStreamNotFound answers reads of a stream that holds no events.
	ErrStreamNotFound = errors.New("stream not found")
	// ErrInvalid is wrapped by errors about malformed input.
	ErrInvalid = errors.New("invalid event")
	// ErrReadTooLarge is wrapped by a read the backend could not hold the
	// working space for (a CategoryReader's sort outgrowing the server's
	// temporary-file limit or disk): the same events can still be read in
	// log order.
	ErrReadTooLarge = errors.New("read needs more temporary space than the server allows")
)

// ConflictError reports an append whose expectation did not hold. Command
// handlers reload the aggregate and decide again on it (see Retry).
type ConflictError struct {
	Stream   string
	Expected Expected
	Actual   int64 // the stream's version, or -1 when it does not exist or is unknown
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("append %s: expected %s, stream at %d: %v", e.Stream, e.Expected, e.Actual, ErrConflict)
}

func (e *ConflictError) Unwrap() error { return ErrConflict }

// Category answers the part of a stream name before the first '-'.
func Category(stream string) string {
	if i := strings.IndexByte(stream, '-'); i >= 0 {
		return stream[:i]
	}
	return stream
}

// StreamName joins a category and an id into a stream name.
func StreamName(category, id string) string { return category + "-" + id }

// namespace roots deterministic event ids.
var namespace = uuid.MustParse("5b0c6f0e-3c1e-4f7a-9a57-6b7a2c1d9e01")

// DeriveID answers a UUID determined by its parts (for example the id of the
// upstream event or command that caused an event, and the event's index
// among those it caused), so a retry produces the same id.
func DeriveID(parts ...string) uuid.UUID {
	return uuid.NewSHA1(namespace, []byte(strings.Join(parts, "\x1f")))
}

// Validate checks an append's input the same way for every backend.
func Validate(stream string, expected Expected, events []EventData) error {
	if stream == "" || strings.TrimSpace(stream) != stream {
		return fmt.Errorf("%w: stream name %q", ErrInvalid, stream)
	}
	if expected < StreamExists {
		return fmt.Errorf("%w: expected version %d", ErrInvalid, int64(expected))
	}
	if len(events) == 0 {
		return fmt.Errorf("%w: append to %s with no events", ErrInvalid, stream)
	}
	for i, e := range events {
		switch {
		case e.ID == uuid.Nil:
			return fmt.Errorf("%w: event %d of %s has no id", ErrInvalid, i, stream)
		case e.Type == "":
			return fmt.Errorf("%w: event %d of %s has no type", ErrInvalid, i, stream)
		case len(e.Data) > 0 && !json.Valid(e.Data):
			return fmt.Errorf("%w: event %d of %s: data is not JSON", ErrInvalid, i, stream)
		case e.Metadata.TenantID == "":
			return fmt.Errorf("%w: event %d of %s has no tenant", ErrInvalid, i, stream)
		}
	}
	return nil
}
