package migrations_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/adapters/postgres/pgtest"
	"github.com/clubcrm/crm/migrations"
)

func TestUpTwiceIsANoOp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.EmptyDatabase(t)
	n, err := migrations.Up(ctx, dsn)
	require.NoError(t, err)
	assert.Positive(t, n)
	n, err = migrations.Up(ctx, dsn)
	require.NoError(t, err)
	assert.Zero(t, n)
	list, err := migrations.List(ctx, dsn)
	require.NoError(t, err)
	for _, m := range list {
		assert.True(t, m.Applied, m.Name)
	}
}

// TestConcurrentReplicas starts several migrators at once, as replicas
// starting together do: exactly one applies each migration.
func TestConcurrentReplicas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.EmptyDatabase(t)
	const replicas = 6
	var wg sync.WaitGroup
	applied := make([]int, replicas)
	errs := make([]error, replicas)
	for i := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			applied[i], errs[i] = migrations.Up(ctx, dsn)
		}()
	}
	wg.Wait()
	total := 0
	for i := range replicas {
		require.NoError(t, errs[i])
		total += applied[i]
	}
	list, err := migrations.List(ctx, dsn)
	require.NoError(t, err)
	assert.Equal(t, len(list), total, "each migration applied exactly once")

	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var rows int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM goose_db_version WHERE version_id > 0`).Scan(&rows))
	assert.Equal(t, len(list), rows)
}

func TestEnsureDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.EmptyDatabase(t)
	require.NoError(t, migrations.EnsureDatabase(ctx, dsn)) // exists: no-op
	name := fmt.Sprintf("crm_t_ensure_%d", time.Now().UnixNano())
	fresh := pgtest.URLFor(name)
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, pgtest.ServerURL())
		if err == nil {
			c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") //nolint:errcheck
			c.Close(ctx)
		}
	})
	require.NoError(t, migrations.EnsureDatabase(ctx, fresh))
	require.NoError(t, migrations.EnsureDatabase(ctx, fresh))
	conn, err := pgx.Connect(ctx, fresh)
	require.NoError(t, err)
	conn.Close(ctx)
}
