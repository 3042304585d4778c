package customers

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/clubcrm/crm/adapters/postgres"
	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/domain/identity"
)

// ErrNotFound is answered for a profile or pair the tenant does not have.
var ErrNotFound = errors.New("not found")

// Paging limits of Reader's lists.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// maxMergeHops bounds how far Current follows merges; a longer chain (or a
// cycle, which merges should never make) answers the last profile reached.
const maxMergeHops = 16

// Reader answers queries of the read model. Each method reads through
// postgres.ReadInTenant, so row-level security holds for all of them.
type Reader struct {
	DB postgres.Beginner
}

// Cursor is a position in a list: the keyset of the last item a page held.
type Cursor struct {
	CreatedAt time.Time `json:"c"`
	ID        uuid.UUID `json:"i"`
}

// Page asks for up to Limit items after a cursor (from the start when nil).
type Page struct {
	Limit int
	After *Cursor
}

func (p Page) limit() int {
	switch {
	case p.Limit <= 0:
		return DefaultLimit
	case p.Limit > MaxLimit:
		return MaxLimit
	}
	return p.Limit
}

// Filter narrows List. Empty fields match everything, except Status: with
// no status asked for, merged-away profiles are left out, since they are
// closed and answer through their survivor.
type Filter struct {
	// Q searches names, email and phone: every word must start a word of
	// the profile ("jan do" finds Jane Doe); a phone number, whole or the
	// start of one, in national or international form, finds its holder.
	Q              string
	Status         string
	LifecycleStage string
	Tag            string
	MembershipTier string
	HomeClubID     string
	// Region reads national phone numbers in Q; the default is ZA.
	Region string
}

// selectCustomer lists the columns scanCustomer reads, of the table as c.
const selectCustomer = `c.id, c.tenant_id, c.version, c.auth_user_id, c.email, c.phone_number, c.scl_member_id,
	c.teetime_player_id, c.messaging_contact_id, c.external_ids, c.aliases, c.first_name, c.last_name, c.display_name,
	c.status, c.lifecycle_stage, c.tags, c.handicap::float8, c.home_club_id, c.membership_tier, c.membership_status,
	c.email_opt_in, c.sms_opt_in, c.push_opt_in, c.whatsapp_opt_in, c.merged_into, c.created_at, c.updated_at,
	` + computedColumns

// fromCustomers is the customers table as c with the metrics read model
// (readmodels/metrics) joined in as m, and the tenant's main currency as
// cur: the computed fields come from tables of their own projectors, so
// rebuilding one read model never wipes another's columns. A profile the
// metrics projector has not reached yet reads null and 0.
const fromCustomers = `customers c` + JoinMetrics + JoinCurrency + JoinScores

// The joins of fromCustomers, for queries (segments) that need only some
// of the computed fields: m, cur (which needs m's columns to mean
// anything) and s.
const (
	JoinMetrics = `
	LEFT JOIN customer_metrics m ON m.tenant_id = c.tenant_id AND m.customer_id = c.id`
	JoinCurrency = `
	LEFT JOIN LATERAL (
		SELECT tc.currency FROM tenant_currencies tc WHERE tc.tenant_id = c.tenant_id AND tc.currency <> 'XXX'
		ORDER BY tc.payments DESC, tc.cents DESC, tc.currency LIMIT 1
	) cur ON true`
	JoinScores = `
	LEFT JOIN customer_scores s ON s.tenant_id = c.tenant_id AND s.customer_id = c.id`
)

// LifetimeValue is the expression of lifetimeValue over fromCustomers.
const LifetimeValue = `CASE WHEN m.customer_id IS NOT NULL THEN coalesce((m.lifetime_cents ->> cur.currency)::bigint, 0) END`

// LifetimeValueCurrency is the expression of lifetimeValueCurrency.
const LifetimeValueCurrency = `CASE WHEN m.customer_id IS NOT NULL THEN cur.currency END`

// computedColumns are the computed fields, read from fromCustomers.
const computedColumns = `m.last_activity_at, coalesce(m.activity_count_30d, 0), coalesce(m.booking_count_30d, 0),
	` + LifetimeValue + `, ` + LifetimeValueCurrency + `,
	s.engagement_score, s.churn_risk_score`

