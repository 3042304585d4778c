package customers

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"

	"github.com/clubcrm/crm/adapters/postgres"
	"github.com/clubcrm/crm/domain/customer"
)

// Snapshots answers the folded profiles the customers rows hold, for the
// command side to start loading from (commands.ProfileSnapshots). A row's
// state is the fold of its stream's first version events by the
// aggregate's own Apply, so a profile loaded from it and the events after
// it equals one folded from the whole stream. Rows folded otherwise than
// this build folds (customer.FoldVersion) are left out.
//
// It reads for many tenants in one statement, naming each row by tenant
// and id, as the projector does: it runs as the owning role, which the
// tenant policies do not bind, and must never serve an API client.
type Snapshots struct {
	DB postgres.Queryer
}

// ProfileSnapshots answers the kept profiles of the pairs (tenants[i],
// ids[i]) that have one; the others have no entry.
func (s Snapshots) ProfileSnapshots(ctx context.Context, tenants []string, ids []uuid.UUID) ([]*customer.Profile, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := s.DB.Query(ctx, `SELECT c.state FROM `+customersTable+` c
WHERE (c.tenant_id, c.id) IN (SELECT * FROM unnest($1::text[], $2::uuid[])) AND c.fold = $3`, tenants, ids, customer.FoldVersion)
	if err != nil {
		return nil, fmt.Errorf("read profile snapshots: %w", err)
	}
	defer rows.Close()
	out := make([]*customer.Profile, 0, len(ids))
	for rows.Next() {
		var state []byte
		if err := rows.Scan(&state); err != nil {
			return nil, fmt.Errorf("read profile snapshots: %w", err)
		}
		p := &customer.Profile{}
		if err := json.Unmarshal(state, p); err != nil {
			return nil, fmt.Errorf("decode profile snapshot: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read profile snapshots: %w", err)
	}
	return out, nil
}
