package migrations_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAlertMarksKeepDueRows upgrades a database whose alert marks are
// still a column of customer_scores: the marked rows stay due, the others
// do not, and going down again restores the column as it was.
func TestAlertMarksKeepDueRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _, p := atVersion(t, 15)

	_, err := db.ExecContext(ctx, `INSERT INTO customer_scores (tenant_id, customer_id, engagement_score, churn_risk_score, model_version, alert_due)
VALUES ('club-1', '7d2f0c7e-4a57-4c39-9c1b-2b8f0a5a1e11', 40, 85, 0, true),
       ('club-1', '0b6a4f4e-2f1d-4c0e-9a57-6b1e2c3d4f50', 70, 10, 0, false)`)
	require.NoError(t, err)

	_, err = p.UpTo(ctx, 16)
	require.NoError(t, err)
	assert.Equal(t, []string{"club-1 7d2f0c7e-4a57-4c39-9c1b-2b8f0a5a1e11"},
		column(t, db, `SELECT tenant_id || ' ' || customer_id FROM score_alert_due`))

	_, err = p.DownTo(ctx, 15)
	require.NoError(t, err)
	assert.Equal(t, []string{"7d2f0c7e-4a57-4c39-9c1b-2b8f0a5a1e11"},
		column(t, db, `SELECT customer_id::text FROM customer_scores WHERE alert_due ORDER BY 1`))
}
