// Package scores keeps each profile's engagement score and churn risk
// (specification section 7; docs/scoring.md): the projector folds the
// customer-* streams into per-profile scoring inputs and scores them as of
// today under the tenant's model; Job rescores every profile as days pass
// and after a model change, and takes the daily snapshots; Alerter turns
// score changes into events (churn-risk crossings, engagement drops); the
// Reader explains a score and answers the analytics.
//
// The scores are a function of the event log, the tenant's current model
// and the day: a rebuild on the same day comes out identical to the live
// read model, and `crm projections rebuild scores` after a model change
// recomputes every score under the new model.
package scores

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/domain/scoring"
	"github.com/clubcrm/crm/domain/timeline"
	"github.com/clubcrm/crm/eventstore"
	"github.com/clubcrm/crm/projections"
)

// Name is the projector's name and checkpoint.
const Name = "scores"

// Tables the projector owns: the scores, and the marks of profiles whose
// scores changed since the Alerter looked at them.
const (
	Table    = "customer_scores"
	DueTable = "score_alert_due"
)

// Models answers a tenant's scoring model in force.
type Models interface {
	Current(ctx context.Context, tenant string) (scoring.Versioned, error)
}

// DefaultModels answers the built-in model for every tenant.
type DefaultModels struct{}

// Current implements Models.
func (DefaultModels) Current(context.Context, string) (scoring.Versioned, error) {
	return scoring.Versioned{Model: scoring.Default()}, nil
}

// Projector keeps customer_scores. Clock answers now (time.Now when nil);
// Models the tenants' models (the built-in one when nil).
type Projector struct {
	Models Models
	Clock  func() time.Time
}

var _ projections.IndexDeferrer = Projector{}

// Name implements projections.Projector.
func (Projector) Name() string { return Name }

// Tables implements projections.Projector.
func (Projector) Tables() []string { return []string{Table, DueTable} }

// DeferredIndexes implements projections.IndexDeferrer: Apply reads and
// writes rows by primary key only; the jobs' and filters' indexes are
// built once at the end of a rebuild.
func (Projector) DeferredIndexes() []string {
	return []string{"customer_scores_due", "customer_scores_engagement",
		"customer_scores_churn", "customer_scores_model"}
}

// Filter implements projections.Projector.
func (Projector) Filter() eventstore.Filter {
	return eventstore.Filter{Categories: []string{customer.Category}}
}

func (p Projector) models() Models {
	if p.Models == nil {
		return DefaultModels{}
	}
	return p.Models
}

func today(clock func() time.Time) scoring.Day {
	if clock == nil {
		return scoring.DayOf(time.Now())
	}
	return scoring.DayOf(clock())
}

type key struct {
	tenant string
	id     uuid.UUID
}

// row is a customer_scores row being updated.
type row struct {
	in                scoring.Inputs
	engagement, churn float64
	version           int
	existed, touched  bool
	gone              bool
}

