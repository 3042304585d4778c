// Package pgtest gives each test a database of its own, migrated to the
// current schema, on the real PostgreSQL server named by TEST_DATABASE_URL
// (default: the local server). Databases are cloned from a template built
// once per migration set, so a test pays for CREATE DATABASE, not for the
// migrations, and tests in different packages run in parallel safely.
package pgtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/clubcrm/crm/adapters/postgres"
	"github.com/clubcrm/crm/migrations"
)

// DefaultServerURL is the server tests use unless TEST_DATABASE_URL says otherwise.
const DefaultServerURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// templateLock serialises template builds across test processes.
const templateLock = 0x63726d2d746d706c

// ServerURL answers the maintenance-database URL tests connect through.
func ServerURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultServerURL
}

// URLFor answers ServerURL with its database replaced by name.
func URLFor(name string) string {
	u, err := url.Parse(ServerURL())
	if err != nil {
		panic(fmt.Sprintf("TEST_DATABASE_URL: %v", err))
	}
	u.Path = "/" + name
	return u.String()
}

// New creates a fresh, migrated database for t, dropped when t ends, and
// answers a pool on it with its URL, configured as the service's own
// (postgres.Open).
func New(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	dsn := NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Four connections, pgxpool's own default here, rather than the
	// service's twenty: every package's tests run at once against one
	// server and its max_connections.
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	q := u.Query()
	q.Set("pool_max_conns", "4")
	u.RawQuery = q.Encode()
	pool, err := postgres.Open(ctx, u.String())
	if err != nil {
		t.Fatalf("pgtest: pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool, dsn
}

// NewDatabase creates a fresh, migrated database for t and answers its URL;
// the database is dropped when t ends.
func NewDatabase(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tmpl, err := template(ctx)
	if err != nil {
		t.Fatalf("pgtest: template: %v", err)
	}
	return create(t, tmpl)
}

// EmptyDatabase creates a database with no schema at all for t (to test
// migrations themselves) and answers its URL; it is dropped when t ends.
func EmptyDatabase(t testing.TB) string {
	t.Helper()
	return create(t, "template0")
}

func create(t testing.TB, tmpl string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	name := "crm_t_" + randomHex(6)
	admin, err := pgx.Connect(ctx, ServerURL())
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer admin.Close(ctx)
	sql := fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", pgx.Identifier{name}.Sanitize(), pgx.Identifier{tmpl}.Sanitize())
	for attempt := 0; ; attempt++ {
		_, err = admin.Exec(ctx, sql)
		// 55006: the template still has a session from its build closing down.
		if err == nil || attempt == 50 || !strings.Contains(err.Error(), "55006") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, ServerURL())
		if err != nil {
			t.Errorf("pgtest: drop %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop %s: %v", name, err)
		}
	})
	return URLFor(name)
}

// template answers the name of a template database holding the current
// migrations, building it first if no test process has yet.
func template(ctx context.Context) (string, error) {
	sum, err := migrationsHash()
	if err != nil {
		return "", err
	}
	name := "crm_tmpl_" + sum[:12]
	admin, err := pgx.Connect(ctx, ServerURL())
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(templateLock)); err != nil {
		return "", fmt.Errorf("lock: %w", err)
	}
	defer admin.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", int64(templateLock)) //nolint:errcheck

	var ready *bool
	err = admin.QueryRow(ctx, "SELECT datistemplate FROM pg_database WHERE datname = $1", name).Scan(&ready)
	if err != nil && err != pgx.ErrNoRows {
		return "", fmt.Errorf("look up template: %w", err)
	}
	if ready != nil && *ready {
		return name, nil
	}
	ident := pgx.Identifier{name}.Sanitize()
	if ready != nil { // a build that died half way
		if _, err := admin.Exec(ctx, "DROP DATABASE "+ident+" WITH (FORCE)"); err != nil {
			return "", fmt.Errorf("drop broken template: %w", err)
		}
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		return "", fmt.Errorf("create template: %w", err)
	}
	if _, err := migrations.Up(ctx, URLFor(name)); err != nil {
		return "", err
	}
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+ident+" WITH is_template true"); err != nil {
		return "", fmt.Errorf("mark template: %w", err)
	}
	dropStaleTemplates(ctx, admin, name)
	return name, nil
}

// keptTemplates is how many templates of other migration sets survive a
// build: several checkouts (git worktrees, a clean clone) test on one
// server at once, and dropping a template another one is cloning from
// would fail its tests.
const keptTemplates = 4

// dropStaleTemplates removes templates of earlier migration sets but the
// newest few.
func dropStaleTemplates(ctx context.Context, admin *pgx.Conn, keep string) {
	rows, err := admin.Query(ctx, "SELECT datname FROM pg_database WHERE datname LIKE 'crm\\_tmpl\\_%' AND datname <> $1 ORDER BY oid DESC OFFSET $2", keep, keptTemplates)
	if err != nil {
		return
	}
	names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	for _, n := range names {
		id := pgx.Identifier{n}.Sanitize()
		admin.Exec(ctx, "ALTER DATABASE "+id+" WITH is_template false") //nolint:errcheck
		admin.Exec(ctx, "DROP DATABASE "+id+" WITH (FORCE)")            //nolint:errcheck
	}
}

func migrationsHash() (string, error) {
	h := sha256.New()
	err := fs.WalkDir(migrations.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(migrations.FS, path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", path, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash migrations: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
