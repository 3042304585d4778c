package migrations_test

import (
	"context"
	"database/sql"
	"testing"

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

// column answers the first column of query's rows, as text.
func column(t *testing.T, db *sql.DB, query string) []string {
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
