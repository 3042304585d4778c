package migrations_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/adapters/postgres/pgtest"
	"github.com/clubcrm/crm/migrations"
)

// atVersion answers a database of t's own migrated up to version, its DSN
// and a goose provider to move it further: the start of a test that an
// upgrade keeps the rows an older schema held.
func atVersion(t *testing.T, version int64) (*sql.DB, string, *goose.Provider) {
	t.Helper()
	dsn := pgtest.EmptyDatabase(t)
	db, err := sql.Open("pgx", dsn)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS)
	require.NoError(t, err)
	_, err = p.UpTo(context.Background(), version)
	require.NoError(t, err)
	return db, dsn, p
}

// column answers the first column of query's rows, as text, read through
// db or a transaction of it.
func column(t *testing.T, db interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}, query string) []string {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), query)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		out = append(out, s)
	}
	require.NoError(t, rows.Err())
	return out
}

// requireHOT waits until the statistics show one in-place (HOT) update of
// table: the only update the test made.
func requireHOT(t *testing.T, db *sql.DB, table string) {
	t.Helper()
	require.Eventually(t, func() bool {
		return column(t, db, `SELECT n_tup_hot_upd::text FROM pg_stat_user_tables WHERE relname = '`+table+`'`)[0] == "1"
	}, 10*time.Second, 50*time.Millisecond, "the update of %s was not HOT", table)
}

// TestUpgradeFoldAndStatistics: a customers row written before 00017 says
// it was folded by no known fold (0), so the ingest reads its stream
// rather than trusting it; 00018 records that a segment belongs to one
// tenant. Both go again on the way down.
func TestUpgradeFoldAndStatistics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _, p := atVersion(t, 16)
	_, err := db.ExecContext(ctx, `INSERT INTO customers (tenant_id, id, version, status, lifecycle_stage, created_at, updated_at, state)
VALUES ('club-a', gen_random_uuid(), 3, 'ACTIVE', 'MEMBER', now(), now(), '\x7b7d')`)
	require.NoError(t, err)
	_, err = p.Up(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"0"}, column(t, db, `SELECT fold::text FROM customers`))
	stats := `SELECT stxname FROM pg_statistic_ext WHERE stxrelid = 'segment_members'::regclass`
	require.Equal(t, []string{"segment_members_segment_tenant"}, column(t, db, stats))

	_, err = p.DownTo(ctx, 16)
	require.NoError(t, err)
	require.Empty(t, column(t, db, stats))
	require.Empty(t, column(t, db, `SELECT column_name FROM information_schema.columns WHERE table_name = 'customers' AND column_name = 'fold'`))
}

// TestUpgradeCustomersHotUpdates: 00019 drops the four indexes on a
// low-cardinality column of customers, so that an update moving one of
// them stays in place, and puts them back on the way down.
func TestUpgradeCustomersHotUpdates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _, p := atVersion(t, 18)
	indexes := `SELECT indexname FROM pg_indexes WHERE tablename = 'customers' AND indexname IN
('customers_lifecycle', 'customers_status', 'customers_tier', 'customers_club') ORDER BY 1`
	four := []string{"customers_club", "customers_lifecycle", "customers_status", "customers_tier"}
	require.Equal(t, four, column(t, db, indexes))

	_, err := p.Up(ctx)
	require.NoError(t, err)
	require.Empty(t, column(t, db, indexes))
	// A tier change is now a HOT update: no indexed column moved.
	_, err = db.ExecContext(ctx, `INSERT INTO customers (tenant_id, id, version, status, lifecycle_stage, membership_tier, created_at, updated_at, state)
VALUES ('club-a', gen_random_uuid(), 1, 'ACTIVE', 'MEMBER', 'Gold', now(), now(), '\x7b7d')`)
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, `UPDATE customers SET membership_tier = 'Silver', lifecycle_stage = 'LAPSED', home_club_id = 'north', version = 2`)
	require.NoError(t, err)
	requireHOT(t, db, "customers")

	_, err = p.DownTo(ctx, 18)
	require.NoError(t, err)
	require.Equal(t, four, column(t, db, indexes))
}

// TestUpgradeMetricsHotUpdates: 00020 makes the daily job's index read a
// stored flag rather than the counts, so an event moving a count updates
// the metrics row in place; the job still finds the rows to move through
// the index.
func TestUpgradeMetricsHotUpdates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _, p := atVersion(t, 19)
	_, err := db.ExecContext(ctx, `INSERT INTO customer_metrics (tenant_id, customer_id, activity_count_30d, windows_as_of)
VALUES ('club-a', gen_random_uuid(), 1, '2026-01-01'), ('club-a', gen_random_uuid(), 0, '2026-01-01')`)
	require.NoError(t, err)
	_, err = p.Up(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"false", "true"}, column(t, db, `SELECT rolling::text FROM customer_metrics ORDER BY 1`))

	_, err = db.ExecContext(ctx, `UPDATE customer_metrics SET activity_count_30d = activity_count_30d + 1, booking_count_30d = 1
WHERE activity_count_30d > 0`)
	require.NoError(t, err)
	requireHOT(t, db, "customer_metrics")
	// Two rows are read fastest whole: ask for the plan a large table gets.
	tx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	_, err = tx.ExecContext(ctx, `SET LOCAL enable_seqscan = off`)
	require.NoError(t, err)
	plan := column(t, tx, `EXPLAIN SELECT customer_id FROM customer_metrics WHERE windows_as_of < '2026-02-01' AND rolling`)
	require.NoError(t, tx.Rollback())
	require.Contains(t, strings.Join(plan, "\n"), "customer_metrics_due")

	_, err = p.DownTo(ctx, 19)
	require.NoError(t, err)
	require.Empty(t, column(t, db, `SELECT column_name FROM information_schema.columns WHERE table_name = 'customer_metrics' AND column_name = 'rolling'`))
}
