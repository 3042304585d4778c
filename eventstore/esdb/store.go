// Package esdb keeps the event log in EventStoreDB, through the official Go
// client (github.com/EventStore/EventStore-Client-Go/v4/esdb).
//
// Mapping onto the eventstore contract:
//
//   - Versions count events from 1; EventStoreDB revisions count from 0, so
//     version n is revision n-1 and Exact(n) expects revision n-1.
//   - Event data is stored as JSON; the user metadata holds our
//     eventstore.Metadata plus occurredAt. EventStoreDB's own creation time
//     is answered as RecordedAt.
//   - Global positions are EventStoreDB's commit and prepare positions.
//   - System events (types starting with '$') are never answered by ReadAll,
//     Head or subscriptions.
//
// Idempotency: EventStoreDB recognises a retried append only on a best-effort
// basis (never guaranteed with Any, and an idempotent success reports the
// original write, not the stream's state). So every append first reads the
// stream's newest events, 2×len(events)+100 of them, and skips events whose
// ids are among them; if all are, the append succeeds without writing. An id
// that has sunk deeper into a long stream than that window is not
// recognised. After a wrong-expected-version answer the window is read
// again, since a concurrent retry of the same append may have won the race.
package esdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/clubcrm/crm/eventstore"
)

// ErrClosed is answered by a closed store or subscription.
var ErrClosed = errors.New("event store closed")

// Page sizes of reads that page through $all. They only trade round trips
// for memory; every page re-reads its first event (reads start at a
// position inclusively), so they must stay above 1.
const (
	minAllPage  = 64
	maxAllPage  = 4096
	headAllPage = 256
)

// Store is the EventStoreDB event store.
//
// AppendMulti is not atomic: EventStoreDB cannot append to several streams
// in one transaction, so the appends are applied one after the other and
// the first error stops the rest; the results of the appends already made
// are answered with it. Callers that need all-or-nothing across streams
// must use the PostgreSQL backend or design for partial application (every
// append is idempotent, so a retry of the whole call completes it).
type Store struct {
	client *esdbclient.Client

	mu     sync.Mutex
	closed bool
	subs   map[*subscription]struct{}
}

var _ eventstore.Store = (*Store)(nil)

// Open connects to the EventStoreDB named by an esdb:// (or esdb+discover://)
// connection string, for example "esdb://localhost:2113?tls=false". The
// client connects lazily: a bad address shows on the first operation.
func Open(connectionString string) (*Store, error) {
	cfg, err := esdbclient.ParseConnectionString(connectionString)
	if err != nil {
		// The client's message does not repeat the string, which may hold a
		// password; neither does ours.
		return nil, fmt.Errorf("esdb: parse connection string: %w", err)
	}
	client, err := esdbclient.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("esdb: new client: %w", err)
	}
	return New(client), nil
}

// New answers a store on client, for callers that build the client's
// configuration themselves (a logger, certificates). The store owns the
// client from then on: Close closes it.
func New(client *esdbclient.Client) *Store {
	return &Store{client: client}
}

// Close closes the store's subscriptions and its client.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	subs := make([]*subscription, 0, len(s.subs))
	for sub := range s.subs {
		subs = append(subs, sub)
	}
	s.mu.Unlock()
	for _, sub := range subs {
		sub.Close() //nolint:errcheck // never fails
	}
	if err := s.client.Close(); err != nil {
		return fmt.Errorf("esdb: close: %w", err)
	}
	return nil
}

// Append writes events to one stream; see eventstore.Store and the package
// comment on idempotency.
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.Expected, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	if err := eventstore.Validate(stream, expected, events); err != nil {
		return eventstore.AppendResult{}, err
	}
	revision, err := expectedRevision(expected)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	window := idWindow(len(events))

	state, err := s.recent(ctx, stream, window)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	fresh := state.unheld(events)
	if len(fresh) == 0 {
		return eventstore.AppendResult{Version: state.version}, nil
	}
	// The read above tells the answer to an expectation that already fails;
	// asking the server too would only cost a round trip.
	if !expected.Allows(state.version) {
		return eventstore.AppendResult{}, &eventstore.ConflictError{Stream: stream, Expected: expected, Actual: conflictActual(state.version)}
	}

	now := time.Now()
	data := make([]esdbclient.EventData, len(fresh))
	for i, e := range fresh {
		if data[i], err = toEventData(e, now); err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("append %s: %w", stream, err)
		}
	}
	res, err := s.client.AppendToStream(ctx, stream, esdbclient.AppendToStreamOptions{ExpectedRevision: revision}, data...)
	if err == nil {
		return eventstore.AppendResult{
			Version:  res.NextExpectedVersion + 1,
			Position: eventstore.Position{Commit: res.CommitPosition, Prepare: res.PreparePosition},
		}, nil
	}
	if !hasCode(err, esdbclient.ErrorCodeWrongExpectedVersion) {
		return eventstore.AppendResult{}, wrap("append "+stream, err)
	}

	// The stream moved between the read and the write. If what moved it was
	// a concurrent run of this same append, the append has happened.
	actual := actualVersion(err)
	again, rerr := s.recent(ctx, stream, window)
	if rerr == nil {
		if len(again.unheld(events)) == 0 {
			return eventstore.AppendResult{Version: again.version}, nil
		}
		if actual < 0 {
			actual = conflictActual(again.version)
		}
	}
	return eventstore.AppendResult{}, &eventstore.ConflictError{Stream: stream, Expected: expected, Actual: actual}
}

