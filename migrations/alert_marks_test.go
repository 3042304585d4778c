package migrations_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/pressly/goose/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/adapters/postgres/pgtest"
	"github.com/clubcrm/crm/migrations"
)

// TestAlertMarksKeepDueRows upgrades a database whose alert marks are
// still a column of customer_scores: the marked rows stay due, the others
// do not, and going down again restores the column as it was.
func TestAlertMarksKeepDueRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.EmptyDatabase(t)
	db, err := sql.Open("pgx", dsn)
	require.NoError(t, err)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS)
	require.NoError(t, err)
	_, err = p.UpTo(ctx, 15)
	require.NoError(t, err)

	_, err = db.ExecContext(ctx, `INSERT INTO customer_scores (tenant_id, customer_id, engagement_score, churn_risk_score, model_version, alert_due)
VALUES ('club-1', '7d2f0c7e-4a57-4c39-9c1b-2b8f0a5a1e11', 40, 85, 0, true),
       ('club-1', '0b6a4f4e-2f1d-4c0e-9a57-6b1e2c3d4f50', 70, 10, 0, false)`)
	require.NoError(t, err)

	_, err = p.UpTo(ctx, 16)
	require.NoError(t, err)
	var due []string
	rows, err := db.QueryContext(ctx, `SELECT tenant_id || ' ' || customer_id FROM score_alert_due`)
	require.NoError(t, err)
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		due = append(due, s)
	}
	require.NoError(t, rows.Err())
	assert.Equal(t, []string{"club-1 7d2f0c7e-4a57-4c39-9c1b-2b8f0a5a1e11"}, due)

	_, err = p.DownTo(ctx, 15)
	require.NoError(t, err)
	var marked []string
	rows, err = db.QueryContext(ctx, `SELECT customer_id::text FROM customer_scores WHERE alert_due ORDER BY 1`)
	require.NoError(t, err)
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		marked = append(marked, s)
	}
	require.NoError(t, rows.Err())
	assert.Equal(t, []string{"7d2f0c7e-4a57-4c39-9c1b-2b8f0a5a1e11"}, marked)
}
