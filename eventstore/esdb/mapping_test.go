package esdb

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/clubcrm/crm/eventstore"
)

func TestExpectedRevision(t *testing.T) {
	tests := []struct {
		expected eventstore.Expected
		want     esdbclient.ExpectedRevision
	}{
		{eventstore.Any, esdbclient.Any{}},
		{eventstore.NoStream, esdbclient.NoStream{}},
		{eventstore.StreamExists, esdbclient.StreamExists{}},
		{eventstore.Exact(0), esdbclient.NoStream{}},
		{eventstore.Exact(1), esdbclient.Revision(0)},
		{eventstore.Exact(42), esdbclient.Revision(41)},
	}
	for _, tc := range tests {
		got, err := expectedRevision(tc.expected)
		if err != nil {
			t.Errorf("expectedRevision(%v): %v", tc.expected, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("expectedRevision(%v) = %#v, want %#v", tc.expected, got, tc.want)
		}
	}
	if _, err := expectedRevision(eventstore.Expected(-4)); !errors.Is(err, eventstore.ErrInvalid) {
		t.Errorf("expectedRevision(-4) error = %v, want ErrInvalid", err)
	}
}

func TestSatisfies(t *testing.T) {
	tests := []struct {
		expected eventstore.Expected
		cur      uint64
		want     bool
	}{
		{eventstore.Any, 0, true},
		{eventstore.Any, 7, true},
		{eventstore.NoStream, 0, true},
		{eventstore.NoStream, 1, false},
		{eventstore.StreamExists, 0, false},
		{eventstore.StreamExists, 3, true},
		{eventstore.Exact(0), 0, true},
		{eventstore.Exact(0), 2, false},
		{eventstore.Exact(2), 2, true},
		{eventstore.Exact(3), 2, false},
		{eventstore.Exact(1), 2, false},
	}
	for _, tc := range tests {
		if got := tc.expected.Allows(tc.cur); got != tc.want {
			t.Errorf("%v.Allows(%d) = %v, want %v", tc.expected, tc.cur, got, tc.want)
		}
	}
	if got := conflictActual(0); got != -1 {
		t.Errorf("conflictActual(0) = %d, want -1", got)
	}
	if got := conflictActual(5); got != 5 {
		t.Errorf("conflictActual(5) = %d, want 5", got)
	}
}

func TestStreamFrom(t *testing.T) {
	tests := []struct {
		version uint64
		dir     esdbclient.Direction
		want    esdbclient.StreamPosition
	}{
		{0, esdbclient.Forwards, esdbclient.Start{}},
		{0, esdbclient.Backwards, esdbclient.End{}},
		{1, esdbclient.Forwards, esdbclient.Revision(0)},
		{1, esdbclient.Backwards, esdbclient.Revision(0)},
		{10, esdbclient.Forwards, esdbclient.Revision(9)},
	}
	for _, tc := range tests {
		if got := streamFrom(tc.version, tc.dir); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("streamFrom(%d, %v) = %#v, want %#v", tc.version, tc.dir, got, tc.want)
		}
	}
}

func TestReadCount(t *testing.T) {
	for limit, want := range map[int]uint64{-1: math.MaxInt64, 0: math.MaxInt64, 1: 1, 500: 500} {
		if got := readCount(limit); got != want {
			t.Errorf("readCount(%d) = %d, want %d", limit, got, want)
		}
	}
}

