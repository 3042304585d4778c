package migrations_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/migrations"
)

// TestOpaqueStateKeepsRows upgrades a database whose projector state is
// still jsonb: the rows keep their state, readable as the same JSON, so a
// running deployment needs no rebuild.
func TestOpaqueStateKeepsRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, dsn, _ := atVersion(t, 14)

	profile := `{"id": "7d2f0c7e-4a57-4c39-9c1b-2b8f0a5a1e11", "tenantId": "club-1", "version": 3, "tags": ["vip"]}`
	timeline := `{"handicap": 12.4}`
	_, err := db.ExecContext(ctx, `INSERT INTO customers (tenant_id, id, version, status, lifecycle_stage, created_at, updated_at, state)
		VALUES ('club-1', '7d2f0c7e-4a57-4c39-9c1b-2b8f0a5a1e11', 3, 'ACTIVE', 'MEMBER', now(), now(), $1::jsonb)`, profile)
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, `INSERT INTO timeline_state (tenant_id, customer_id, state)
		VALUES ('club-1', '7d2f0c7e-4a57-4c39-9c1b-2b8f0a5a1e11', $1::jsonb)`, timeline)
	require.NoError(t, err)

	_, err = migrations.Up(ctx, dsn)
	require.NoError(t, err)

	for _, c := range []struct{ query, want string }{
		{`SELECT state FROM customers`, profile},
		{`SELECT state FROM timeline_state`, timeline},
	} {
		var got []byte
		require.NoError(t, db.QueryRowContext(ctx, c.query).Scan(&got))
		var gotV, wantV any
		require.NoError(t, json.Unmarshal(got, &gotV), c.query)
		require.NoError(t, json.Unmarshal([]byte(c.want), &wantV))
		assert.Equal(t, wantV, gotV, c.query)
	}
}
