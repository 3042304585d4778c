package segments

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/encoding/json"

	"github.com/clubcrm/crm/commands"
	"github.com/clubcrm/crm/eventstore"
)

// Topics of the outbox.
const (
	// EventsTopic carries the CRM's produced events.
	EventsTopic = "crm.events"
	// MessagingTopic carries the segment snapshots and diffs to the
	// Messaging service.
	MessagingTopic = "messaging.segments"
)

// Produced message types.
const (
	TypeMembershipChanged = "crm.segment.membership.changed"
	TypeSnapshot          = "segment.snapshot"
	TypeDiff              = "segment.diff"
)

// MaxIDsPerMessage bounds the ids one message carries: a change or a
// snapshot larger than this goes out in parts.
const MaxIDsPerMessage = 1000

// MembershipChanged is the data of crm.segment.membership.changed.
type MembershipChanged struct {
	SegmentID      uuid.UUID   `json:"segmentId"`
	SegmentVersion int64       `json:"segmentVersion"`
	Sequence       int64       `json:"sequence" doc:"the segment's change number: 1, 2, ... (the parts of one change share it)"`
	Part           int         `json:"part"`
	Parts          int         `json:"parts"`
	Added          []uuid.UUID `json:"added"`
	Removed        []uuid.UUID `json:"removed"`
	Total          int64       `json:"total" doc:"members after the change"`
	Reason         string      `json:"reason" doc:"refresh, incremental or deleted"`
}

// Snapshot is the data of segment.snapshot: part of the segment's whole
// membership, as Messaging contact ids.
type Snapshot struct {
	SegmentID      uuid.UUID `json:"segmentId"`
	SnapshotID     uuid.UUID `json:"snapshotId"`
	Sequence       int64     `json:"sequence"`
	Part           int       `json:"part"`
	Parts          int       `json:"parts"`
	ContactIDs     []string  `json:"contactIds"`
	Contacts       int64     `json:"contacts" doc:"contact ids in the whole snapshot"`
	WithoutContact int64     `json:"withoutContact" doc:"members with no messagingContactId, not sent"`
}

// Diff is the data of segment.diff: a membership change since the
// snapshot, as Messaging contact ids. Removals apply before additions.
type Diff struct {
	SegmentID      uuid.UUID `json:"segmentId"`
	SnapshotID     uuid.UUID `json:"snapshotId"`
	Sequence       int64     `json:"sequence"`
	Added          []string  `json:"added"`
	Removed        []string  `json:"removed"`
	WithoutContact int64     `json:"withoutContact" doc:"members this change added or removed that have no messagingContactId"`
}

// outbox writes messages in the caller's transaction.
type outbox struct {
	q      Querier
	tenant string
	now    time.Time
}

func (o outbox) put(ctx context.Context, topic, typ string, id uuid.UUID, data any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("encode %s: %w", typ, err)
	}
	env := commands.Envelope{ID: id.String(), Type: typ, Source: "crm", TenantID: o.tenant, OccurredAt: o.now.UTC(), Data: b}
	payload, err := json.Marshal(env)
	if err != nil {
		return fmt.Errorf("encode %s: %w", typ, err)
	}
	if _, err := o.q.Exec(ctx, `INSERT INTO `+OutboxTable+` (tenant_id, topic, message_id, type, payload) VALUES ($1, $2, $3, $4, $5)`,
		o.tenant, topic, id, typ, payload); err != nil {
		return fmt.Errorf("outbox %s: %w", typ, err)
	}
	return nil
}

// chunks splits n ids into parts of at most MaxIDsPerMessage: at least one
// part, even for none.
func chunks(n int) int {
	if n == 0 {
		return 1
	}
	return (n + MaxIDsPerMessage - 1) / MaxIDsPerMessage
}

func part[T any](ids []T, i int) []T {
	lo := min(i*MaxIDsPerMessage, len(ids))
	hi := min(lo+MaxIDsPerMessage, len(ids))
	return append([]T{}, ids[lo:hi]...)
}

// changed writes a change of segment seg, at state st, as its messages:
// the membership change and, for a segment synced to Messaging, its diff.
func (o outbox) changed(ctx context.Context, seg uuid.UUID, version int64, c Change, st state, reason string) error {
	if err := o.membershipChanged(ctx, seg, version, st.seq, c, st.members, reason); err != nil {
		return err
	}
	if st.snapshot == nil {
		return nil
	}
	return o.diff(ctx, seg, *st.snapshot, st.syncSeq, c)
}

