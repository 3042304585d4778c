package segments

import (
	"context"
	"fmt"
	"strconv"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/clubcrm/crm/adapters/postgres"
	"github.com/clubcrm/crm/eventstore"
)

// SyncResult is what POST /segments/{id}/sync-to-messaging answers: the
// snapshot it published, from which diffs follow as membership changes.
type SyncResult struct {
	SegmentID      uuid.UUID `json:"segmentId"`
	SnapshotID     uuid.UUID `json:"snapshotId" doc:"names the snapshot and every diff that follows it"`
	Sequence       int64     `json:"sequence" doc:"the last sequence number the snapshot used; the next diff has the one after"`
	Parts          int       `json:"parts" doc:"segment.snapshot messages the snapshot took (at most 1,000 contact ids each)"`
	Members        int64     `json:"members"`
	Contacts       int64     `json:"contacts" doc:"Messaging contact ids sent"`
	WithoutContact int64     `json:"withoutContact" doc:"members with no messagingContactId: counted, not sent"`
}

// Sync publishes segment id's whole membership to the Messaging service
// as a new snapshot (segment.snapshot messages on messaging.segments,
// sequence 1 to Parts); from then on every membership change goes out as
// a segment.diff with the next sequence. A new sync starts a new snapshot
// that replaces the old one. Written to the outbox in one transaction with
// the sync state, under the segment's lock, so no change falls between the
// snapshot and the first diff.
func (r *Refresher) Sync(ctx context.Context, tenant string, id uuid.UUID) (SyncResult, error) {
	var res SyncResult
	err := postgres.InTenant(ctx, r.Pool, tenant, func(tx pgx.Tx) error {
		if err := lock(ctx, tx, tenant, id); err != nil {
			return err
		}
		if _, err := one(ctx, tx, tenant, id); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT c.messaging_contact_id FROM `+MembersTable+` sm
JOIN customers c ON c.tenant_id = sm.tenant_id AND c.id = sm.customer_id
WHERE sm.tenant_id = $1 AND sm.segment_id = $2 ORDER BY sm.customer_id`, tenant, id)
		if err != nil {
			return fmt.Errorf("segment %s members: %w", id, err)
		}
		var (
			contacts []string
			seen     = map[string]bool{}
			members  int64
			without  int64
		)
		for rows.Next() {
			var c *string
			if err := rows.Scan(&c); err != nil {
				rows.Close()
				return fmt.Errorf("segment %s members: %w", id, err)
			}
			members++
			if c == nil || *c == "" {
				without++
			} else if !seen[*c] {
				seen[*c] = true
				contacts = append(contacts, *c)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("segment %s members: %w", id, err)
		}
		res = SyncResult{SegmentID: id, SnapshotID: uuid.New(), Members: members, Contacts: int64(len(contacts)), WithoutContact: without}
		o := outbox{q: tx, tenant: tenant, now: r.now()}
		res.Parts = chunks(len(contacts))
		for i := range res.Parts {
			res.Sequence = int64(i + 1)
			s := Snapshot{SegmentID: id, SnapshotID: res.SnapshotID, Sequence: res.Sequence, Part: i + 1, Parts: res.Parts,
				ContactIDs: part(contacts, i), Contacts: res.Contacts, WithoutContact: res.WithoutContact}
			mid := eventstore.DeriveID(tenant, "segment-sync", res.SnapshotID.String(), strconv.FormatInt(res.Sequence, 10))
			if err := o.put(ctx, MessagingTopic, TypeSnapshot, mid, s); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+StateTable+` AS st (tenant_id, segment_id, sync_snapshot_id, sync_sequence, synced_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (tenant_id, segment_id) DO UPDATE SET sync_snapshot_id = $3, sync_sequence = $4, synced_at = $5`,
			tenant, id, res.SnapshotID, res.Sequence, o.now); err != nil {
			return fmt.Errorf("segment %s sync state: %w", id, err)
		}
		return nil
	})
	return res, err
}
