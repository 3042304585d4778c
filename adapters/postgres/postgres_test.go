package postgres_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/adapters/postgres"
	"github.com/clubcrm/crm/adapters/postgres/pgtest"
)

// notes makes notes_rm, a read model under the tenant policy with two
// rows of club-a and one of club-b.
func notes(t *testing.T, pool interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `
		CREATE TABLE notes_rm (tenant_id text NOT NULL, id int NOT NULL, body text, PRIMARY KEY (tenant_id, id));
		SELECT crm_enable_tenancy('notes_rm');
		INSERT INTO notes_rm VALUES ('club-a', 1, 'a1'), ('club-a', 2, 'a2'), ('club-b', 1, 'b1');`)
	require.NoError(t, err)
}

// TestRowLevelSecurity proves that a query which forgets its tenant filter
// still sees only the tenant bound to its transaction.
func TestRowLevelSecurity(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := pgtest.New(t)
	notes(t, pool)

	read := func(tenant string) []string {
		var bodies []string
		err := postgres.InTenant(ctx, pool, tenant, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `SELECT body FROM notes_rm ORDER BY body`) // no tenant filter on purpose
			if err != nil {
				return err
			}
			bodies, err = pgx.CollectRows(rows, pgx.RowTo[string])
			return err
		})
		require.NoError(t, err)
		return bodies
	}
	assert.Equal(t, []string{"a1", "a2"}, read("club-a"))
	assert.Equal(t, []string{"b1"}, read("club-b"))
	assert.Empty(t, read("club-c"))

	t.Run("writes for another tenant are refused", func(t *testing.T) {
		err := postgres.InTenant(ctx, pool, "club-a", func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO notes_rm VALUES ('club-b', 9, 'sneaky')`)
			return err
		})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "row-level security")
	})
	t.Run("updates cannot reach another tenant", func(t *testing.T) {
		err := postgres.InTenant(ctx, pool, "club-a", func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, `UPDATE notes_rm SET body = 'x' WHERE id = 1`)
			assert.EqualValues(t, 1, tag.RowsAffected()) // club-a's row only
			return err
		})
		require.NoError(t, err)
		assert.Equal(t, []string{"b1"}, read("club-b"))
	})
	t.Run("the binding ends with the transaction", func(t *testing.T) {
		var role, tenant string
		require.NoError(t, pool.QueryRow(ctx, `SELECT current_user, coalesce(current_setting('crm.tenant_id', true), '')`).Scan(&role, &tenant))
		assert.NotEqual(t, postgres.TenantRole, role)
		assert.Empty(t, tenant)
	})
	t.Run("no tenant is refused", func(t *testing.T) {
		err := postgres.InTenant(ctx, pool, "", func(pgx.Tx) error { return nil })
		assert.ErrorIs(t, err, postgres.ErrNoTenant)
	})
}

// TestTenantBinding binds awkward tenant ids, through a pool (BEGIN and the
// binding in one query) and through an open transaction (the parameterised
// path), and checks the transaction sees exactly that id and role, and
// nothing of them after it ends.
func TestTenantBinding(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := pgtest.New(t)
	outer, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer outer.Rollback(ctx) //nolint:errcheck // test cleanup
	for _, tenant := range []string{"club-a", "o'brien's club", `back\slash`, "'; DROP TABLE x; --", "ünïcode"} {
		for name, db := range map[string]postgres.Beginner{"pool": pool, "transaction": outer} {
			var role, bound string
			err := postgres.InTenant(ctx, db, tenant, func(tx pgx.Tx) error {
				return tx.QueryRow(ctx, `SELECT current_user, current_setting('crm.tenant_id')`).Scan(&role, &bound)
			})
			require.NoError(t, err, "%s: %q", name, tenant)
			assert.Equal(t, postgres.TenantRole, role, "%s: %q", name, tenant)
			assert.Equal(t, tenant, bound, "%s: %q", name, tenant)
		}
	}
	var role string
	require.NoError(t, pool.QueryRow(ctx, `SELECT current_user`).Scan(&role))
	assert.NotEqual(t, postgres.TenantRole, role)
}

// TestOpenTurnsJITOff holds the pool's sessions to no JIT compilation
// unless the URL asks for it.
func TestOpenTurnsJITOff(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	for _, tc := range []struct{ dsn, want string }{
		{dsn, "off"},
		{dsn + "&jit=on", "on"},
	} {
		pool, err := postgres.Open(ctx, tc.dsn)
		require.NoError(t, err)
		var jit string
		require.NoError(t, pool.QueryRow(ctx, `SHOW jit`).Scan(&jit))
		pool.Close()
		assert.Equal(t, tc.want, jit, tc.dsn)
	}
}
