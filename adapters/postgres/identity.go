package postgres

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/clubcrm/crm/commands"
	"github.com/clubcrm/crm/domain/identity"
)

// IdentityIndex is the identity index and upstream inbox in PostgreSQL.
type IdentityIndex struct {
	Pool *pgxpool.Pool
}

var _ commands.IdentityIndex = (*IdentityIndex)(nil)
var _ commands.Inbox = (*IdentityIndex)(nil)

// sqlLockKeys serialises the transactions that touch the same identity
// keys ($2) of a tenant ($1, one per key): it takes a transaction-scoped advisory lock on
// each key's bucket (one of lockBuckets per tenant), in one order for every
// caller so two transactions never wait on each other in a cycle. Locking
// keys nobody holds yet is what makes "is this person new?" safe to ask
// from many handlers and processes at once.
//
// Buckets, not keys: a batch of 500 events names a thousand keys or more,
// and a lock per key would cost PostgreSQL a lock-table entry each — a
// table of max_locks_per_transaction × max_connections entries (6,400 by
// default) that a few concurrent batches would exhaust ("out of shared
// memory"). Two transactions that share a key share its bucket, so the
// exclusion is the same; they only also wait for each other sometimes
// when they merely share a bucket. Every process must bucket alike: a
// process locking per key would not exclude one locking per bucket.
const sqlLockKeys = `
	SELECT pg_advisory_xact_lock(h)
	FROM (
		SELECT DISTINCT hashtextextended(t || ':bucket:' || (hashtextextended(k, 0) & (` + lockBuckets + ` - 1)), 0) AS h
		FROM unnest($1::text[], $2::text[]) AS q(t, k) ORDER BY 1
	) AS ordered`

// lockBuckets is the number of identity-key lock buckets per tenant, a
// power of two.
const lockBuckets = "64"

// sqlHolders answers who holds the keys ($2, $3) — rows marked true — and
// every key those profiles hold — rows marked false — in one statement.
// Each lookup is an index probe (OFFSET 0 keeps the planner from
// flattening the subqueries into joins): otherwise a small or newly grown
// table gets hash joins over every key of the tenant, a cost that grows
// with the table rather than with the batch.
const sqlHolders = `
	WITH h AS MATERIALIZED (
		SELECT k.tenant_id, k.kind, k.value, k.customer_id, k.created_at
		FROM unnest($1::text[], $2::text[], $3::text[]) AS q(tenant, kind, value)
		CROSS JOIN LATERAL (
			SELECT tenant_id, kind, value, customer_id, created_at FROM identity_keys
			WHERE tenant_id = q.tenant AND kind = q.kind AND value = q.value OFFSET 0
		) AS k
	)
	SELECT true, tenant_id, kind, value, customer_id, created_at FROM h
	UNION ALL
	SELECT false, p.tenant_id, p.kind, p.value, p.customer_id, p.created_at
	FROM (SELECT DISTINCT tenant_id, customer_id FROM h) AS d
	CROSS JOIN LATERAL (
		SELECT tenant_id, kind, value, customer_id, created_at FROM identity_keys
		WHERE tenant_id = d.tenant_id AND customer_id = d.customer_id OFFSET 0
	) AS p`

// sqlNeighbours reads the profile read model for people at the same email
// domains ($2) with the same folded surnames ($3) in the same tenants ($1):
// candidates for a fuzzy review, at most neighbourLimit per pair.
const sqlNeighbours = `
	SELECT q.tenant, c.id, coalesce(c.first_name, ''), coalesce(c.last_name, ''), coalesce(c.email, '')
	FROM (SELECT DISTINCT * FROM unnest($1::text[], $2::text[], $3::text[])) AS q(tenant, domain, surname)
	CROSS JOIN LATERAL (
		SELECT id, first_name, last_name, email FROM customers c
		WHERE c.tenant_id = q.tenant AND c.email_domain = q.domain AND c.last_name_folded = q.surname AND c.status <> 'MERGED'
		LIMIT ` + neighbourLimit + `
	) AS c`

// neighbourLimit bounds the neighbours read per email domain and surname.
const neighbourLimit = "200"

const sqlReserve = `
	INSERT INTO identity_keys (tenant_id, kind, value, customer_id, caused_by)
	SELECT t, k, v, c, cb FROM unnest($1::text[], $2::text[], $3::text[], $4::uuid[], $5::text[]) AS r(t, k, v, c, cb)
	ON CONFLICT DO NOTHING`

// lockKeys takes the advisory locks of sqlLockKeys in tx.
func lockKeys(ctx context.Context, tx pgx.Tx, tenant string, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, sqlLockKeys, repeat(tenant, len(keys)), keys); err != nil {
		return fmt.Errorf("lock identity keys: %w", err)
	}
	return nil
}

