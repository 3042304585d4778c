package customers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/clubcrm/crm/adapters/postgres"
)

// Computed are the fields of a profile other read models compute (the
// metrics and scores projectors).
type Computed struct {
	LastActivityAt        *time.Time
	ActivityCount30d      int
	BookingCount30d       int
	LifetimeValue         *int64
	LifetimeValueCurrency *string
	EngagementScore       *float64
	ChurnRiskScore        *float64
}

// SetComputed fills c's computed fields, for representations built from
// the aggregate (FromProfile) rather than read from the read model.
func (c *Customer) SetComputed(x Computed) {
	c.LastActivityAt, c.ActivityCount30d, c.BookingCount30d = x.LastActivityAt, x.ActivityCount30d, x.BookingCount30d
	c.LifetimeValue, c.LifetimeValueCurrency = x.LifetimeValue, x.LifetimeValueCurrency
	c.EngagementScore, c.ChurnRiskScore = x.EngagementScore, x.ChurnRiskScore
}

// Computed answers the computed fields of profile id: null and 0 when the
// read models have not reached it.
func (r Reader) Computed(ctx context.Context, tenant string, id uuid.UUID) (Computed, error) {
	var x Computed
	err := postgres.ReadInTenant(ctx, r.DB, tenant, func(tx postgres.Queryer) error {
		return tx.QueryRow(ctx, `SELECT `+computedColumns+` FROM `+fromCustomers+` WHERE c.tenant_id = $1 AND c.id = $2`, tenant, id).
			Scan(&x.LastActivityAt, &x.ActivityCount30d, &x.BookingCount30d, &x.LifetimeValue, &x.LifetimeValueCurrency,
				&x.EngagementScore, &x.ChurnRiskScore)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return Computed{}, nil
	}
	if err != nil {
		return Computed{}, fmt.Errorf("computed fields of %s: %w", id, err)
	}
	if x.LastActivityAt != nil {
		t := x.LastActivityAt.UTC()
		x.LastActivityAt = &t
	}
	return x, nil
}

// TagCount is a tag and how many open profiles carry it.
type TagCount struct {
	Tag   string `json:"tag"`
	Count int64  `json:"count" doc:"profiles carrying the tag, merged-away ones left out"`
}

// TagCursor is a position in the tag list: most used first, then by name.
type TagCursor struct {
	Count int64  `json:"n"`
	Tag   string `json:"t"`
}

// Tags answers a page of the tenant's tags with how many profiles carry
// each, most used first, and the cursor of the next page (nil on the last).
func (r Reader) Tags(ctx context.Context, tenant string, limit int, after *TagCursor) ([]TagCount, *TagCursor, error) {
	limit = Page{Limit: limit}.limit()
	args := []any{tenant, limit + 1}
	sql := `SELECT tag, n FROM (
		SELECT t AS tag, count(*) AS n FROM customers c CROSS JOIN LATERAL unnest(c.tags) AS t
		WHERE c.tenant_id = $1 AND c.tags <> '{}' AND c.status <> 'MERGED'
		GROUP BY t
	) s`
	if after != nil {
		args = append(args, after.Count, after.Tag)
		sql += ` WHERE n < $3 OR (n = $3 AND tag > $4)`
	}
	sql += ` ORDER BY n DESC, tag LIMIT $2`
	var out []TagCount
	err := postgres.ReadInTenant(ctx, r.DB, tenant, func(tx postgres.Queryer) error {
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, pgx.RowToStructByPos[TagCount])
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list tags: %w", err)
	}
	if len(out) <= limit {
		return out, nil, nil
	}
	out = out[:limit]
	last := out[limit-1]
	return out, &TagCursor{Count: last.Count, Tag: last.Tag}, nil
}
