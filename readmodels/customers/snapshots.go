package customers

import (
	"context"
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
	keys := make([]streamKey, len(ids))
	for i := range ids {
		keys[i] = streamKey{tenant: tenants[i], id: ids[i]}
	}
	kept, err := readStates(ctx, s.DB, customersTable, keys, "c.fold = $3", customer.FoldVersion)
	if err != nil {
		return nil, fmt.Errorf("profile snapshots: %w", err)
	}
	out := make([]*customer.Profile, 0, len(kept))
	for _, p := range kept {
		out = append(out, p)
	}
	return out, nil
}