// membershipChanged writes change seq of a segment as
// crm.segment.membership.changed messages: the added ids, then the
// removed, at most MaxIDsPerMessage ids in each. Message ids derive from
// the segment, sequence and part, so a consumer deduplicates on them.
func (o outbox) membershipChanged(ctx context.Context, seg uuid.UUID, version, seq int64, c Change, total int64, reason string) error {
	ids := make([]uuid.UUID, 0, len(c.Added)+len(c.Removed))
	ids = append(append(ids, c.Added...), c.Removed...)
	parts := chunks(len(ids))
	for i := range parts {
		in := part(ids, i)
		m := MembershipChanged{SegmentID: seg, SegmentVersion: version, Sequence: seq, Part: i + 1, Parts: parts,
			Added: []uuid.UUID{}, Removed: []uuid.UUID{}, Total: total, Reason: reason}
		for j, id := range in {
			if i*MaxIDsPerMessage+j < len(c.Added) {
				m.Added = append(m.Added, id)
			} else {
				m.Removed = append(m.Removed, id)
			}
		}
		id := eventstore.DeriveID(o.tenant, "segment-membership", seg.String(), strconv.FormatInt(seq, 10), strconv.Itoa(i+1))
		if err := o.put(ctx, EventsTopic, TypeMembershipChanged, id, m); err != nil {
			return err
		}
	}
	return nil
}

// contacts answers the Messaging contact ids of profiles, and how many
// have none.
func (o outbox) contacts(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]string, int64, error) {
	out := make(map[uuid.UUID]string, len(ids))
	if len(ids) == 0 {
		return out, 0, nil
	}
	rows, err := o.q.Query(ctx, `SELECT id, messaging_contact_id FROM customers WHERE tenant_id = $1 AND id = ANY($2)
AND messaging_contact_id IS NOT NULL AND messaging_contact_id <> ''`, o.tenant, ids)
	if err != nil {
		return nil, 0, fmt.Errorf("contacts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id uuid.UUID
		var contact string
		if err := rows.Scan(&id, &contact); err != nil {
			return nil, 0, fmt.Errorf("contacts: %w", err)
		}
		out[id] = contact
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("contacts: %w", err)
	}
	return out, int64(len(ids) - len(out)), nil
}

// stillIn answers the contacts of removed that no member left in the
// segment has: a contact two profiles share stays while either is in.
// The caller's transaction has already changed the membership.
func (o outbox) stillIn(ctx context.Context, seg uuid.UUID, removed []string) ([]string, error) {
	if len(removed) == 0 {
		return removed, nil
	}
	rows, err := o.q.Query(ctx, `SELECT DISTINCT c.messaging_contact_id FROM `+MembersTable+` sm
JOIN customers c ON c.tenant_id = sm.tenant_id AND c.id = sm.customer_id
WHERE sm.tenant_id = $1 AND sm.segment_id = $2 AND c.messaging_contact_id = ANY($3)`, o.tenant, seg, removed)
	if err != nil {
		return nil, fmt.Errorf("contacts still in segment %s: %w", seg, err)
	}
	defer rows.Close()
	kept := map[string]bool{}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("contacts still in segment %s: %w", seg, err)
		}
		kept[k] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("contacts still in segment %s: %w", seg, err)
	}
	out := removed[:0:0]
	for _, k := range removed {
		if !kept[k] {
			out = append(out, k)
		}
	}
	return out, nil
}

// diff writes a change as segment.diff messages for the Messaging sync:
// each its own sequence number after seq, a contact in both lists (a
// merge moved it from one profile to another) only added.
func (o outbox) diff(ctx context.Context, seg, snapshot uuid.UUID, seq int64, c Change) error {
	all := append(append([]uuid.UUID{}, c.Added...), c.Removed...)
	contacts, without, err := o.contacts(ctx, all)
	if err != nil {
		return err
	}
	var added, removed []string
	in := map[string]bool{}
	for _, id := range c.Added {
		if k, ok := contacts[id]; ok && !in[k] {
			in[k] = true
			added = append(added, k)
		}
	}
	gone := map[string]bool{}
	for _, id := range c.Removed {
		if k, ok := contacts[id]; ok && !in[k] && !gone[k] {
			gone[k] = true
			removed = append(removed, k)
		}
	}
	if removed, err = o.stillIn(ctx, seg, removed); err != nil {
		return err
	}
	if len(added)+len(removed) == 0 {
		return nil // nothing Messaging knows of changed
	}
	ids := append(append([]string{}, added...), removed...)
	parts := chunks(len(ids))
	for i := range parts {
		seq++
		d := Diff{SegmentID: seg, SnapshotID: snapshot, Sequence: seq, Added: []string{}, Removed: []string{}}
		if i == 0 {
			d.WithoutContact = without
		}
		for j, k := range part(ids, i) {
			if i*MaxIDsPerMessage+j < len(added) {
				d.Added = append(d.Added, k)
			} else {
				d.Removed = append(d.Removed, k)
			}
		}
		id := eventstore.DeriveID(o.tenant, "segment-sync", snapshot.String(), strconv.FormatInt(seq, 10))
		if err := o.put(ctx, MessagingTopic, TypeDiff, id, d); err != nil {
			return err
		}
	}
	if _, err := o.q.Exec(ctx, `UPDATE `+StateTable+` SET sync_sequence = $3, synced_at = $4 WHERE tenant_id = $1 AND segment_id = $2`,
		o.tenant, seg, seq, o.now); err != nil {
		return fmt.Errorf("segment %s sync state: %w", seg, err)
	}
	return nil
}