func scanCustomer(row pgx.Row) (Customer, error) {
	var c Customer
	var ext customer.ExternalIDs
	err := row.Scan(&c.ID, &c.TenantID, &c.Version, &c.AuthUserID, &c.Email, &c.PhoneNumber, &c.SCLMemberID,
		&c.TeeTimePlayerID, &c.MessagingContactID, &ext, &c.Aliases, &c.FirstName, &c.LastName, &c.DisplayName,
		&c.Status, &c.LifecycleStage, &c.Tags, &c.Handicap, &c.HomeClubID, &c.MembershipTier, &c.MembershipStatus,
		&c.EmailOptIn, &c.SMSOptIn, &c.PushOptIn, &c.WhatsAppOptIn, &c.MergedInto, &c.CreatedAt, &c.UpdatedAt,
		&c.LastActivityAt, &c.ActivityCount30d, &c.BookingCount30d, &c.LifetimeValue, &c.LifetimeValueCurrency,
		&c.EngagementScore, &c.ChurnRiskScore)
	if err != nil {
		return Customer{}, err
	}
	if c.LastActivityAt != nil {
		t := c.LastActivityAt.UTC()
		c.LastActivityAt = &t
	}
	c.ExternalIDs = externalIDs(ext)
	if c.Tags == nil {
		c.Tags = []string{}
	}
	if c.Aliases == nil {
		c.Aliases = []Alias{}
	}
	c.CreatedAt, c.UpdatedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC()
	return c, nil
}

