package customers

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/segmentio/encoding/json"

	"github.com/clubcrm/crm/domain/customer"
)

// columns lists the customers columns the projector writes, with their
// types, in the order of upsertRows.args; the state column follows them.
// A column whose type is marked sent-as-text travels as text and is cast
// row by row: jsonb documents, tag arrays (unnest cannot carry arrays of
// different lengths) and the handicap (its decimal form, as JSON wrote it).
var columns = []struct {
	name, typ string
	asText    bool
}{
	{"tenant_id", "text", false}, {"id", "uuid", false}, {"version", "bigint", false},
	{"auth_user_id", "text", false}, {"email", "text", false}, {"phone_number", "text", false},
	{"scl_member_id", "bigint", false}, {"teetime_player_id", "text", false}, {"messaging_contact_id", "text", false},
	{"external_ids", "jsonb", true}, {"aliases", "jsonb", true},
	{"first_name", "text", false}, {"last_name", "text", false}, {"display_name", "text", false},
	{"status", "text", false}, {"lifecycle_stage", "text", false}, {"tags", "text[]", true},
	{"handicap", "numeric", true}, {"home_club_id", "text", false},
	{"membership_tier", "text", false}, {"membership_status", "text", false},
	{"email_opt_in", "boolean", false}, {"sms_opt_in", "boolean", false}, {"push_opt_in", "boolean", false}, {"whatsapp_opt_in", "boolean", false},
	{"merged_into", "uuid", false}, {"created_at", "timestamptz", false}, {"updated_at", "timestamptz", false},
	{"fold", "smallint", false},
}

// upsertSQL writes a batch's rows into table (a quoted identifier) in one
// statement. The rows arrive column by column as binary arrays, which
// PostgreSQL reads without parsing; a JSON document of the rows
// (jsonb_to_recordset) cost it about 16 µs a row to parse, a third of the
// statement (docs/performance.md). The version guard keeps a row from
// going back in time should a batch ever be applied again over a newer
// row.
func upsertSQL(table string) string {
	names := make([]string, len(columns))
	params := make([]string, len(columns)+1)
	exprs := make([]string, len(columns))
	var sets []string
	for i, c := range columns {
		names[i], exprs[i] = c.name, "r."+c.name
		params[i] = fmt.Sprintf("$%d::%s[]", i+1, c.typ)
		if c.asText {
			params[i] = fmt.Sprintf("$%d::text[]", i+1)
			exprs[i] = "r." + c.name + "::" + c.typ
		}
		if c.name != "tenant_id" && c.name != "id" {
			sets = append(sets, c.name+" = excluded."+c.name)
		}
	}
	params[len(columns)] = fmt.Sprintf("$%d::bytea[]", len(columns)+1)
	list := strings.Join(names, ", ")
	sets = append(sets, "state = excluded.state")
	return fmt.Sprintf(`INSERT INTO %s AS t (%s, state)
SELECT %s, r.state FROM unnest(%s) AS r(%s, state)
ON CONFLICT (tenant_id, id) DO UPDATE SET %s
WHERE t.version < excluded.version`, table, list, strings.Join(exprs, ", "), strings.Join(params, ", "), list, strings.Join(sets, ", "))
}

// maxHandicap is the largest magnitude the handicap column (numeric(4,1))
// holds; a value past it is left out of the column (it stays in state)
// rather than failing every batch that touches the profile.
const maxHandicap = 999.9

// upsertRows gathers a batch's customers rows column by column, each the
// FromProfile of a folded profile, with the profile's state encoded. Every
// column is a FlatArray of a type pgx encodes directly (uuid.UUID through
// the codec postgres.Open registers), where slices of pointers went through
// reflection for every element.
type upsertRows struct {
	tenants                               pgtype.FlatArray[string]
	ids                                   pgtype.FlatArray[uuid.UUID]
	versions                              pgtype.FlatArray[int64]
	authUserIDs, emails, phones           pgtype.FlatArray[pgtype.Text]
	sclMemberIDs                          pgtype.FlatArray[pgtype.Int8]
	teeTimeIDs, messagingIDs              pgtype.FlatArray[pgtype.Text]
	externalIDs, aliases                  pgtype.FlatArray[string] // JSON
	firstNames, lastNames, displayNames   pgtype.FlatArray[pgtype.Text]
	statuses, stages                      pgtype.FlatArray[string]
	tags                                  pgtype.FlatArray[string] // array literals
	handicaps                             pgtype.FlatArray[pgtype.Text]
	homeClubs, tiers, membershipStatuses  pgtype.FlatArray[pgtype.Text]
	emailOptIn, smsOptIn, pushOptIn, waIn pgtype.FlatArray[bool]
	mergedInto                            pgtype.FlatArray[pgtype.UUID]
	createdAt, updatedAt                  pgtype.FlatArray[time.Time]
	folds                                 pgtype.FlatArray[int16]
	states                                pgtype.FlatArray[[]byte]
}

