package activities

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/eventstore"
	"github.com/clubcrm/crm/projections"
)

// NotesName is the notes projector's name and checkpoint.
const NotesName = "notes"

const notesTable = "customer_notes"

// NotesProjector keeps the customer_notes table: each note as it stands
// now (complaint: marked as a complaint), deleted ones marked, on the
// profile it belongs to after merges.
type NotesProjector struct{}

var _ projections.Projector = NotesProjector{}

// Name implements projections.Projector.
func (NotesProjector) Name() string { return NotesName }

// Tables implements projections.Projector.
func (NotesProjector) Tables() []string { return []string{notesTable} }

// Filter implements projections.Projector.
func (NotesProjector) Filter() eventstore.Filter {
	return eventstore.Filter{Categories: []string{customer.Category},
		Types: []string{customer.TypeNoteAdded, customer.TypeNoteEdited, customer.TypeNoteDeleted, customer.TypeMerged}}
}

// Apply implements projections.Projector: one statement per event, in log
// order, sent in one round trip.
func (NotesProjector) Apply(ctx context.Context, tx pgx.Tx, tables projections.Tables, events []eventstore.Event) error {
	t := tables.Ident(notesTable)
	insert := fmt.Sprintf(`INSERT INTO %s (tenant_id, id, customer_id, profile_id, author, body, pinned, complaint, created_at, updated_at)
VALUES ($1, $2, $3, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT (tenant_id, id) DO NOTHING`, t)
	edit := fmt.Sprintf(`UPDATE %s SET body = coalesce($3, body), pinned = coalesce($4, pinned), complaint = coalesce($7, complaint),
    updated_at = $5, edited_by = $6
WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL`, t)
	del := fmt.Sprintf(`UPDATE %s SET deleted_at = $3, deleted_by = $4 WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL`, t)
	move := fmt.Sprintf(`UPDATE %s SET customer_id = $3 WHERE tenant_id = $1 AND customer_id = $2`, t)
	b := &pgx.Batch{}
	for _, e := range events {
		k, ok := keyOf(e)
		if !ok {
			continue
		}
		v, err := projections.Decode(e, customer.Decode)
		if err != nil {
			return fmt.Errorf("project %s version %d: %w", e.Stream, e.Version, err)
		}
		at := e.RecordedAt.UTC()
		switch d := v.(type) {
		case *customer.NoteAdded:
			b.Queue(insert, k.tenant, d.NoteID, k.id, d.Author, d.Body, d.Pinned, d.Complaint, at)
		case *customer.NoteEdited:
			b.Queue(edit, k.tenant, d.NoteID, d.Body, d.Pinned, at, d.Actor, d.Complaint)
		case *customer.NoteDeleted:
			b.Queue(del, k.tenant, d.NoteID, at, d.Actor)
		case *customer.Merged:
			if d.SourceID != k.id {
				b.Queue(move, k.tenant, d.SourceID, k.id)
			}
		}
	}
	return send(ctx, tx, b, "notes")
}