// Get answers the profile id as the read model holds it, merged or not.
func (r Reader) Get(ctx context.Context, tenant string, id uuid.UUID) (Customer, error) {
	var c Customer
	err := postgres.ReadInTenant(ctx, r.DB, tenant, func(tx postgres.Queryer) error {
		var err error
		c, err = scanCustomer(tx.QueryRow(ctx, `SELECT `+selectCustomer+` FROM `+fromCustomers+` WHERE c.tenant_id = $1 AND c.id = $2`, tenant, id))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return Customer{}, fmt.Errorf("customer %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Customer{}, fmt.Errorf("get customer %s: %w", id, err)
	}
	return c, nil
}

// Current answers the profile id stands for now: the profile itself, or
// when it was merged away, the survivor of its merges.
func (r Reader) Current(ctx context.Context, tenant string, id uuid.UUID) (Customer, error) {
	var c Customer
	err := postgres.ReadInTenant(ctx, r.DB, tenant, func(tx postgres.Queryer) error {
		var err error
		c, err = current(ctx, tx, tenant, id)
		return err
	})
	if err != nil {
		return Customer{}, err
	}
	return c, nil
}

func current(ctx context.Context, tx postgres.Queryer, tenant string, id uuid.UUID) (Customer, error) {
	c, err := scanCustomer(tx.QueryRow(ctx, `SELECT `+selectCustomer+`
		FROM `+fromCustomers+` JOIN (`+SurvivorQuery+`) AS last ON c.id = last.id
		WHERE c.tenant_id = $1`, tenant, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Customer{}, fmt.Errorf("customer %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Customer{}, fmt.Errorf("get customer %s: %w", id, err)
	}
	return c, nil
}

// List answers a page of profiles, newest first, and the cursor of the next
// page (nil on the last). Paging by keyset keeps pages stable while
// profiles are added: new ones sort before any cursor already handed out.
func (r Reader) List(ctx context.Context, tenant string, f Filter, page Page) ([]Customer, *Cursor, error) {
	limit := page.limit()
	var where []string
	args := []any{tenant}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	where = append(where, "c.tenant_id = $1")
	if q := searchQuery(f.Q, f.Region); q != "" {
		where = append(where, "c.search @@ to_tsquery('simple', "+arg(q)+")")
	} else if strings.TrimSpace(f.Q) != "" {
		return []Customer{}, nil, nil // nothing searchable in q: it matches nobody
	}
	if f.Status != "" {
		where = append(where, "c.status = "+arg(f.Status))
	} else {
		where = append(where, "c.status <> 'MERGED'")
	}
	if f.LifecycleStage != "" {
		where = append(where, "c.lifecycle_stage = "+arg(f.LifecycleStage))
	}
	if f.Tag != "" {
		where = append(where, "c.tags @> ARRAY["+arg(f.Tag)+"]::text[]")
	}
	if f.MembershipTier != "" {
		where = append(where, "c.membership_tier = "+arg(f.MembershipTier))
	}
	if f.HomeClubID != "" {
		where = append(where, "c.home_club_id = "+arg(f.HomeClubID))
	}
	if page.After != nil {
		where = append(where, "(c.created_at, c.id) < ("+arg(page.After.CreatedAt)+"::timestamptz, "+arg(page.After.ID)+"::uuid)")
	}
	sql := `SELECT ` + selectCustomer + ` FROM ` + fromCustomers + ` WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY c.created_at DESC, c.id DESC LIMIT ` + arg(limit+1)
	var out []Customer
	err := postgres.ReadInTenant(ctx, r.DB, tenant, func(tx postgres.Queryer) error {
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Customer, error) { return scanCustomer(row) })
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list customers: %w", err)
	}
	if len(out) <= limit {
		return out, nil, nil
	}
	out = out[:limit]
	last := out[limit-1]
	return out, &Cursor{CreatedAt: last.CreatedAt, ID: last.ID}, nil
}

// Resolution is the profile an identity belongs to and how it was found.
type Resolution struct {
	Customer   Customer
	MatchedBy  string
	Confidence int
}

// Resolve answers the profile the identity index links keys to, by the
// matching rules of identity.Resolve (the strongest key that names one
// profile decides; a phone shared by several profiles decides nothing), and
// the survivor if that profile was merged away. It answers ErrNotFound when
// the keys name nobody, or a profile not projected yet.
func (r Reader) Resolve(ctx context.Context, tenant string, keys []identity.Key, s identity.Settings) (Resolution, error) {
	if len(keys) == 0 {
		return Resolution{}, fmt.Errorf("resolve: no keys: %w", ErrNotFound)
	}
	kinds, values := make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		kinds[i], values[i] = string(k.Kind), k.Value
	}
	var res Resolution
	err := postgres.ReadInTenant(ctx, r.DB, tenant, func(tx postgres.Queryer) error {
		// The holders of the keys, with every key each holder has (the
		// rules look at them to spot a different person sharing a key),
		// in the order the index gave them out, as the resolver expects.
		rows, err := tx.Query(ctx, `
			WITH asked AS (SELECT * FROM unnest($2::text[], $3::text[]) AS q(kind, value)),
			holders AS (
				SELECT DISTINCT k.customer_id FROM identity_keys k JOIN asked q ON q.kind = k.kind AND q.value = k.value
				WHERE k.tenant_id = $1
			)
			SELECT k.customer_id, k.kind, k.value, EXISTS (SELECT 1 FROM asked q WHERE q.kind = k.kind AND q.value = k.value)
			FROM identity_keys k JOIN holders h ON h.customer_id = k.customer_id
			WHERE k.tenant_id = $1
			ORDER BY k.created_at, k.customer_id`, tenant, kinds, values)
		if err != nil {
			return fmt.Errorf("look up identity keys: %w", err)
		}
		c := identity.Candidates{Profiles: map[uuid.UUID]identity.Profile{}}
		for rows.Next() {
			var id uuid.UUID
			var kind, value string
			var asked bool
			if err := rows.Scan(&id, &kind, &value, &asked); err != nil {
				rows.Close()
				return fmt.Errorf("look up identity keys: %w", err)
			}
			k := identity.Key{Kind: identity.Kind(kind), Value: value}
			if asked {
				c.Holders = append(c.Holders, identity.Holder{Key: k, CustomerID: id})
			}
			p := c.Profiles[id]
			p.CustomerID, p.Keys = id, append(p.Keys, k)
			c.Profiles[id] = p
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("look up identity keys: %w", err)
		}
		d := identity.Resolve(keys, c, identity.Name{}, s)
		if d.New() {
			return fmt.Errorf("resolve: nobody holds the keys: %w", ErrNotFound)
		}
		found, err := current(ctx, tx, tenant, d.Customer)
		if err != nil {
			return err
		}
		res = Resolution{Customer: found, MatchedBy: d.MatchedBy, Confidence: d.Confidence}
		return nil
	})
	if err != nil {
		return Resolution{}, err
	}
	return res, nil
}

// DuplicateKey is the identifier two profiles share, or for a fuzzy pair
// the email domain they share (kind email, value the domain).
type DuplicateKey struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

// Summary is a glimpse of a profile, enough to tell a pair apart.
type Summary struct {
	Name   *string `json:"name" doc:"display name, else first and last name, else email, else phone"`
	Email  *string `json:"email"`
	Status string  `json:"status" enum:"ACTIVE,ARCHIVED,MERGED"`
}

// Duplicate is a pair of profiles that may be one person, for staff review.
type Duplicate struct {
	ID         uuid.UUID    `json:"id"`
	CustomerA  uuid.UUID    `json:"customerA" doc:"the profile whose event raised the pair"`
	CustomerB  uuid.UUID    `json:"customerB" doc:"the profile it may duplicate"`
	SummaryA   *Summary     `json:"summaryA" doc:"null when the profile is not in the read model yet"`
	SummaryB   *Summary     `json:"summaryB" doc:"null when the profile is not in the read model yet"`
	Key        DuplicateKey `json:"key"`
	Reason     string       `json:"reason"`
	Confidence int          `json:"confidence" doc:"0-100"`
	CausedBy   string       `json:"causedBy" doc:"the upstream event or command that raised the pair"`
	Status     string       `json:"status" enum:"OPEN,MERGED,DISMISSED"`
	CreatedAt  time.Time    `json:"createdAt"`
	ResolvedAt *time.Time   `json:"resolvedAt"`
	ResolvedBy *string      `json:"resolvedBy"`
}

const selectDuplicate = `
	SELECT d.id, d.customer_a, d.customer_b, d.key_kind, d.key_value, d.reason, d.confidence, d.caused_by, d.status,
		d.created_at, d.resolved_at, d.resolved_by,
		a.status, a.display_name, a.first_name, a.last_name, a.email, a.phone_number,
		b.status, b.display_name, b.first_name, b.last_name, b.email, b.phone_number
	FROM duplicate_candidates d
	LEFT JOIN customers a ON a.tenant_id = d.tenant_id AND a.id = d.customer_a
	LEFT JOIN customers b ON b.tenant_id = d.tenant_id AND b.id = d.customer_b`

func scanDuplicate(row pgx.Row) (Duplicate, error) {
	var d Duplicate
	var a, b summaryCols
	err := row.Scan(&d.ID, &d.CustomerA, &d.CustomerB, &d.Key.Kind, &d.Key.Value, &d.Reason, &d.Confidence, &d.CausedBy, &d.Status,
		&d.CreatedAt, &d.ResolvedAt, &d.ResolvedBy,
		&a.status, &a.display, &a.first, &a.last, &a.email, &a.phone,
		&b.status, &b.display, &b.first, &b.last, &b.email, &b.phone)
	if err != nil {
		return Duplicate{}, err
	}
	d.SummaryA, d.SummaryB = a.summary(), b.summary()
	d.CreatedAt = d.CreatedAt.UTC()
	if d.ResolvedAt != nil {
		t := d.ResolvedAt.UTC()
		d.ResolvedAt = &t
	}
	return d, nil
}

type summaryCols struct {
	status                             *string
	display, first, last, email, phone *string
}

func (s summaryCols) summary() *Summary {
	if s.status == nil {
		return nil // no row joined
	}
	val := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	p := customer.Profile{DisplayName: val(s.display), FirstName: val(s.first), LastName: val(s.last), Email: val(s.email), PhoneNumber: val(s.phone)}
	return &Summary{Name: optional(p.Name()), Email: s.email, Status: *s.status}
}

// Duplicates answers a page of candidate pairs in status ("" for any),
// newest first, and the cursor of the next page (nil on the last).
func (r Reader) Duplicates(ctx context.Context, tenant, status string, page Page) ([]Duplicate, *Cursor, error) {
	limit := page.limit()
	args := []any{tenant, status, limit + 1}
	sql := selectDuplicate + ` WHERE d.tenant_id = $1 AND ($2 = '' OR d.status = $2)`
	if page.After != nil {
		args = append(args, page.After.CreatedAt, page.After.ID)
		sql += ` AND (d.created_at < $4 OR (d.created_at = $4 AND d.id > $5))`
	}
	sql += ` ORDER BY d.created_at DESC, d.id LIMIT $3`
	var out []Duplicate
	err := postgres.ReadInTenant(ctx, r.DB, tenant, func(tx postgres.Queryer) error {
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Duplicate, error) { return scanDuplicate(row) })
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list duplicate candidates: %w", err)
	}
	if len(out) <= limit {
		return out, nil, nil
	}
	out = out[:limit]
	last := out[limit-1]
	return out, &Cursor{CreatedAt: last.CreatedAt, ID: last.ID}, nil
}

// DuplicateByID answers one candidate pair.
func (r Reader) DuplicateByID(ctx context.Context, tenant string, id uuid.UUID) (Duplicate, error) {
	var d Duplicate
	err := postgres.ReadInTenant(ctx, r.DB, tenant, func(tx postgres.Queryer) error {
		var err error
		d, err = scanDuplicate(tx.QueryRow(ctx, selectDuplicate+` WHERE d.tenant_id = $1 AND d.id = $2`, tenant, id))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return Duplicate{}, fmt.Errorf("duplicate candidate %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Duplicate{}, fmt.Errorf("get duplicate candidate %s: %w", id, err)
	}
	return d, nil
}