// Apply implements projections.Projector.
func (p Projector) Apply(ctx context.Context, tx pgx.Tx, tables projections.Tables, events []eventstore.Event) error {
	var keys []key
	seen := map[key]bool{}
	note := func(k key) {
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	decoded := make([]any, len(events))
	for i, e := range events {
		k, ok := keyOf(e)
		if !ok {
			continue
		}
		switch e.Type {
		case customer.TypeChurnRiskRaised, customer.TypeChurnRiskCleared, customer.TypeEngagementDropped,
			customer.TypeIdentityLinked, customer.TypeDuplicateFlagged, customer.TypeDuplicateCleared, customer.TypeTagsChanged, customer.TypeEdited:
			continue // nothing the scores read
		}
		v, err := projections.Decode(e, customer.Decode)
		if err != nil {
			return fmt.Errorf("project %s version %d: %w", e.Stream, e.Version, err)
		}
		decoded[i] = v
		note(k)
		if m, ok := v.(*customer.Merged); ok {
			note(key{k.tenant, m.SourceID})
		}
	}
	if len(keys) == 0 {
		return nil
	}
	table, dueTable := tables.Ident(Table), tables.Ident(DueTable)
	rows, err := load(ctx, tx, table, keys)
	if err != nil {
		return err
	}
	for i, e := range events {
		v := decoded[i]
		if v == nil {
			continue
		}
		k, _ := keyOf(e)
		r := rows[k]
		switch d := v.(type) {
		case *customer.MergedInto:
			r.gone = true
			continue
		case *customer.Merged:
			if d.SourceID != k.id {
				src := rows[key{k.tenant, d.SourceID}]
				r.in.Absorb(src.in)
				src.in, src.gone = scoring.Inputs{}, true
			}
		}
		r.touched = true
		Fold(&r.in, e, v)
	}
	now := today(p.Clock)
	models := map[string]scoring.Versioned{}
	var up upsert
	var goneT []string
	var goneIDs []uuid.UUID
	for _, k := range keys {
		r := rows[k]
		if r.gone {
			goneT, goneIDs = append(goneT, k.tenant), append(goneIDs, k.id)
			continue
		}
		if !r.touched {
			continue
		}
		m, ok := models[k.tenant]
		if !ok {
			if m, err = p.models().Current(ctx, k.tenant); err != nil {
				return fmt.Errorf("score %s: %w", k.tenant, err)
			}
			models[k.tenant] = m
		}
		r.in.Prune(now)
		e, c := scoring.Values(m.Model, r.in, now)
		due := !r.existed || e != r.engagement || c != r.churn || int(m.Version) != r.version
		up.add(k, r.in.Encode(), e, c, int(m.Version), due)
	}
	b := &pgx.Batch{}
	if len(goneIDs) > 0 {
		for _, t := range []string{table, dueTable} {
			b.Queue(fmt.Sprintf(`DELETE FROM %s WHERE (tenant_id, customer_id) IN (SELECT * FROM unnest($1::text[], $2::uuid[]))`, t), goneT, goneIDs)
		}
	}
	if len(up.ids) > 0 {
		b.Queue(fmt.Sprintf(`INSERT INTO %s AS s (tenant_id, customer_id, engagement_score, churn_risk_score, model_version, computed_at, inputs, scored_on, revision)
SELECT t, c, e, r, v, now(), i, $7::date, 1 FROM unnest($1::text[], $2::uuid[], $3::float8[], $4::float8[], $5::int[], $6::bytea[]) AS x(t, c, e, r, v, i)
ON CONFLICT (tenant_id, customer_id) DO UPDATE SET engagement_score = excluded.engagement_score, churn_risk_score = excluded.churn_risk_score,
    model_version = excluded.model_version, computed_at = excluded.computed_at, inputs = excluded.inputs, scored_on = excluded.scored_on,
    revision = s.revision + 1`, table),
			up.tenants, up.ids, up.engagement, up.churn, up.versions, pgtype.FlatArray[[]byte](up.inputs), now.Time())
	}
	if t, ids := up.marked(); len(ids) > 0 {
		// After the scores rows: the Alerter locks the row of the scores
		// with the mark, so a mark set here is either seen with these
		// scores or set again after the Alerter has cleared it.
		b.Queue(fmt.Sprintf(`INSERT INTO %s (tenant_id, customer_id) SELECT * FROM unnest($1::text[], $2::uuid[]) ON CONFLICT DO NOTHING`, dueTable), t, ids)
	}
	if b.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("write scores read model: %w", err)
	}
	return nil
}

// upsert collects rows to write, column by column.
type upsert struct {
	tenants           []string
	ids               []uuid.UUID
	engagement, churn []float64
	versions          []int32
	inputs            [][]byte
	due               []bool
}

// marked answers the keys of the rows whose scores changed.
func (u *upsert) marked() ([]string, []uuid.UUID) {
	var tenants []string
	var ids []uuid.UUID
	for i, d := range u.due {
		if d {
			tenants, ids = append(tenants, u.tenants[i]), append(ids, u.ids[i])
		}
	}
	return tenants, ids
}

func (u *upsert) add(k key, inputs []byte, engagement, churn float64, version int, due bool) {
	u.tenants, u.ids = append(u.tenants, k.tenant), append(u.ids, k.id)
	u.engagement, u.churn = append(u.engagement, engagement), append(u.churn, churn)
	u.versions, u.inputs, u.due = append(u.versions, int32(version)), append(u.inputs, inputs), append(u.due, due)
}

// Fold adds what one decoded customer event tells the scores to in.
func Fold(in *scoring.Inputs, e eventstore.Event, v any) {
	switch d := v.(type) {
	case *customer.NoteAdded:
		if d.Complaint {
			in.ComplaintNote(d.NoteID, scoring.DayOf(e.OccurredAt), true)
		}
		return
	case *customer.NoteEdited:
		if d.Complaint != nil {
			in.ComplaintNote(d.NoteID, scoring.DayOf(e.OccurredAt), *d.Complaint)
		}
		return
	case *customer.NoteDeleted:
		in.ComplaintNote(d.NoteID, 0, false)
		return
	case *customer.ActivityRecorded:
		day := scoring.DayOf(d.OccurredAt)
		in.Activity(day, manualChannel(d), false)
		if d.Complaint {
			in.Complaint(day)
		}
		return
	case *customer.Recorded:
		foldUpstream(in, e, d)
	}
}

