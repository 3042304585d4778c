package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Queryer is what a read path needs of a connection: pgx.Tx has it, and so
// has the Queryer ReadInTenant hands out.
type Queryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// batchSender is satisfied by *pgxpool.Pool and *pgx.Conn.
type batchSender interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// sqlBind binds a statement to the tenant: the role its row-level security
// policies apply to, and the tenant they compare with.
const sqlBind = `SELECT set_config('role', $1, true), set_config('crm.tenant_id', $2, true)`

// ReadInTenant runs fn, which only reads, with a Queryer whose statements
// each see only tenant's rows, as InTenant's do. Each statement travels
// with the binding in one pipeline, which PostgreSQL runs as one implicit
// transaction, so the binding holds for that statement alone and a read
// costs one round trip where InTenant's BEGIN, statement and COMMIT cost
// three: a profile GET is one statement. The statements of one fn do not
// share a snapshot, which reads at READ COMMITTED never do anyway. Where
// db cannot send a pipeline (a pgx.Tx), fn runs inside InTenant.
func ReadInTenant(ctx context.Context, db Beginner, tenant string, fn func(Queryer) error) error {
	if tenant == "" {
		return ErrNoTenant
	}
	b, ok := db.(batchSender)
	if _, tx := db.(pgx.Tx); !ok || tx {
		return InTenant(ctx, db, tenant, func(tx pgx.Tx) error { return fn(tx) })
	}
	r := &tenantReads{db: b, tenant: tenant}
	defer r.close()
	return fn(r)
}

type tenantReads struct {
	db     batchSender
	tenant string
	open   []*batchRows
}

// close closes rows fn left open: open rows hold their pooled connection,
// as a transaction left open would.
func (r *tenantReads) close() {
	for _, rows := range r.open {
		rows.Close()
	}
}

// Query implements Queryer.
func (r *tenantReads) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	b := &pgx.Batch{}
	b.Queue(sqlBind, TenantRole, r.tenant)
	b.Queue(sql, args...)
	br := r.db.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		br.Close() //nolint:errcheck // the bind error is the one to report
		return nil, fmt.Errorf("bind tenant: %w", err)
	}
	rows, err := br.Query()
	if err != nil {
		br.Close() //nolint:errcheck // the query's error is the one to report
		return nil, err
	}
	out := &batchRows{Rows: rows, br: br}
	r.open = append(r.open, out)
	return out, nil
}

// QueryRow implements Queryer.
func (r *tenantReads) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := r.Query(ctx, sql, args...)
	return row{rows: rows, err: err}
}

// batchRows are a pipeline's rows: closing them reads the pipeline to its
// end, which returns the connection.
type batchRows struct {
	pgx.Rows
	br     pgx.BatchResults
	closed bool
	err    error
}

func (r *batchRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.Close()
	return false
}

func (r *batchRows) Close() {
	if r.closed {
		return
	}
	r.closed = true
	r.Rows.Close()
	if err := r.br.Close(); err != nil && r.Rows.Err() == nil {
		r.err = err
	}
}

func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}

// row is the first row of a pipeline's rows, as pgx.Conn.QueryRow answers.
type row struct {
	rows pgx.Rows
	err  error
}

func (r row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}
