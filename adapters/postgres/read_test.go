package postgres_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/adapters/postgres"
	"github.com/clubcrm/crm/adapters/postgres/pgtest"
)

// onePool answers a pool of one connection to a database of t's own,
// closed when t ends; wrap, when not nil, wraps the connection.
func onePool(t *testing.T, wrap func(net.Conn) net.Conn) *pgxpool.Pool {
	_, dsn := pgtest.New(t)
	cfg, err := pgxpool.ParseConfig(dsn)
	require.NoError(t, err)
	cfg.MaxConns = 1
	if wrap != nil {
		dial := cfg.ConnConfig.DialFunc
		cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return wrap(c), nil
		}
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// TestReadInTenant proves that pipelined reads see only their tenant's
// rows, that the binding ends with each statement (one connection serves
// them all here, so a leak would show), and that errors come back whole
// and leave the connection usable.
func TestReadInTenant(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := onePool(t, nil)
	notes(t, pool)

	read := func(db postgres.Beginner, tenant string) []string {
		var bodies []string
		err := postgres.ReadInTenant(ctx, db, tenant, func(q postgres.Queryer) error {
			rows, err := q.Query(ctx, `SELECT body FROM notes_rm ORDER BY body`) // no tenant filter on purpose
			if err != nil {
				return err
			}
			bodies, err = pgx.CollectRows(rows, pgx.RowTo[string])
			return err
		})
		require.NoError(t, err)
		return bodies
	}
	unbound := func() {
		t.Helper()
		var role, tenant string
		require.NoError(t, pool.QueryRow(ctx, `SELECT current_user, coalesce(current_setting('crm.tenant_id', true), '')`).Scan(&role, &tenant))
		assert.NotEqual(t, postgres.TenantRole, role)
		assert.Empty(t, tenant)
	}

	assert.Equal(t, []string{"a1", "a2"}, read(pool, "club-a"))
	unbound()
	assert.Equal(t, []string{"b1"}, read(pool, "club-b"))
	assert.Empty(t, read(pool, "club-c"))
	unbound()

	t.Run("several statements, each bound", func(t *testing.T) {
		var n int
		var role, bound string
		err := postgres.ReadInTenant(ctx, pool, "o'brien's club", func(q postgres.Queryer) error {
			if err := q.QueryRow(ctx, `SELECT count(*) FROM notes_rm`).Scan(&n); err != nil {
				return err
			}
			return q.QueryRow(ctx, `SELECT current_user, current_setting('crm.tenant_id')`).Scan(&role, &bound)
		})
		require.NoError(t, err)
		assert.Zero(t, n)
		assert.Equal(t, postgres.TenantRole, role)
		assert.Equal(t, "o'brien's club", bound)
		unbound()
	})
	t.Run("no row", func(t *testing.T) {
		err := postgres.ReadInTenant(ctx, pool, "club-b", func(q postgres.Queryer) error {
			var body string
			return q.QueryRow(ctx, `SELECT body FROM notes_rm WHERE id = 2`).Scan(&body)
		})
		assert.ErrorIs(t, err, pgx.ErrNoRows)
		unbound()
	})
	t.Run("a failing statement", func(t *testing.T) {
		err := postgres.ReadInTenant(ctx, pool, "club-a", func(q postgres.Queryer) error {
			rows, err := q.Query(ctx, `SELECT body FROM no_such_table`)
			if err != nil {
				return err
			}
			rows.Close()
			return rows.Err()
		})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "no_such_table")
		err = postgres.ReadInTenant(ctx, pool, "club-a", func(q postgres.Queryer) error {
			var n int
			return q.QueryRow(ctx, `SELECT 1 / (count(*) - 2) FROM notes_rm`).Scan(&n)
		})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "division by zero")
		assert.Equal(t, []string{"a1", "a2"}, read(pool, "club-a"), "the connection serves the next read")
		unbound()
	})
	t.Run("rows left unread", func(t *testing.T) {
		err := postgres.ReadInTenant(ctx, pool, "club-a", func(q postgres.Queryer) error {
			rows, err := q.Query(ctx, `SELECT body FROM notes_rm`)
			if err != nil {
				return err
			}
			defer rows.Close()
			rows.Next()
			return nil
		})
		require.NoError(t, err)
		unbound()
	})
	t.Run("rows never closed", func(t *testing.T) {
		err := postgres.ReadInTenant(ctx, pool, "club-a", func(q postgres.Queryer) error {
			_, err := q.Query(ctx, `SELECT body FROM notes_rm`)
			return err
		})
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		var n int
		require.NoError(t, pool.QueryRow(ctx, `SELECT 1`).Scan(&n), "the read gave its connection back")
	})
	t.Run("inside a transaction", func(t *testing.T) {
		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck // test cleanup
		assert.Equal(t, []string{"b1"}, read(tx, "club-b"))
	})
	t.Run("no tenant is refused", func(t *testing.T) {
		err := postgres.ReadInTenant(ctx, pool, "", func(postgres.Queryer) error { return nil })
		assert.ErrorIs(t, err, postgres.ErrNoTenant)
	})
}

// writes counts what a connection sends, one Write per flush.
type writes struct {
	net.Conn
	n *atomic.Int64
}

func (w writes) Write(b []byte) (int, error) {
	w.n.Add(1)
	return w.Conn.Write(b)
}

// TestReadInTenantRoundTrips: once the connection has prepared the
// statements, a read sends one message batch, where InTenant sends three.
func TestReadInTenantRoundTrips(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var sent atomic.Int64
	pool := onePool(t, func(c net.Conn) net.Conn { return writes{Conn: c, n: &sent} })

	count := func(read func() error) int64 {
		require.NoError(t, read()) // prepares
		before := sent.Load()
		require.NoError(t, read())
		return sent.Load() - before
	}
	var n int
	assert.EqualValues(t, 1, count(func() error {
		return postgres.ReadInTenant(ctx, pool, "club-a", func(q postgres.Queryer) error {
			return q.QueryRow(ctx, `SELECT count(*) FROM customers`).Scan(&n)
		})
	}))
	assert.EqualValues(t, 3, count(func() error {
		return postgres.InTenant(ctx, pool, "club-a", func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, `SELECT count(*) FROM customers`).Scan(&n)
		})
	}))
}