// Resolve implements commands.IdentityIndex in two round trips: the first
// opens the transaction, takes the locks and reads who holds the keys
// (statements after the lock see what earlier holders of the locks
// committed), the second reserves and commits. The transaction is opened
// and ended by statements in the batches rather than by pgx.Tx, which would
// cost two round trips more.
func (x *IdentityIndex) Resolve(ctx context.Context, reqs []commands.ResolveRequest, decide commands.Decider) (err error) {
	var tenants, kinds, values, lockNames []string
	seenKey := map[tenantKey]bool{}
	var nTenants, domains, surnames []string
	for _, r := range reqs {
		for _, k := range r.Keys {
			if tk := (tenantKey{r.Tenant, k}); !seenKey[tk] {
				seenKey[tk] = true
				tenants, kinds, values = append(tenants, r.Tenant), append(kinds, string(k.Kind)), append(values, k.Value)
				lockNames = append(lockNames, k.String())
			}
		}
		if d := identity.EmailDomain(r.Email); d != "" && identity.FoldName(r.Name.Last) != "" {
			nTenants, domains, surnames = append(nTenants, r.Tenant), append(domains, d), append(surnames, identity.FoldName(r.Name.Last))
		}
	}

	conn, err := x.Pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("resolve identities: acquire connection: %w", err)
	}
	defer conn.Release()
	defer func() {
		if err != nil {
			rollback(conn.Conn())
		}
	}()

	var (
		holders     []heldKey
		profileKeys = map[tenantProfile][]identity.Key{}
		neighbours  = map[string][]identity.Profile{}
	)
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	if len(lockNames) > 0 {
		b.Queue(sqlLockKeys, tenants, lockNames)
		b.Queue(sqlHolders, tenants, kinds, values)
	}
	if len(domains) > 0 {
		b.Queue(sqlNeighbours, nTenants, domains, surnames)
	}
	err = func() error {
		br := conn.SendBatch(ctx, b)
		defer br.Close()
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		if len(lockNames) > 0 {
			if _, err := br.Exec(); err != nil {
				return fmt.Errorf("lock identity keys: %w", err)
			}
			rows, err := br.Query()
			if err != nil {
				return fmt.Errorf("look up identity keys: %w", err)
			}
			var (
				holder bool
				h      heldKey
				kind   string
			)
			_, err = pgx.ForEachRow(rows, []any{&holder, &h.tenant, &kind, &h.Key.Value, &h.CustomerID, &h.at}, func() error {
				h.Key.Kind = identity.Kind(kind)
				if holder {
					holders = append(holders, h)
				} else {
					tp := tenantProfile{h.tenant, h.CustomerID}
					profileKeys[tp] = append(profileKeys[tp], h.Key)
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("look up identity keys: %w", err)
			}
		}
		if len(domains) > 0 {
			rows, err := br.Query()
			if err != nil {
				return fmt.Errorf("look up neighbours: %w", err)
			}
			var (
				tenant string
				p      identity.Profile
			)
			_, err = pgx.ForEachRow(rows, []any{&tenant, &p.CustomerID, &p.FirstName, &p.LastName, &p.Email}, func() error {
				neighbours[tenant] = append(neighbours[tenant], p)
				return nil
			})
			if err != nil {
				return fmt.Errorf("look up neighbours: %w", err)
			}
		}
		return nil
	}()
	if err != nil {
		return err
	}
	// The oldest holder first, as the domain's rules expect.
	slices.SortStableFunc(holders, func(a, b heldKey) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return bytes.Compare(a.CustomerID[:], b.CustomerID[:])
	})

	byKey := map[tenantKey][]uuid.UUID{}
	for _, h := range holders {
		tk := tenantKey{h.tenant, h.Key}
		byKey[tk] = append(byKey[tk], h.CustomerID)
	}
	var resTenants, resKinds, resValues, resCauses []string
	var resCustomers []pgtype.UUID
	for i, r := range reqs {
		c := identity.Candidates{Profiles: map[uuid.UUID]identity.Profile{}}
		for _, k := range r.Keys {
			for _, id := range byKey[tenantKey{r.Tenant, k}] {
				c.Holders = append(c.Holders, identity.Holder{Key: k, CustomerID: id})
				c.Profiles[id] = identity.Profile{CustomerID: id, Keys: profileKeys[tenantProfile{r.Tenant, id}]}
			}
		}
		if d := identity.EmailDomain(r.Email); d != "" {
			for _, n := range neighbours[r.Tenant] {
				if identity.EmailDomain(n.Email) == d && identity.FoldName(n.LastName) == identity.FoldName(r.Name.Last) {
					c.Neighbours = append(c.Neighbours, n)
				}
			}
		}
		customer, reserve := decide(i, c)
		for _, k := range reserve {
			tk := tenantKey{r.Tenant, k}
			if slices.Contains(byKey[tk], customer) {
				continue
			}
			// Later requests of the batch see this reservation.
			byKey[tk] = append(byKey[tk], customer)
			tp := tenantProfile{r.Tenant, customer}
			profileKeys[tp] = append(profileKeys[tp], k)
			resTenants, resKinds, resValues = append(resTenants, r.Tenant), append(resKinds, string(k.Kind)), append(resValues, k.Value)
			resCustomers, resCauses = append(resCustomers, pgtype.UUID{Bytes: customer, Valid: true}), append(resCauses, r.CausedBy)
		}
	}

	b = &pgx.Batch{}
	if len(resKinds) > 0 {
		b.Queue(sqlReserve, resTenants, resKinds, resValues, resCustomers, resCauses)
	}
	b.Queue("COMMIT")
	err = func() error {
		br := conn.SendBatch(ctx, b)
		defer br.Close()
		if len(resKinds) > 0 {
			if _, err := br.Exec(); err != nil {
				return fmt.Errorf("reserve identity keys: %w", err)
			}
		}
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("commit identity keys: %w", err)
		}
		return nil
	}()
	return err
}

