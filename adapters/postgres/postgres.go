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
	pgxuuid "github.com/vgarvardt/pgx-google-uuid/v5"
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

// Open connects a pool configured by ParseConfig and checks the server
// answers.
func Open(ctx context.Context, dsn string) (*pgxpool.Pool, error) {
	cfg, err := ParseConfig(dsn)
	if err != nil {
		return nil, err
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

// ParseConfig answers the configuration of a pool on dsn as the service
// uses it: DefaultMaxConns connections unless the URL's pool_max_conns
// says otherwise, uuids sent as bytes, and PostgreSQL's JIT compilation
// off unless the URL sets jit.
//
// JIT pays off for long analytical queries; the service runs short ones,
// but pgx prepares every statement, and after five executions PostgreSQL
// may keep a generic plan, whose estimates ignore the arguments. The
// subscriptions' read of the log (LIMIT $3 after a position) is planned
// generically at two million rows' cost once the log holds a few million
// events, past jit_above_cost, and each execution then compiled its
// expressions first: 12 ms for a read of 38 events, a quarter of the
// server's statement time at 1,000 events/s on a log of 6.1 million
// (docs/performance.md, "2026-12-07, late").
func ParseConfig(dsn string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		cfg.MaxConns = DefaultMaxConns
	}
	if _, set := cfg.ConnConfig.RuntimeParams["jit"]; !set {
		cfg.ConnConfig.RuntimeParams["jit"] = "off"
	}
	// pgx sends and reads a google/uuid UUID through its driver.Valuer and
	// sql.Scanner, as a string formatted and parsed again; registered, it
	// goes as its 16 bytes. It was 8% of a customers rebuild's processor
	// time, in the uuid[] arguments of every batch.
	cfg.AfterConnect = func(_ context.Context, c *pgx.Conn) error {
		pgxuuid.Register(c.TypeMap())
		return nil
	}
	return cfg, nil
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
	tx, err := beginInTenant(ctx, db, tenant)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after commit
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// txBeginner is satisfied by *pgxpool.Pool and *pgx.Conn, not by pgx.Tx.
type txBeginner interface {
	BeginTx(ctx context.Context, o pgx.TxOptions) (pgx.Tx, error)
}

// beginInTenant begins a transaction bound to tenant. Where it can, it
// sends BEGIN and the binding as one simple-protocol query: a round trip
// fewer on every API request (a profile GET is four otherwise). A tenant
// id that would need more than doubled quotes to be a literal takes the
// parameterised path.
func beginInTenant(ctx context.Context, db Beginner, tenant string) (pgx.Tx, error) {
	if b, ok := db.(txBeginner); ok && !strings.ContainsAny(tenant, "\\\x00") {
		tx, err := b.BeginTx(ctx, pgx.TxOptions{BeginQuery: "BEGIN; SELECT set_config('role', " + literal(TenantRole) +
			", true), set_config('crm.tenant_id', " + literal(tenant) + ", true)"})
		if err != nil {
			return nil, fmt.Errorf("begin in tenant: %w", err)
		}
		return tx, nil
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	if _, err := tx.Exec(ctx, `SELECT set_config('role', $1, true), set_config('crm.tenant_id', $2, true)`, TenantRole, tenant); err != nil {
		tx.Rollback(ctx) //nolint:errcheck // the bind error is the one to report
		return nil, fmt.Errorf("bind tenant: %w", err)
	}
	return tx, nil
}

// literal quotes s as a standard SQL string literal; s holds no backslash
// or NUL.
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
