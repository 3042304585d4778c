// Package postgres opens the service's PostgreSQL pool and runs work inside
// tenant-scoped transactions that row-level security enforces.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TenantRole is the role API queries run as; see migrations/00001_tenancy.sql.
const TenantRole = "crm_tenant"

// ErrNoTenant is returned when tenant-scoped work is asked for without a tenant.
var ErrNoTenant = errors.New("no tenant")

// DefaultMaxConns sizes the pool unless the URL's pool_max_conns does:
// pgxpool's default (the core count, at least 4) is too few for one
// process running the API, the projectors and the jobs, several of which
// hold a connection while they lead.
const DefaultMaxConns = 20

// Open connects a pool and checks the server answers.
func Open(ctx context.Context, dsn string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		cfg.MaxConns = DefaultMaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("ping database: %w", err)
	}
	return pool, nil
}

// Beginner is satisfied by *pgxpool.Pool, *pgx.Conn and pgx.Tx.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// InTenant runs fn in a transaction bound to tenant: it switches to the
// crm_tenant role and pins crm.tenant_id for the transaction only, so the
// row-level security policies confine every statement fn issues to the
// tenant's rows, whether or not the statement filters by tenant itself.
func InTenant(ctx context.Context, db Beginner, tenant string, fn func(pgx.Tx) error) error {
	if tenant == "" {
		return ErrNoTenant
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after commit
	if _, err := tx.Exec(ctx, `SELECT set_config('role', $1, true), set_config('crm.tenant_id', $2, true)`, TenantRole, tenant); err != nil {
		return fmt.Errorf("bind tenant: %w", err)
	}
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