// tenantKey is an identity key of a tenant.
type tenantKey struct {
	tenant string
	key    identity.Key
}

// tenantProfile is a profile of a tenant.
type tenantProfile struct {
	tenant string
	id     uuid.UUID
}

// heldKey is a key, who holds it and since when.
type heldKey struct {
	tenant string
	identity.Holder
	at time.Time
}

// rollback ends a failed transaction, if one is open, so that its
// connection can go back to the pool; it has a context of its own because
// the caller's may be done.
func rollback(conn *pgx.Conn) {
	if conn.IsClosed() || conn.PgConn().TxStatus() == 'I' {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, "ROLLBACK"); err != nil {
		// The pool destroys a connection it gets back inside a transaction.
		conn.Close(ctx) //nolint:errcheck
	}
}

// Repoint implements commands.IdentityIndex: the survivor of a merge takes
// every key of the profile it absorbed.
func (x *IdentityIndex) Repoint(ctx context.Context, tenant string, from, to uuid.UUID, causedBy string) error {
	tx, err := x.Pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	rows, err := tx.Query(ctx, `SELECT kind || ':' || value FROM identity_keys WHERE tenant_id = $1 AND customer_id = ANY($2)`, tenant, []uuid.UUID{from, to})
	if err != nil {
		return fmt.Errorf("keys of %s: %w", from, err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	if err := lockKeys(ctx, tx, tenant, names); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO identity_keys (tenant_id, kind, value, customer_id, caused_by)
		SELECT tenant_id, kind, value, $3, $4 FROM identity_keys WHERE tenant_id = $1 AND customer_id = $2
		ON CONFLICT DO NOTHING`, tenant, from, to, causedBy); err != nil {
		return fmt.Errorf("move keys to %s: %w", to, err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM identity_keys WHERE tenant_id = $1 AND customer_id = $2`, tenant, from); err != nil {
		return fmt.Errorf("release keys of %s: %w", from, err)
	}
	return tx.Commit(ctx)
}

// Seen implements commands.Inbox.
func (x *IdentityIndex) Seen(ctx context.Context, events []commands.InboxKey) (map[commands.InboxKey]string, error) {
	tenants, ids := make([]string, len(events)), make([]string, len(events))
	for i, e := range events {
		tenants[i], ids[i] = e.Tenant, e.EventID
	}
	// A primary-key probe per event, as in sqlHolders.
	rows, err := x.Pool.Query(ctx, `
		SELECT i.tenant_id, i.event_id, i.stream
		FROM unnest($1::text[], $2::text[]) AS q(tenant, id)
		CROSS JOIN LATERAL (
			SELECT tenant_id, event_id, stream FROM upstream_inbox WHERE tenant_id = q.tenant AND event_id = q.id OFFSET 0
		) AS i`, tenants, ids)
	if err != nil {
		return nil, fmt.Errorf("inbox: %w", err)
	}
	out := map[commands.InboxKey]string{}
	var (
		k      commands.InboxKey
		stream string
	)
	_, err = pgx.ForEachRow(rows, []any{&k.Tenant, &k.EventID, &stream}, func() error {
		out[k] = stream
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("inbox: %w", err)
	}
	return out, nil
}

// Record implements commands.Inbox.
func (x *IdentityIndex) Record(ctx context.Context, entries []commands.InboxEntry) error {
	if len(entries) == 0 {
		return nil
	}
	n := len(entries)
	tenants, ids, types, streams := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i, e := range entries {
		tenants[i], ids[i], types[i], streams[i] = e.Tenant, e.EventID, e.Type, e.Stream
	}
	_, err := x.Pool.Exec(ctx, `
		INSERT INTO upstream_inbox (tenant_id, event_id, type, stream)
		SELECT t, i, ty, s FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS r(t, i, ty, s)
		ON CONFLICT DO NOTHING`, tenants, ids, types, streams)
	if err != nil {
		return fmt.Errorf("inbox record: %w", err)
	}
	return nil
}

// repeat answers n copies of s.
func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}
