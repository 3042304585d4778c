package customers

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/clubcrm/crm/adapters/postgres"
)

// Survivor answers, through a tenant-bound Queryer, the profile id stands
// for now: id itself, or the survivor of the merges it went through. It answers
// ErrNotFound when the read model holds no profile id. Other read models
// (the timeline, notes) use it to serve a merged-away id as its survivor.
func Survivor(ctx context.Context, tx postgres.Queryer, tenant string, id uuid.UUID) (uuid.UUID, error) {
	var out uuid.UUID
	err := tx.QueryRow(ctx, SurvivorQuery, tenant, id).Scan(&out)
	if errors.Is(err, pgx.ErrNoRows) {
		return uuid.Nil, fmt.Errorf("customer %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return uuid.Nil, fmt.Errorf("find customer %s: %w", id, err)
	}
	return out, nil
}

// SurvivorQuery is the query Survivor runs, of the profile whose tenant is
// $1 and whose id is $2: one column, id, in one row, or none when the read
// model holds no such profile. Other read models join their rows to it, to
// serve a page by a merged-away id in one statement.
var SurvivorQuery = `WITH RECURSIVE chain (id, merged_into, hops) AS (
	SELECT id, merged_into, 0 FROM customers WHERE tenant_id = $1 AND id = $2
	UNION ALL
	SELECT n.id, n.merged_into, chain.hops + 1
	FROM chain JOIN customers n ON n.tenant_id = $1 AND n.id = chain.merged_into
	WHERE chain.hops < ` + strconv.Itoa(maxMergeHops) + `
)
SELECT id FROM chain ORDER BY hops DESC LIMIT 1`