func (r *upsertRows) len() int { return len(r.ids) }

// add appends the row of p.
func (r *upsertRows) add(p *customer.Profile) error {
	state, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode state of customer %s: %w", p.ID, err)
	}
	ext, err := json.Marshal(p.ExternalIDs)
	if err != nil {
		return fmt.Errorf("encode external ids of customer %s: %w", p.ID, err)
	}
	c := FromProfile(p)
	als, err := json.Marshal(c.Aliases)
	if err != nil {
		return fmt.Errorf("encode aliases of customer %s: %w", p.ID, err)
	}
	var handicap pgtype.Text
	if c.Handicap != nil && math.Abs(*c.Handicap) <= maxHandicap+0.05 {
		handicap = pgtype.Text{String: strconv.FormatFloat(*c.Handicap, 'g', -1, 64), Valid: true}
	}
	var sclMemberID pgtype.Int8
	if c.SCLMemberID != nil {
		sclMemberID = pgtype.Int8{Int64: *c.SCLMemberID, Valid: true}
	}
	var mergedInto pgtype.UUID
	if c.MergedInto != nil {
		mergedInto = pgtype.UUID{Bytes: *c.MergedInto, Valid: true}
	}
	r.tenants = append(r.tenants, c.TenantID)
	r.ids = append(r.ids, c.ID)
	r.versions = append(r.versions, int64(c.Version))
	r.authUserIDs = append(r.authUserIDs, text(c.AuthUserID))
	r.emails = append(r.emails, text(c.Email))
	r.phones = append(r.phones, text(c.PhoneNumber))
	r.sclMemberIDs = append(r.sclMemberIDs, sclMemberID)
	r.teeTimeIDs = append(r.teeTimeIDs, text(c.TeeTimePlayerID))
	r.messagingIDs = append(r.messagingIDs, text(c.MessagingContactID))
	r.externalIDs = append(r.externalIDs, string(ext))
	r.aliases = append(r.aliases, string(als))
	r.firstNames = append(r.firstNames, text(c.FirstName))
	r.lastNames = append(r.lastNames, text(c.LastName))
	r.displayNames = append(r.displayNames, text(c.DisplayName))
	r.statuses = append(r.statuses, c.Status)
	r.stages = append(r.stages, c.LifecycleStage)
	r.tags = append(r.tags, arrayLiteral(c.Tags))
	r.handicaps = append(r.handicaps, handicap)
	r.homeClubs = append(r.homeClubs, text(c.HomeClubID))
	r.tiers = append(r.tiers, text(c.MembershipTier))
	r.membershipStatuses = append(r.membershipStatuses, text(c.MembershipStatus))
	r.emailOptIn = append(r.emailOptIn, c.EmailOptIn)
	r.smsOptIn = append(r.smsOptIn, c.SMSOptIn)
	r.pushOptIn = append(r.pushOptIn, c.PushOptIn)
	r.waIn = append(r.waIn, c.WhatsAppOptIn)
	r.mergedInto = append(r.mergedInto, mergedInto)
	r.createdAt = append(r.createdAt, c.CreatedAt)
	r.updatedAt = append(r.updatedAt, c.UpdatedAt)
	r.folds = append(r.folds, customer.FoldVersion)
	r.states = append(r.states, state)
	return nil
}

// args answers upsertSQL's arguments, in the order of columns.
func (r *upsertRows) args() []any {
	return []any{
		r.tenants, r.ids, r.versions,
		r.authUserIDs, r.emails, r.phones,
		r.sclMemberIDs, r.teeTimeIDs, r.messagingIDs,
		r.externalIDs, r.aliases,
		r.firstNames, r.lastNames, r.displayNames,
		r.statuses, r.stages, r.tags,
		r.handicaps, r.homeClubs,
		r.tiers, r.membershipStatuses,
		r.emailOptIn, r.smsOptIn, r.pushOptIn, r.waIn,
		r.mergedInto, r.createdAt, r.updatedAt,
		r.folds,
		r.states,
	}
}

// text answers s as a nullable text value.
func text(s *string) pgtype.Text {
	if s == nil {
		return pgtype.Text{}
	}
	return pgtype.Text{String: *s, Valid: true}
}

// arrayLiteral answers a text[] literal of ss, every element quoted.
func arrayLiteral(ss []string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, s := range ss {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		for _, r := range s {
			if r == '"' || r == '\\' {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		}
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}