func TestPositions(t *testing.T) {
	if got := fromPosition(eventstore.Start); !reflect.DeepEqual(got, esdbclient.Start{}) {
		t.Errorf("fromPosition(Start) = %#v, want Start{}", got)
	}
	p := eventstore.Position{Commit: 1788, Prepare: 1700}
	if got := fromPosition(p); !reflect.DeepEqual(got, esdbclient.Position{Commit: 1788, Prepare: 1700}) {
		t.Errorf("fromPosition(%v) = %#v", p, got)
	}
	if got := toPosition(esdbclient.Position{Commit: 1788, Prepare: 1700}); got != p {
		t.Errorf("toPosition = %v, want %v", got, p)
	}

	commit := uint64(900)
	tests := []struct {
		name string
		ev   esdbclient.ResolvedEvent
		want eventstore.Position
	}{
		{"recorded", esdbclient.ResolvedEvent{Event: &esdbclient.RecordedEvent{Position: esdbclient.Position{Commit: 5, Prepare: 4}}}, eventstore.Position{Commit: 5, Prepare: 4}},
		{"none, commit given", esdbclient.ResolvedEvent{Event: &esdbclient.RecordedEvent{Position: noPosition}, Commit: &commit}, eventstore.Position{Commit: 900, Prepare: 900}},
		{"none at all", esdbclient.ResolvedEvent{Event: &esdbclient.RecordedEvent{Position: noPosition}}, eventstore.Position{}},
	}
	for _, tc := range tests {
		if got := eventPosition(&tc.ev); got != tc.want {
			t.Errorf("%s: eventPosition = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// recorded answers the event a server would answer for d, appended as
// revision rev of stream.
func recorded(stream string, rev uint64, d esdbclient.EventData, created time.Time) *esdbclient.ResolvedEvent {
	return &esdbclient.ResolvedEvent{Event: &esdbclient.RecordedEvent{
		EventID:      d.EventID,
		EventType:    d.EventType,
		ContentType:  "application/json",
		StreamID:     stream,
		EventNumber:  rev,
		Position:     esdbclient.Position{Commit: 1000 + rev, Prepare: 1000 + rev},
		CreatedDate:  created,
		Data:         d.Data,
		UserMetadata: d.Metadata,
	}}
}

func TestEventRoundTrip(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	occurred := time.Date(2025, 6, 1, 7, 30, 15, 123_456_789, time.FixedZone("CEST", 2*3600))
	in := eventstore.EventData{
		ID:   uuid.New(),
		Type: "MemberJoined",
		Data: json.RawMessage(`{"name":"Ada"}`),
		Metadata: eventstore.Metadata{
			TenantID: "club-7", CorrelationID: "c", CausationID: "k", Actor: "user:1", SchemaVersion: 2,
		},
		OccurredAt: occurred,
	}
	d, err := toEventData(in, now)
	if err != nil {
		t.Fatal(err)
	}
	if d.EventID != in.ID || d.EventType != in.Type || d.ContentType != esdbclient.ContentTypeJson {
		t.Errorf("event data = %+v", d)
	}
	var meta map[string]any
	if err := json.Unmarshal(d.Metadata, &meta); err != nil {
		t.Fatalf("metadata %s: %v", d.Metadata, err)
	}
	for _, k := range []string{"tenantId", "correlationId", "causationId", "actor", "schemaVersion", "occurredAt"} {
		if _, ok := meta[k]; !ok {
			t.Errorf("metadata %s lacks %q", d.Metadata, k)
		}
	}

	created := time.Date(2026, 3, 1, 12, 0, 1, 0, time.FixedZone("X", 3600))
	got, err := fromResolved(recorded("member-1", 0, d, created))
	if err != nil {
		t.Fatal(err)
	}
	want := eventstore.Event{
		ID:         in.ID,
		Stream:     "member-1",
		Version:    1,
		Position:   eventstore.Position{Commit: 1000, Prepare: 1000},
		Type:       in.Type,
		Data:       in.Data,
		Metadata:   in.Metadata,
		OccurredAt: occurred.UTC(),
		RecordedAt: created.UTC(),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
	}
	if got.Category() != "member" {
		t.Errorf("category = %q", got.Category())
	}
}

func TestEventRoundTripDefaults(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.FixedZone("X", 3600))
	in := eventstore.EventData{ID: uuid.New(), Type: "Pinged", Metadata: eventstore.Metadata{TenantID: "t"}}
	d, err := toEventData(in, now)
	if err != nil {
		t.Fatal(err)
	}
	got, err := fromResolved(recorded("ping-1", 4, d, now))
	if err != nil {
		t.Fatal(err)
	}
	if got.Data != nil {
		t.Errorf("data = %q, want none", got.Data)
	}
	if !got.OccurredAt.Equal(now) || got.OccurredAt.Location() != time.UTC {
		t.Errorf("occurred at = %v, want the append time %v in UTC", got.OccurredAt, now)
	}
	if got.Version != 5 {
		t.Errorf("version = %d, want 5", got.Version)
	}
}

func TestFromResolvedMetadata(t *testing.T) {
	ev := recorded("x-1", 0, esdbclient.EventData{EventID: uuid.New(), EventType: "T"}, time.Now())
	got, err := fromResolved(ev)
	if err != nil {
		t.Fatalf("no metadata: %v", err)
	}
	if got.Metadata != (eventstore.Metadata{}) || !got.OccurredAt.IsZero() {
		t.Errorf("no metadata read as %+v, %v", got.Metadata, got.OccurredAt)
	}

	ev.Event.UserMetadata = []byte("not json")
	if _, err := fromResolved(ev); err == nil || !strings.Contains(err.Error(), "decode metadata") {
		t.Errorf("bad metadata error = %v", err)
	}
}

func TestIsSystem(t *testing.T) {
	for typ, want := range map[string]bool{"$stats-collected": true, "$>": true, "$metadata": true, "MemberJoined": false, "a$b": false} {
		if got := isSystem(typ); got != want {
			t.Errorf("isSystem(%q) = %v, want %v", typ, got, want)
		}
	}
}

func TestUnheld(t *testing.T) {
	a, b, c := uuid.New(), uuid.New(), uuid.New()
	st := streamState{version: 3, held: map[uuid.UUID]bool{a: true}}
	events := []eventstore.EventData{{ID: a}, {ID: b}, {ID: c}, {ID: b}}
	got := st.unheld(events)
	if len(got) != 2 || got[0].ID != b || got[1].ID != c {
		t.Errorf("unheld = %v, want [%s %s]", got, b, c)
	}
	if got := st.unheld(events[:1]); len(got) != 0 {
		t.Errorf("unheld of held events = %v", got)
	}
	if got := idWindow(10); got != 120 {
		t.Errorf("idWindow(10) = %d", got)
	}
}

func TestErrorCode(t *testing.T) {
	if _, ok := errorCode(errors.New("plain")); ok {
		t.Error("a plain error has a client code")
	}
	// FromError wraps a foreign error as ErrorCodeUnknown; errors.As must
	// find it through further wrapping, which FromError itself does not.
	esErr, _ := esdbclient.FromError(errors.New("boom"))
	wrapped := fmt.Errorf("could not construct append operation. Reason: %w", esErr)
	if c, ok := errorCode(wrapped); !ok || c != esdbclient.ErrorCodeUnknown {
		t.Errorf("errorCode(wrapped) = %v, %v", c, ok)
	}
	if isStreamMissing(wrapped) {
		t.Error("an unknown error reads as a missing stream")
	}
	if err := readError("read", "s-1", wrapped); errors.Is(err, eventstore.ErrStreamNotFound) || !errors.Is(err, esErr) {
		t.Errorf("readError kept %v badly: %v", esErr, err)
	}

	for code, want := range map[esdbclient.ErrorCode]bool{
		esdbclient.ErrorCodeResourceNotFound:     true,
		esdbclient.ErrorCodeStreamDeleted:        true,
		esdbclient.ErrorCodeWrongExpectedVersion: false,
		esdbclient.ErrorCodeUnknown:              false,
		esdbclient.ErrorCodeAccessDenied:         false,
	} {
		if got := missingCode(code); got != want {
			t.Errorf("missingCode(%d) = %v, want %v", code, got, want)
		}
	}
}

func TestActualVersion(t *testing.T) {
	// The client's own wording (client.go, AppendToStream).
	wrong := func(expected, current string) error {
		return fmt.Errorf("[ErrorCodeWrongExpectedVersion] an append request failed the optimistic concurrency on the server: %w",
			fmt.Errorf("wrong expected version: expecting '%s' but got '%s'", expected, current))
	}
	tests := []struct {
		err  error
		want int64
	}{
		{wrong("no_stream", "1"), 2},
		{wrong("4", "0"), 1},
		{wrong("stream_exists", "no_stream"), -1},
		{fmt.Errorf("append s-1: %w", wrong("any", "41")), 42},
		{errors.New("something else"), -1},
	}
	for _, tc := range tests {
		if got := actualVersion(tc.err); got != tc.want {
			t.Errorf("actualVersion(%q) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestSubscriptionFilter(t *testing.T) {
	tests := []struct {
		name   string
		filter eventstore.Filter
		want   *esdbclient.SubscriptionFilter
	}{
		{"none", eventstore.Filter{}, esdbclient.ExcludeSystemEventsFilter()},
		{"types", eventstore.Filter{Types: []string{"A", "B", "A"}},
			&esdbclient.SubscriptionFilter{Type: esdbclient.EventFilterType, Prefixes: []string{"A", "B"}}},
		{"categories", eventstore.Filter{Categories: []string{"member", "booking"}},
			&esdbclient.SubscriptionFilter{Type: esdbclient.StreamFilterType, Prefixes: []string{"member", "booking"}}},
		{"both narrow by type", eventstore.Filter{Categories: []string{"member"}, Types: []string{"A"}},
			&esdbclient.SubscriptionFilter{Type: esdbclient.EventFilterType, Prefixes: []string{"A"}}},
	}
	for _, tc := range tests {
		got := subscriptionFilter(tc.filter)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: subscriptionFilter = %+v, want %+v", tc.name, got, tc.want)
		}
		// The client refuses a filter with neither or both of prefixes and
		// a regex.
		if (len(got.Prefixes) == 0) == (got.Regex == "") {
			t.Errorf("%s: filter %+v has neither or both of prefixes and regex", tc.name, got)
		}
	}
}

// TestSubscriptionFilterWider checks that the server-side filter admits
// every event the filter matches: it may be wider, never narrower.
func TestSubscriptionFilterWider(t *testing.T) {
	filters := []eventstore.Filter{
		{Types: []string{"MemberJoined", "MemberLeft"}},
		{Categories: []string{"member", "booking"}},
		{Categories: []string{"member"}, Types: []string{"MemberJoined"}},
	}
	events := []eventstore.Event{
		{Stream: "member-1", Type: "MemberJoined"},
		{Stream: "member", Type: "MemberLeft"},
		{Stream: "member-a-b", Type: "MemberJoined"},
		{Stream: "booking-9", Type: "Booked"},
		{Stream: "members-1", Type: "MemberJoinedLate"},
	}
	for _, f := range filters {
		sf := subscriptionFilter(f)
		for _, e := range events {
			if !f.Match(e) {
				continue
			}
			subject := e.Type
			if sf.Type == esdbclient.StreamFilterType {
				subject = e.Stream
			}
			admitted := false
			for _, p := range sf.Prefixes {
				admitted = admitted || strings.HasPrefix(subject, p)
			}
			if !admitted {
				t.Errorf("filter %+v matches %+v but the server-side filter %+v drops it", f, e, sf)
			}
		}
	}
}
