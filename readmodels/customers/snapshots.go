package customers

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/clubcrm/crm/domain/customer"
)

// Snapshots answers the folded profiles this read model keeps in its state
// column, each exactly the fold of the first Version events of its stream
// (see Projector): commands.Ingest starts loading a profile from one and
// reads only the events after it.
type Snapshots struct {
	DB interface {
		Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	}
}

// Profiles implements commands.Snapshots: the profiles of tenants[i] and
// ids[i], in their order, nil where the read model has no row.
func (s Snapshots) Profiles(ctx context.Context, tenants []string, ids []uuid.UUID) ([]*customer.Profile, error) {
	if len(tenants) != len(ids) {
		return nil, fmt.Errorf("snapshots: %d tenants for %d ids", len(tenants), len(ids))
	}
	out := make([]*customer.Profile, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := s.DB.Query(ctx, `
		SELECT x.n, c.state FROM unnest($1::text[], $2::uuid[]) WITH ORDINALITY AS x(tenant_id, id, n)
		JOIN `+customersTable+` c ON c.tenant_id = x.tenant_id AND c.id = x.id`, tenants, ids)
	if err != nil {
		return nil, fmt.Errorf("read profile snapshots: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var n int64
		var state []byte
		if err := rows.Scan(&n, &state); err != nil {
			return nil, fmt.Errorf("read profile snapshots: %w", err)
		}
		p := &customer.Profile{}
		if err := json.Unmarshal(state, p); err != nil {
			return nil, fmt.Errorf("decode the snapshot of customer %s: %w", ids[n-1], err)
		}
		out[n-1] = p
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read profile snapshots: %w", err)
	}
	return out, nil
}