func foldUpstream(in *scoring.Inputs, e eventstore.Event, r *customer.Recorded) {
	typ, _, at, ok := timeline.Classify(timeline.Event{ID: e.ID, Type: e.Type, Data: r, OccurredAt: e.OccurredAt})
	if !ok {
		return
	}
	day := scoring.DayOf(at)
	data, err := r.Parse()
	if err != nil {
		return // the timeline shows it as unreadable; it scores nothing
	}
	switch typ {
	case timeline.EmailOpened:
		in.Opened(day)
	case timeline.EmailClicked:
		in.Clicked(day)
	case timeline.MessageSent:
		in.Sent(day)
	case timeline.PaymentFailed:
		in.PaymentFailed(day)
	case timeline.PaymentReceived:
		if p, ok := data.(*customer.Payment); ok && p.AmountCents != nil && *p.AmountCents > 0 {
			in.Paid(day, *p.AmountCents)
		}
	}
	switch d := data.(type) {
	case *customer.Member:
		in.SetTier(day, strings.TrimSpace(d.MembershipTier))
		if s := strings.TrimSpace(d.MembershipStatus); s != "" {
			in.MembershipStatus = s
		}
	case *customer.TierChange:
		in.SetTier(day, strings.TrimSpace(d.ToTier))
	}
	a := timeline.Activity{Type: typ}
	if timeline.Counts(a) && !administrative(typ) {
		in.Activity(day, upstreamChannel(typ), timeline.IsBooking(a))
	}
}

// administrative reports activities that count on the timeline but are not
// the person engaging, so frequency and activity decline leave them out: a
// declined debit order, a change of membership details, tier or contact
// preferences.
func administrative(t timeline.Type) bool {
	switch t {
	case timeline.PaymentFailed, timeline.MemberUpdated, timeline.TierChanged, timeline.ContactPreferenceUpdated:
		return true
	}
	return false
}

// upstreamChannel answers the channel an upstream activity engaged
// through, for breadth: none for what is no channel of engagement (a
// payment, a change of details).
func upstreamChannel(t timeline.Type) uint16 {
	switch t {
	case timeline.TeeTimeBooked, timeline.TeeTimeCompleted, timeline.CompetitionEntered, timeline.HandicapUpdated:
		return scoring.ChannelGolf
	case timeline.EmailOpened, timeline.EmailClicked:
		return scoring.ChannelEmail
	}
	return 0
}

func manualChannel(a *customer.ActivityRecorded) uint16 {
	switch a.Channel {
	case "":
		switch a.Kind {
		case customer.KindVisit, customer.KindMeeting:
			return scoring.ChannelInPerson
		case customer.KindCall:
			return scoring.ChannelPhone
		}
		return scoring.ChannelOther
	case "EMAIL":
		return scoring.ChannelEmail
	}
	return scoring.ChannelBit(a.Channel)
}

func keyOf(e eventstore.Event) (key, bool) {
	id, ok := customer.StreamID(e.Stream)
	if !ok {
		return key{}, false
	}
	return key{tenant: e.Metadata.TenantID, id: id}, true
}

func load(ctx context.Context, tx pgx.Tx, table string, keys []key) (map[key]*row, error) {
	tenants, ids := make([]string, len(keys)), make([]uuid.UUID, len(keys))
	out := make(map[key]*row, len(keys))
	for i, k := range keys {
		tenants[i], ids[i] = k.tenant, k.id
		out[k] = &row{}
	}
	rows, err := tx.Query(ctx, fmt.Sprintf(`SELECT tenant_id, customer_id, inputs, engagement_score, churn_risk_score, model_version FROM %s
		WHERE (tenant_id, customer_id) IN (SELECT * FROM unnest($1::text[], $2::uuid[]))`, table), tenants, ids)
	if err != nil {
		return nil, fmt.Errorf("read scores: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k key
		var raw []byte
		var e, c float64
		var v int
		if err := rows.Scan(&k.tenant, &k.id, &raw, &e, &c, &v); err != nil {
			return nil, fmt.Errorf("read scores: %w", err)
		}
		in, err := scoring.Decode(raw)
		if err != nil {
			return nil, fmt.Errorf("scores of %s: %w", k.id, err)
		}
		r := out[k]
		r.in, r.engagement, r.churn, r.version, r.existed = in, e, c, v, true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read scores: %w", err)
	}
	return out, nil
}
