// Package scratch gives a benchmark a migrated PostgreSQL database of its
// own, dropped when it is done.
package scratch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/clubcrm/crm/migrations"
)

// Prefix starts the name of every scratch database, so that one left
// behind by a killed run is easy to spot (and drop).
const Prefix = "crm_bench_"

// Database creates a migrated database on the server serverURL names (any
// database URL on it; the database part is replaced) and answers its URL
// and a function dropping it.
func Database(ctx context.Context, serverURL string) (string, func(), error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", nil, fmt.Errorf("scratch database: parse url: %w", err)
	}
	suffix := make([]byte, 6)
	if _, err := rand.Read(suffix); err != nil {
		return "", nil, fmt.Errorf("scratch database: %w", err)
	}
	name := Prefix + hex.EncodeToString(suffix)
	db := *u
	db.Path = "/" + name
	dsn := db.String()
	admin := *u
	admin.Path = "/postgres"
	drop := func() {
		// The caller's context may be over (interrupted run): drop anyway.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin.String())
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)") //nolint:errcheck
	}
	if err := migrations.EnsureDatabase(ctx, dsn); err != nil {
		return "", nil, fmt.Errorf("scratch database: %w", err)
	}
	if _, err := migrations.Up(ctx, dsn); err != nil {
		drop()
		return "", nil, fmt.Errorf("scratch database: %w", err)
	}
	return dsn, drop, nil
}

// Existing answers the URL of database name on the server serverURL names,
// migrated to the current schema: a database an earlier run kept, to run
// the later phases again on it.
func Existing(ctx context.Context, serverURL, name string) (string, error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", fmt.Errorf("database %s: parse url: %w", name, err)
	}
	db := *u
	db.Path = "/" + name
	dsn := db.String()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", fmt.Errorf("database %s: %w", name, err)
	}
	conn.Close(ctx)
	if _, err := migrations.Up(ctx, dsn); err != nil {
		return "", fmt.Errorf("database %s: %w", name, err)
	}
	return dsn, nil
}
