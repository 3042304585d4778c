package segments

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/segmentio/encoding/json"

	"github.com/clubcrm/crm/adapters/postgres"
	"github.com/clubcrm/crm/domain/segment"
)

// Reader answers the segment queries, each in a transaction bound to the
// tenant (row-level security).
type Reader struct {
	DB postgres.Beginner
	// Clock answers now for previews' withinLast windows; time.Now when nil.
	Clock func() time.Time
}

// View is a segment as GET /segments/{id} answers it: its definition and
// its membership's state.
type View struct {
	ID          uuid.UUID       `json:"id"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Type        string          `json:"type" enum:"STATIC,DYNAMIC,SMART"`
	Combinator  string          `json:"combinator" enum:"AND,OR"`
	Rules       []segment.Rule  `json:"rules"`
	Smart       *segment.Smart  `json:"smart,omitempty"`
	Version     int64           `json:"version" doc:"events in the segment's stream"`
	CreatedBy   string          `json:"createdBy"`
	CreatedAt   time.Time       `json:"createdAt"`
	UpdatedAt   time.Time       `json:"updatedAt"`
	Membership  MembershipState `json:"membership"`
}

// MembershipState is where a segment's membership stands.
type MembershipState struct {
	Members         int64      `json:"members"`
	Changes         int64      `json:"changes" doc:"membership changes so far: the sequence of the latest crm.segment.membership.changed"`
	LastRefreshedAt *time.Time `json:"lastRefreshedAt" doc:"the last full refresh"`
	LastRefreshMs   *int       `json:"lastRefreshMs"`
	SyncSnapshotID  *uuid.UUID `json:"syncSnapshotId" doc:"the Messaging snapshot diffs follow; null until synced"`
	SyncSequence    int64      `json:"syncSequence" doc:"the last sequence sent to Messaging"`
	SyncedAt        *time.Time `json:"syncedAt"`
}

const selectView = `s.id, s.name, s.description, s.type, s.rules, s.smart, s.version, s.created_by, s.created_at, s.updated_at,
	coalesce(st.members, 0), coalesce(st.changes, 0), st.refreshed_at, st.refreshed_ms, st.sync_snapshot_id, coalesce(st.sync_sequence, 0), st.synced_at`

const fromView = SegmentsTable + ` s LEFT JOIN ` + StateTable + ` st ON st.tenant_id = s.tenant_id AND st.segment_id = s.id`

func scanView(row pgx.Row) (View, error) {
	var (
		v     View
		rules []byte
		smart []byte
	)
	m := &v.Membership
	if err := row.Scan(&v.ID, &v.Name, &v.Description, &v.Type, &rules, &smart, &v.Version, &v.CreatedBy, &v.CreatedAt, &v.UpdatedAt,
		&m.Members, &m.Changes, &m.LastRefreshedAt, &m.LastRefreshMs, &m.SyncSnapshotID, &m.SyncSequence, &m.SyncedAt); err != nil {
		return View{}, err
	}
	var g segment.Rules
	if err := json.Unmarshal(rules, &g); err != nil {
		return View{}, fmt.Errorf("segment %s rules: %w", v.ID, err)
	}
	v.Combinator, v.Rules = g.Combinator, g.Rules
	if v.Rules == nil {
		v.Rules = []segment.Rule{}
	}
	if smart != nil {
		v.Smart = &segment.Smart{}
		if err := json.Unmarshal(smart, v.Smart); err != nil {
			return View{}, fmt.Errorf("segment %s smart: %w", v.ID, err)
		}
	}
	v.CreatedAt, v.UpdatedAt = v.CreatedAt.UTC(), v.UpdatedAt.UTC()
	return v, nil
}

// Get answers segment id; a deleted one, or none, is segment.ErrNotFound.
func (r Reader) Get(ctx context.Context, tenant string, id uuid.UUID) (View, error) {
	var v View
	err := postgres.InTenant(ctx, r.DB, tenant, func(tx pgx.Tx) error {
		var err error
		v, err = scanView(tx.QueryRow(ctx, `SELECT `+selectView+` FROM `+fromView+`
WHERE s.tenant_id = $1 AND s.id = $2 AND s.deleted_at IS NULL`, tenant, id))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return View{}, fmt.Errorf("segment %s: %w", id, segment.ErrNotFound)
	}
	if err != nil {
		return View{}, fmt.Errorf("get segment %s: %w", id, err)
	}
	return v, nil
}

// ListCursor is where a page of segments ends: newest first.
type ListCursor struct {
	CreatedAt time.Time `json:"c"`
	ID        uuid.UUID `json:"i"`
}

// List answers a page of the tenant's segments, newest first, of type typ
// when it is not empty, and the cursor of the next page (nil on the last).
func (r Reader) List(ctx context.Context, tenant, typ string, limit int, after *ListCursor) ([]View, *ListCursor, error) {
	var out []View
	err := postgres.InTenant(ctx, r.DB, tenant, func(tx pgx.Tx) error {
		var at *time.Time
		var aid *uuid.UUID
		if after != nil {
			at, aid = &after.CreatedAt, &after.ID
		}
		rows, err := tx.Query(ctx, `SELECT `+selectView+` FROM `+fromView+`
WHERE s.tenant_id = $1 AND s.deleted_at IS NULL AND ($2 = '' OR s.type = $2)
  AND ($3::timestamptz IS NULL OR (s.created_at, s.id) < ($3, $4::uuid))
ORDER BY s.created_at DESC, s.id DESC LIMIT $5`, tenant, typ, at, aid, limit+1)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (View, error) { return scanView(row) })
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list segments: %w", err)
	}
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		return out, &ListCursor{CreatedAt: last.CreatedAt, ID: last.ID}, nil
	}
	return out, nil, nil
}

// Member is a segment member with a summary of the profile.
type Member struct {
	CustomerID         uuid.UUID  `json:"customerId"`
	Since              *time.Time `json:"since,omitempty" doc:"when the profile entered the segment (absent in a preview)"`
	DisplayName        *string    `json:"displayName"`
	Email              *string    `json:"email"`
	PhoneNumber        *string    `json:"phoneNumber"`
	Status             string     `json:"status"`
	LifecycleStage     string     `json:"lifecycleStage"`
	MembershipTier     *string    `json:"membershipTier"`
	MessagingContactID *string    `json:"messagingContactId"`
	EngagementScore    *float64   `json:"engagementScore"`
	ChurnRiskScore     *float64   `json:"churnRiskScore"`
}

const selectMember = `c.id, c.display_name, c.email, c.phone_number, c.status, c.lifecycle_stage, c.membership_tier,
	c.messaging_contact_id, sc.engagement_score, sc.churn_risk_score`

const joinMember = ` LEFT JOIN customer_scores sc ON sc.tenant_id = c.tenant_id AND sc.customer_id = c.id`

func scanMember(row pgx.Row, since *time.Time) (Member, error) {
	var m Member
	dest := []any{&m.CustomerID, &m.DisplayName, &m.Email, &m.PhoneNumber, &m.Status, &m.LifecycleStage, &m.MembershipTier,
		&m.MessagingContactID, &m.EngagementScore, &m.ChurnRiskScore}
	if since != nil {
		dest = append(dest, since)
	}
	if err := row.Scan(dest...); err != nil {
		return Member{}, err
	}
	return m, nil
}

// Members answers a page of segment id's members in the order of their
// ids, and the cursor (the last id) of the next page.
func (r Reader) Members(ctx context.Context, tenant string, id uuid.UUID, limit int, after *uuid.UUID) ([]Member, *uuid.UUID, error) {
	var out []Member
	err := postgres.InTenant(ctx, r.DB, tenant, func(tx pgx.Tx) error {
		var live bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+SegmentsTable+` WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL)`,
			tenant, id).Scan(&live); err != nil {
			return err
		}
		if !live {
			return fmt.Errorf("segment %s: %w", id, segment.ErrNotFound)
		}
		rows, err := tx.Query(ctx, `SELECT `+selectMember+`, sm.since FROM `+MembersTable+` sm
