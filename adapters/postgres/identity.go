package postgres

import (
	"context"
	"fmt"
	"strings"
	"unicode"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
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

// lockKeys takes a transaction-scoped advisory lock per key, in one order
// for every caller so two transactions never wait on each other in a cycle.
// Locking keys nobody holds yet is what makes "is this person new?" safe to
// ask from many handlers and processes at once.
func lockKeys(ctx context.Context, tx pgx.Tx, tenant string, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `
		SELECT pg_advisory_xact_lock(h)
		FROM (SELECT DISTINCT hashtextextended($1 || ':' || k, 0) AS h FROM unnest($2::text[]) AS k ORDER BY 1) AS ordered`,
		tenant, keys)
	if err != nil {
		return fmt.Errorf("lock identity keys: %w", err)
	}
	return nil
}

// Resolve implements commands.IdentityIndex.
func (x *IdentityIndex) Resolve(ctx context.Context, tenant string, reqs []commands.ResolveRequest, decide commands.Decider) error {
	tx, err := x.Pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck

	var kinds, values, lockNames []string
	seenKey := map[identity.Key]bool{}
	var domains, surnames []string
	for _, r := range reqs {
		for _, k := range r.Keys {
			if !seenKey[k] {
				seenKey[k] = true
				kinds, values = append(kinds, string(k.Kind)), append(values, k.Value)
				lockNames = append(lockNames, k.String())
			}
		}
		if d := identity.EmailDomain(r.Email); d != "" && fold(r.Name.Last) != "" {
			domains, surnames = append(domains, d), append(surnames, fold(r.Name.Last))
		}
	}
	if err := lockKeys(ctx, tx, tenant, lockNames); err != nil {
		return err
	}
	holders, err := queryHolders(ctx, tx, tenant, kinds, values)
	if err != nil {
		return err
	}
	ids := map[uuid.UUID]bool{}
	for _, h := range holders {
		ids[h.CustomerID] = true
	}
	profileKeys, err := queryProfileKeys(ctx, tx, tenant, ids)
	if err != nil {
		return err
	}
	neighbours, err := queryNeighbours(ctx, tx, tenant, domains, surnames)
	if err != nil {
		return err
	}

	byKey := map[identity.Key][]uuid.UUID{}
	for _, h := range holders {
		byKey[h.Key] = append(byKey[h.Key], h.CustomerID)
	}
	var resKinds, resValues, resCauses []string
	var resCustomers []uuid.UUID
	for i, r := range reqs {
		c := identity.Candidates{Profiles: map[uuid.UUID]identity.Profile{}}
		for _, k := range r.Keys {
			for _, id := range byKey[k] {
				c.Holders = append(c.Holders, identity.Holder{Key: k, CustomerID: id})
				c.Profiles[id] = identity.Profile{CustomerID: id, Keys: profileKeys[id]}
			}
		}
		if d := identity.EmailDomain(r.Email); d != "" {
			for _, n := range neighbours {
				if identity.EmailDomain(n.Email) == d && fold(n.LastName) == fold(r.Name.Last) {
					c.Neighbours = append(c.Neighbours, n)
				}
			}
		}
		customer, reserve := decide(i, c)
		for _, k := range reserve {
			if containsID(byKey[k], customer) {
				continue
			}
			// Later requests of the batch see this reservation.
			byKey[k] = append(byKey[k], customer)
			profileKeys[customer] = append(profileKeys[customer], k)
			resKinds, resValues = append(resKinds, string(k.Kind)), append(resValues, k.Value)
			resCustomers, resCauses = append(resCustomers, customer), append(resCauses, r.CausedBy)
		}
	}
	if len(resKinds) > 0 {
		_, err := tx.Exec(ctx, `
			INSERT INTO identity_keys (tenant_id, kind, value, customer_id, caused_by)
			SELECT $1, k, v, c, cb FROM unnest($2::text[], $3::text[], $4::uuid[], $5::text[]) AS r(k, v, c, cb)
			ON CONFLICT DO NOTHING`, tenant, resKinds, resValues, resCustomers, resCauses)
		if err != nil {
			return fmt.Errorf("reserve identity keys: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit identity keys: %w", err)
	}
	return nil
}

func queryHolders(ctx context.Context, tx pgx.Tx, tenant string, kinds, values []string) ([]identity.Holder, error) {
	if len(kinds) == 0 {
		return nil, nil
	}
	rows, err := tx.Query(ctx, `
		SELECT k.kind, k.value, k.customer_id
		FROM identity_keys k
		JOIN unnest($2::text[], $3::text[]) AS q(kind, value) ON q.kind = k.kind AND q.value = k.value
		WHERE k.tenant_id = $1
		ORDER BY k.created_at, k.customer_id`, tenant, kinds, values)
	if err != nil {
		return nil, fmt.Errorf("look up identity keys: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (identity.Holder, error) {
		var h identity.Holder
		var kind string
		err := r.Scan(&kind, &h.Key.Value, &h.CustomerID)
		h.Key.Kind = identity.Kind(kind)
		return h, err
	})
}

func queryProfileKeys(ctx context.Context, tx pgx.Tx, tenant string, ids map[uuid.UUID]bool) (map[uuid.UUID][]identity.Key, error) {
	out := map[uuid.UUID][]identity.Key{}
	if len(ids) == 0 {
		return out, nil
	}
	list := make([]uuid.UUID, 0, len(ids))
	for id := range ids {
		list = append(list, id)
	}
	rows, err := tx.Query(ctx, `SELECT customer_id, kind, value FROM identity_keys WHERE tenant_id = $1 AND customer_id = ANY($2)`, tenant, list)
	if err != nil {
		return nil, fmt.Errorf("look up profile keys: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id uuid.UUID
		var kind, value string
		if err := rows.Scan(&id, &kind, &value); err != nil {
			return nil, err
		}
		out[id] = append(out[id], identity.Key{Kind: identity.Kind(kind), Value: value})
	}
	return out, rows.Err()
}

// queryNeighbours reads the profile read model for people at the same email
// domains with the same folded surnames: candidates for a fuzzy review.
func queryNeighbours(ctx context.Context, tx pgx.Tx, tenant string, domains, surnames []string) ([]identity.Profile, error) {
	if len(domains) == 0 {
		return nil, nil
	}
	rows, err := tx.Query(ctx, `
		SELECT c.id, coalesce(c.first_name, ''), coalesce(c.last_name, ''), coalesce(c.email, '')
		FROM customers c
		JOIN unnest($2::text[], $3::text[]) AS q(domain, surname) ON c.email_domain = q.domain AND c.last_name_folded = q.surname
		WHERE c.tenant_id = $1 AND c.status <> 'MERGED'
		LIMIT 200`, tenant, domains, surnames)
	if err != nil {
		return nil, fmt.Errorf("look up neighbours: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (identity.Profile, error) {
		var p identity.Profile
		err := r.Scan(&p.CustomerID, &p.FirstName, &p.LastName, &p.Email)
		return p, err
	})
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
func (x *IdentityIndex) Seen(ctx context.Context, tenant string, ids []string) (map[string]string, error) {
	rows, err := x.Pool.Query(ctx, `SELECT event_id, stream FROM upstream_inbox WHERE tenant_id = $1 AND event_id = ANY($2)`, tenant, ids)
	if err != nil {
		return nil, fmt.Errorf("inbox: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, stream string
		if err := rows.Scan(&id, &stream); err != nil {
			return nil, err
		}
		out[id] = stream
	}
	return out, rows.Err()
}

// Record implements commands.Inbox.
func (x *IdentityIndex) Record(ctx context.Context, tenant string, entries []commands.InboxEntry) error {
	if len(entries) == 0 {
		return nil
	}
	ids, types, streams := make([]string, len(entries)), make([]string, len(entries)), make([]string, len(entries))
	for i, e := range entries {
		ids[i], types[i], streams[i] = e.EventID, e.Type, e.Stream
	}
	_, err := x.Pool.Exec(ctx, `
		INSERT INTO upstream_inbox (tenant_id, event_id, type, stream)
		SELECT $1, i, t, s FROM unnest($2::text[], $3::text[], $4::text[]) AS r(i, t, s)
		ON CONFLICT DO NOTHING`, tenant, ids, types, streams)
	if err != nil {
		return fmt.Errorf("inbox record: %w", err)
	}
	return nil
}

// fold matches the read model's last_name_folded column.
func fold(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if unicode.IsLetter(r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func containsID(ids []uuid.UUID, id uuid.UUID) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}
