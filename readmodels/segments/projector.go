// Package segments is the read side of segments (docs/segments.md): the
// definitions projector, the compilation of rules into one SQL statement
// over the read models, membership (full refreshes, the incremental
// membership projector that follows profile changes within a second, the
// schedule), the outbox of crm.segment.membership.changed and of the
// Messaging sync, and the queries.
package segments

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/segmentio/encoding/json"

	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/domain/segment"
	"github.com/clubcrm/crm/eventstore"
	"github.com/clubcrm/crm/projections"
)

// Name is the definitions projector's name and checkpoint.
const Name = "segments"

// Tables of the definitions projector.
const (
	SegmentsTable = "segments"
	StaticTable   = "segment_static_members"
)

// Projector keeps the segment definitions and the STATIC members.
type Projector struct{}

var _ projections.Projector = Projector{}

// Name implements projections.Projector.
func (Projector) Name() string { return Name }

// Tables implements projections.Projector.
func (Projector) Tables() []string { return []string{SegmentsTable, StaticTable} }

// Filter implements projections.Projector: the segment streams, and merges,
// which move a merged-away profile's STATIC memberships to its survivor.
func (Projector) Filter() eventstore.Filter {
	return eventstore.Filter{Categories: []string{segment.Category, customer.Category},
		Types: []string{segment.TypeCreated, segment.TypeUpdated, segment.TypeDeleted, segment.TypeMembersChanged, customer.TypeMerged}}
}

// Apply implements projections.Projector.
func (Projector) Apply(ctx context.Context, tx pgx.Tx, tables projections.Tables, events []eventstore.Event) error {
	segs, static := tables.Ident(SegmentsTable), tables.Ident(StaticTable)
	b := &pgx.Batch{}
	for _, e := range events {
		tenant := e.Metadata.TenantID
		if e.Type == customer.TypeMerged {
			survivor, ok := customer.StreamID(e.Stream)
			if !ok {
				continue
			}
			var m customer.Merged
			if err := json.Unmarshal(e.Data, &m); err != nil {
				return fmt.Errorf("decode %s %s: %w", e.Type, e.ID, err)
			}
			b.Queue(`INSERT INTO `+static+` (tenant_id, segment_id, customer_id, added_at)
SELECT tenant_id, segment_id, $3, added_at FROM `+static+` WHERE tenant_id = $1 AND customer_id = $2
ON CONFLICT DO NOTHING`, tenant, m.SourceID, survivor)
			b.Queue(`DELETE FROM `+static+` WHERE tenant_id = $1 AND customer_id = $2`, tenant, m.SourceID)
			continue
		}
		id, ok := segment.StreamID(e.Stream)
		if !ok {
			continue
		}
		v, err := segment.Decode(e.Type, e.Data)
		if err != nil {
			return fmt.Errorf("%s %s: %w", e.Stream, e.ID, err)
		}
		switch d := v.(type) {
		case *segment.Created:
			rules, smart, err := encodeDefinition(d.Definition)
			if err != nil {
				return err
			}
			b.Queue(`INSERT INTO `+segs+` (tenant_id, id, version, name, description, type, rules, smart, created_by, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)
ON CONFLICT (tenant_id, id) DO NOTHING`, tenant, id, e.Version, d.Definition.Name, d.Definition.Description, string(d.Definition.Type),
				rules, smart, d.Actor, e.RecordedAt)
		case *segment.Updated:
			rules, smart, err := encodeDefinition(d.Definition)
			if err != nil {
				return err
			}
			b.Queue(`UPDATE `+segs+` SET version = $3, name = $4, description = $5, rules = $6, smart = $7, updated_at = $8
WHERE tenant_id = $1 AND id = $2`, tenant, id, e.Version, d.Definition.Name, d.Definition.Description, rules, smart, e.RecordedAt)
		case *segment.Deleted:
			b.Queue(`UPDATE `+segs+` SET version = $3, deleted_at = $4, updated_at = $4 WHERE tenant_id = $1 AND id = $2`,
				tenant, id, e.Version, e.RecordedAt)
			b.Queue(`DELETE FROM `+static+` WHERE tenant_id = $1 AND segment_id = $2`, tenant, id)
		case *segment.MembersChanged:
			b.Queue(`UPDATE `+segs+` SET version = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2`, tenant, id, e.Version, e.RecordedAt)
			if len(d.Removed) > 0 {
				b.Queue(`DELETE FROM `+static+` WHERE tenant_id = $1 AND segment_id = $2 AND customer_id = ANY($3)`, tenant, id, d.Removed)
			}
			if len(d.Added) > 0 {
				b.Queue(`INSERT INTO `+static+` (tenant_id, segment_id, customer_id, added_at)
SELECT $1, $2, unnest($3::uuid[]), $4 ON CONFLICT DO NOTHING`, tenant, id, d.Added, e.RecordedAt)
			}
		}
	}
	if b.Len() == 0 {
		return nil
	}
	return tx.SendBatch(ctx, b).Close()
}

func encodeDefinition(d segment.Definition) (rules, smart []byte, err error) {
	rules, err = json.Marshal(segment.Rules{Combinator: d.Combinator, Rules: d.Rules})
	if err != nil {
		return nil, nil, fmt.Errorf("encode rules: %w", err)
	}
	if d.Smart != nil {
		if smart, err = json.Marshal(d.Smart); err != nil {
			return nil, nil, fmt.Errorf("encode smart: %w", err)
		}
	}
	return rules, smart, nil
}