// idWindow is how many of a stream's newest events an append of n events
// searches for ids it already holds.
func idWindow(n int) uint64 { return 2*uint64(n) + 100 }

// streamState is what an append needs to know of its stream.
type streamState struct {
	version uint64             // 0 when the stream holds no events
	held    map[uuid.UUID]bool // ids among the newest events
}

// unheld answers the events whose ids the stream does not hold, each id
// once (an id repeated within one call is written once, as in PostgreSQL).
func (st streamState) unheld(events []eventstore.EventData) []eventstore.EventData {
	seen := make(map[uuid.UUID]bool, len(events))
	out := make([]eventstore.EventData, 0, len(events))
	for _, e := range events {
		if st.held[e.ID] || seen[e.ID] {
			continue
		}
		seen[e.ID] = true
		out = append(out, e)
	}
	return out
}

// recent reads the newest window events of stream, newest first.
func (s *Store) recent(ctx context.Context, stream string, window uint64) (streamState, error) {
	st := streamState{held: make(map[uuid.UUID]bool)}
	rs, err := s.client.ReadStream(ctx, stream, esdbclient.ReadStreamOptions{
		Direction: esdbclient.Backwards,
		From:      esdbclient.End{},
	}, window)
	if err != nil {
		return st, wrap("append "+stream+": read recent events", err)
	}
	defer rs.Close()
	for {
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return st, nil
		}
		if err != nil {
			if isStreamMissing(err) {
				// Nothing to skip. A tombstoned stream refuses the write
				// itself, with an error that says so.
				return st, nil
			}
			return st, wrap("append "+stream+": read recent events", err)
		}
		rec := ev.OriginalEvent()
		if st.version == 0 {
			st.version = rec.EventNumber + 1
		}
		st.held[rec.EventID] = true
	}
}

// AppendMulti applies the appends one after the other and stops at the first
// error, answering the results of the appends made before it; see Store.
// All appends are validated before any is made.
func (s *Store) AppendMulti(ctx context.Context, appends []eventstore.Append) ([]eventstore.AppendResult, error) {
	if len(appends) == 0 {
		return nil, nil
	}
	for _, a := range appends {
		if err := eventstore.Validate(a.Stream, a.Expected, a.Events); err != nil {
			return nil, err
		}
	}
	results := make([]eventstore.AppendResult, 0, len(appends))
	for _, a := range appends {
		res, err := s.Append(ctx, a.Stream, a.Expected, a.Events...)
		if err != nil {
			// Unwrapped, so a *ConflictError reads the same as from Append.
			return results, err
		}
		results = append(results, res)
	}
	return results, nil
}

// ReadStream answers up to limit events of stream from version from on
// (0 and 1 both mean the beginning), oldest first; a limit of zero or less
// means all of them.
func (s *Store) ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]eventstore.Event, error) {
	return s.readStream(ctx, "read", stream, esdbclient.ReadStreamOptions{
		Direction: esdbclient.Forwards,
		From:      streamFrom(from, esdbclient.Forwards),
	}, readCount(limit))
}

// ReadStreamBackward answers up to limit events of stream from version from
// (0 for the newest) back, newest first; a limit of zero or less means all.
func (s *Store) ReadStreamBackward(ctx context.Context, stream string, from uint64, limit int) ([]eventstore.Event, error) {
	return s.readStream(ctx, "read backward", stream, esdbclient.ReadStreamOptions{
		Direction: esdbclient.Backwards,
		From:      streamFrom(from, esdbclient.Backwards),
	}, readCount(limit))
}

