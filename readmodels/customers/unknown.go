package customers

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/clubcrm/crm/adapters/postgres"
)

// Unknown answers which of ids are not live profiles of tenant: never
// created, another tenant's, or merged away.
func (r Reader) Unknown(ctx context.Context, tenant string, ids []uuid.UUID) ([]uuid.UUID, error) {
	var out []uuid.UUID
	err := postgres.ReadInTenant(ctx, r.DB, tenant, func(tx postgres.Queryer) error {
		rows, err := tx.Query(ctx, `SELECT x.id FROM unnest($2::uuid[]) AS x(id)
WHERE NOT EXISTS (SELECT 1 FROM customers c WHERE c.tenant_id = $1 AND c.id = x.id AND c.status <> 'MERGED')`, tenant, ids)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("look up profiles: %w", err)
	}
	return out, nil
}