JOIN customers c ON c.tenant_id = sm.tenant_id AND c.id = sm.customer_id`+joinMember+`
WHERE sm.tenant_id = $1 AND sm.segment_id = $2 AND ($3::uuid IS NULL OR sm.customer_id > $3)
ORDER BY sm.customer_id LIMIT $4`, tenant, id, after, limit+1)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Member, error) {
			var since time.Time
			m, err := scanMember(row, &since)
			since = since.UTC()
			m.Since = &since
			return m, err
		})
		return err
	})
	if err != nil {
		if IsNotFound(err) {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("segment %s members: %w", id, err)
	}
	if len(out) > limit {
		out = out[:limit]
		next := out[limit-1].CustomerID
		return out, &next, nil
	}
	return out, nil, nil
}

// Preview is what a definition would select now, without saving anything.
type Preview struct {
	Total      int64    `json:"total"`
	Sample     []Member `json:"sample" doc:"some of the members, in the order of their ids"`
	DurationMs int64    `json:"durationMs"`
}

// Preview counts the profiles rule-based definition d selects now and
// answers up to sample of them. d must have been checked: node is what
// d.Check answered.
func (r Reader) Preview(ctx context.Context, tenant string, node segment.Node, sample int) (Preview, error) {
	now := time.Now().UTC()
	if r.Clock != nil {
		now = r.Clock().UTC()
	}
	var out Preview
	start := time.Now()
	err := postgres.InTenant(ctx, r.DB, tenant, func(tx pgx.Tx) error {
		p := &params{}
		t := p.add(tenant) + "::text"
		pred, n, err := compile(node, p, now)
		if err != nil {
			return err
		}
		members := selectMembers(pred, n, t, "")
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM (`+members+`) x`, p.args...).Scan(&out.Total); err != nil {
			return fmt.Errorf("count: %w", err)
		}
		args := append(p.args, sample)
		rows, err := tx.Query(ctx, `SELECT `+selectMember+` FROM customers c`+joinMember+`
WHERE c.tenant_id = `+t+` AND c.id IN (`+members+`) ORDER BY c.id LIMIT $`+fmt.Sprint(len(args)), args...)
		if err != nil {
			return fmt.Errorf("sample: %w", err)
		}
		out.Sample, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Member, error) { return scanMember(row, nil) })
		return err
	})
	if err != nil {
		return Preview{}, fmt.Errorf("preview segment: %w", err)
	}
	if out.Sample == nil {
		out.Sample = []Member{}
	}
	out.DurationMs = time.Since(start).Milliseconds()
	return out, nil
}

// FromAggregate answers the view of a segment as a command left it: its
// definition, with the membership state zero until the read models have
// it (GET with X-CRM-Wait-For reads it).
func FromAggregate(s *segment.Segment) View {
	d := s.Definition
	v := View{ID: s.ID, Name: d.Name, Description: d.Description, Type: string(d.Type), Combinator: d.Combinator, Rules: d.Rules,
		Smart: d.Smart, Version: int64(s.Version), CreatedBy: s.CreatedBy, CreatedAt: s.CreatedAt.UTC(), UpdatedAt: s.UpdatedAt.UTC()}
	if v.Rules == nil {
		v.Rules = []segment.Rule{}
	}
	return v
}