func (s *Store) readStream(ctx context.Context, op, stream string, opts esdbclient.ReadStreamOptions, count uint64) ([]eventstore.Event, error) {
	rs, err := s.client.ReadStream(ctx, stream, opts, count)
	if err != nil {
		return nil, readError(op, stream, err)
	}
	defer rs.Close()
	events := []eventstore.Event{}
	for {
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return events, nil
		}
		if err != nil {
			// The client reports a missing stream here, on the first Recv,
			// not from ReadStream.
			return nil, readError(op, stream, err)
		}
		e, err := fromResolved(ev)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", op, stream, err)
		}
		events = append(events, e)
	}
}

// ReadAll answers up to limit events that come after position from in the
// global log, in log order, without system events; a limit of zero or less
// means all of them. EventStoreDB's $all holds committed events only, in
// commit order, so nothing answered can be preceded by a later commit.
func (s *Store) ReadAll(ctx context.Context, from eventstore.Position, limit int) ([]eventstore.Event, error) {
	page := uint64(maxAllPage)
	if limit > 0 {
		// One more than asked: a read from a position may answer the event
		// at it, which ReadAll leaves out.
		page = uint64(min(max(limit+1, minAllPage), maxAllPage))
	}
	events := []eventstore.Event{}
	err := s.scanAll(ctx, esdbclient.Forwards, from, page, func(ev *esdbclient.ResolvedEvent) (bool, error) {
		if isSystem(ev.OriginalEvent().EventType) {
			return true, nil
		}
		e, err := fromResolved(ev)
		if err != nil {
			return false, err
		}
		events = append(events, e)
		return limit <= 0 || len(events) < limit, nil
	})
	if err != nil {
		return nil, fmt.Errorf("read all after %s: %w", from, err)
	}
	return events, nil
}

// Head answers the position of the newest event that is not a system event,
// or the start when there is none.
func (s *Store) Head(ctx context.Context) (eventstore.Position, error) {
	head := eventstore.Start
	err := s.scanAll(ctx, esdbclient.Backwards, eventstore.Start, headAllPage, func(ev *esdbclient.ResolvedEvent) (bool, error) {
		if isSystem(ev.OriginalEvent().EventType) {
			return true, nil
		}
		head = eventPosition(ev)
		return false, nil
	})
	if err != nil {
		return eventstore.Position{}, fmt.Errorf("head: %w", err)
	}
	return head, nil
}

// scanAll pages through $all in direction dir, handing visit every event
// strictly beyond bound (after it forwards, before it backwards; the zero
// bound means the start forwards and the end backwards) until visit answers
// false or the log ends. Each page starts at the last event of the one
// before, which EventStoreDB may answer again (a read from a position may
// include the event at it), so only events strictly beyond the last one
// handed over count.
func (s *Store) scanAll(ctx context.Context, dir esdbclient.Direction, bound eventstore.Position, page uint64, visit func(*esdbclient.ResolvedEvent) (bool, error)) error {
	var from esdbclient.AllPosition = esdbclient.End{}
	if dir == esdbclient.Forwards {
		from = fromPosition(bound)
	}
	bounded := bound != eventstore.Start
	for {
		evs, err := s.readAllPage(ctx, dir, from, page)
		if err != nil {
			return err
		}
		progressed := false
		for _, ev := range evs {
			p := eventPosition(ev)
			if bounded && !beyond(dir, bound, p) {
				continue
			}
			bound, bounded, progressed = p, true, true
			more, err := visit(ev)
			if err != nil || !more {
				return err
			}
		}
		if uint64(len(evs)) < page || !progressed {
			return nil // the log ended
		}
		from = fromPosition(bound)
	}
}

// beyond reports whether p lies strictly past bound in direction dir.
func beyond(dir esdbclient.Direction, bound, p eventstore.Position) bool {
	if dir == esdbclient.Backwards {
		return p.Less(bound)
	}
	return bound.Less(p)
}

// readAllPage reads up to count events of $all from from in direction dir.
func (s *Store) readAllPage(ctx context.Context, dir esdbclient.Direction, from esdbclient.AllPosition, count uint64) ([]*esdbclient.ResolvedEvent, error) {
	rs, err := s.client.ReadAll(ctx, esdbclient.ReadAllOptions{Direction: dir, From: from}, count)
	if err != nil {
		return nil, wrap("read $all", err)
	}
	defer rs.Close()
	var evs []*esdbclient.ResolvedEvent
	for {
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return evs, nil
		}
		if err != nil {
			return nil, wrap("read $all", err)
		}
		evs = append(evs, ev)
	}
}
