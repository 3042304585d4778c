package segments_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/domain/segment"
	"github.com/clubcrm/crm/projections"
	"github.com/clubcrm/crm/readmodels/activities/activitiestest"
	"github.com/clubcrm/crm/readmodels/customers"
	"github.com/clubcrm/crm/readmodels/customers/customerstest"
	"github.com/clubcrm/crm/readmodels/scores"
	"github.com/clubcrm/crm/readmodels/segments"
)

// The compiler is tested end to end through Reader.Preview, its public
// entry: a population built the way the command side builds it (upstream
// events into the real event store, the customers, timeline, metrics and
// scores projectors folding them into the read models), rule trees written
// as staff write them (JSON), and the expected members derived in Go from
// the fixture's own description of each profile.

// compileNow is the fixture's "now": the metrics' and the scores' today and
// the previews' clock, so windows and withinLast are deterministic.
var compileNow = time.Date(2026, 3, 31, 15, 0, 0, 0, time.UTC)

const (
	compileTenant = "club-a"
	compileOther  = "club-b"
)

func fxAgo(days int) time.Time                   { return compileNow.Add(-time.Duration(days) * 24 * time.Hour) }
func fxHoursAgo(h int) time.Time                 { return compileNow.Add(-time.Duration(h) * time.Hour) }
func fxF(v float64) *float64                     { return &v }
func fxB(v bool) *bool                           { return &v }
func fxWithin(t time.Time, d time.Duration) bool { return !t.Before(compileNow.Add(-d)) }

const fxDay = 24 * time.Hour

// upstreamActivity is what the timeline makes of the upstream types the
// fixture uses (docs/events.md): the activity type, its category, and
// whether it is the person's doing (counts towards lastActivityAt and the
// 30-day counts). Written out here rather than asked of domain/timeline, so
// the expectations do not lean on the code under test's neighbours.
var fxUpstream = map[string]struct {
	typ, cat string
	counts   bool
}{
	"member.created":            {"MEMBER_CREATED", "MEMBERSHIP", true},
	"player.created":            {"PLAYER_CREATED", "GOLF", true},
	"teetime.booked":            {"TEETIME_BOOKED", "BOOKING", true},
	"teetime.completed":         {"TEETIME_COMPLETED", "BOOKING", true},
	"email.opened":              {"EMAIL_OPENED", "ENGAGEMENT", true},
	"message.sent":              {"MESSAGE_SENT", "COMMUNICATION", false},
	"contactPreference.updated": {"CONTACT_PREFERENCE_UPDATED", "COMMUNICATION", true},
	"payment.received":          {"PAYMENT_RECEIVED", "FINANCIAL", true},
	"payment.failed":            {"PAYMENT_FAILED", "FINANCIAL", true},
}

// act is one upstream event of a profile, as its timeline activity.
type fxAct struct {
	typ, cat, channel string
	at                time.Time
	counts, booking   bool
	cents             int64
}

// prof is what the fixture means a profile to be. Everything but the two
// scores is set by the builder from the events it records; the scores are
// the scoring model's to compute, so they are read back from the read
// model once the scores projector has run (and stay nil for the profiles
// it has not seen yet: "missing until scored").
type fxProf struct {
	name, tenant string
	p            *customer.Profile
	id           uuid.UUID
	memberID     int64
	playerID     string
	contactID    string

	status, lifecycle string
	tier, mstatus     string // "" when missing
	email, phone      string // "" when missing
	handicap          *float64
	emailOptIn        bool
	smsOptIn          bool
	tags, aliases     []string
	acts              []fxAct
	scored            bool
	engagement, churn *float64
}

// last is lastActivityAt: the latest activity that is the person's doing.
func (p *fxProf) last() *time.Time {
	var out *time.Time
	for _, a := range p.acts {
		if a.counts && (out == nil || a.at.After(*out)) {
			at := a.at
			out = &at
		}
	}
	return out
}

// inMetricsWindow says whether an activity falls in the metrics' 30 days:
// on today (UTC) or one of the 29 days before it.
func fxInMetricsWindow(at time.Time) bool {
	y, m, d := compileNow.Date()
	today := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	y, m, d = at.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).After(today.Add(-30 * fxDay))
}

func (p *fxProf) bookings30d() int {
	n := 0
	for _, a := range p.acts {
		if a.booking && fxInMetricsWindow(a.at) {
			n++
		}
	}
	return n
}

func (p *fxProf) activities30d() int {
	n := 0
	for _, a := range p.acts {
		if a.counts && fxInMetricsWindow(a.at) {
			n++
		}
	}
	return n
}

func (p *fxProf) lifetime() int64 {
	var n int64
	for _, a := range p.acts {
		n += a.cents
	}
	return n
}

// count counts the activities of type typ, category cat and channel ch
// ("" for any) over the last w (all time when 0).
func (p *fxProf) count(typ, cat, ch string, w time.Duration) int {
	n := 0
	for _, a := range p.acts {
		if (typ == "" || a.typ == typ) && (cat == "" || a.cat == cat) && (ch == "" || a.channel == ch) && (w == 0 || fxWithin(a.at, w)) {
			n++
		}
	}
	return n
}

func (p *fxProf) hasTag(t string) bool { return slices.Contains(p.tags, t) }

// Number and time comparisons: a missing value satisfies none of them.
func numLt(v *float64, x float64) bool  { return v != nil && *v < x }
func numLte(v *float64, x float64) bool { return v != nil && *v <= x }
func numGt(v *float64, x float64) bool  { return v != nil && *v > x }
func numGte(v *float64, x float64) bool { return v != nil && *v >= x }
func numEq(v *float64, x float64) bool  { return v != nil && *v == x }

type compileFixture struct {
	t     *testing.T
	env   *customerstest.Env
	run   *activitiestest.Runner
	profs []*fxProf
	named map[string]*fxProf
	n     int
}

func (fx *compileFixture) cause() string {
	fx.n++
	return "fixture-" + strconv.Itoa(fx.n)
}

func (fx *compileFixture) add(name, tenant string, memberID int64) *fxProf {
	p := &fxProf{name: name, tenant: tenant, memberID: memberID, status: "ACTIVE", tags: []string{}, aliases: []string{}}
	if tenant != compileTenant {
		p.name = name + "@" + tenant
	}
	fx.profs = append(fx.profs, p)
	fx.named[p.name] = p
	return p
}

func (fx *compileFixture) ingest(p *fxProf, typ string, at time.Time, data map[string]any) {
	fx.t.Helper()
	b, err := json.Marshal(data)
	require.NoError(fx.t, err)
	p.p = fx.env.IngestAt(p.tenant, p.p, typ, string(b), at)
	p.id = p.p.ID
	u, ok := fxUpstream[typ]
	require.True(fx.t, ok, "the fixture's oracle knows no %s", typ)
	a := fxAct{typ: u.typ, cat: u.cat, at: at, counts: u.counts, booking: typ == "teetime.booked"}
	switch typ {
	case "email.opened":
		a.channel = "EMAIL"
	case "message.sent":
		a.channel = strings.ToUpper(data["channel"].(string))
	case "payment.received":
		a.cents = data["amountCents"].(int64)
	}
	p.acts = append(p.acts, a)
}

// linkEmail and linkPhone keep what identity linking does: the first
// email (phone) is the primary one, later ones are aliases; emails are
// stored lower case.
func (p *fxProf) linkEmail(e string) {
	e = strings.ToLower(e)
	switch {
	case e == "" || e == p.email || slices.Contains(p.aliases, e):
	case p.email == "":
		p.email = e
	default:
		p.aliases = append(p.aliases, e)
	}
}

func (p *fxProf) linkPhone(ph string) {
	switch {
	case ph == "" || ph == p.phone || slices.Contains(p.aliases, ph):
	case p.phone == "":
		p.phone = ph
	default:
		p.aliases = append(p.aliases, ph)
	}
}

// join is member.created from SCL.
func (fx *compileFixture) join(p *fxProf, at time.Time, tier, status, email, phone string) {
	fx.t.Helper()
	d := map[string]any{"memberId": p.memberID, "firstName": p.name, "lastName": "Fixture"}
	for k, v := range map[string]string{"membershipTier": tier, "membershipStatus": status, "email": email, "phoneNumber": phone} {
		if v != "" {
			d[k] = v
		}
	}
	fx.ingest(p, "member.created", at, d)
	p.tier, p.mstatus = tier, strings.ToUpper(status)
	p.lifecycle = map[string]string{"ACTIVE": "MEMBER", "SUSPENDED": "LAPSED", "CANCELLED": "CHURNED", "": "MEMBER"}[p.mstatus]
	p.linkEmail(email)
	p.linkPhone(phone)
}

// player is player.created from TeeTime; it opens a guest's profile.
func (fx *compileFixture) player(p *fxProf, at time.Time, email string, handicap *float64) {
	fx.t.Helper()
	if p.playerID == "" {
		p.playerID = "tt-" + p.name
	}
	d := map[string]any{"playerId": p.playerID, "firstName": p.name}
	if email != "" {
		d["email"] = email
	}
	if handicap != nil {
		d["handicap"] = *handicap
		p.handicap = fxF(*handicap)
	}
	if p.p == nil {
		p.lifecycle = "GUEST"
	}
	fx.ingest(p, "player.created", at, d)
	p.linkEmail(email)
}

// prefs is contactPreference.updated from Messaging.
func (fx *compileFixture) prefs(p *fxProf, at time.Time, email, phone string, emailOptIn, smsOptIn *bool) {
	fx.t.Helper()
	if p.contactID == "" {
		p.contactID = "mc-" + p.name
	}
	d := map[string]any{"contactId": p.contactID}
	if email != "" {
		d["email"] = email
	}
	if phone != "" {
		d["phoneNumber"] = phone
	}
	if emailOptIn != nil {
		d["emailOptIn"] = *emailOptIn
		p.emailOptIn = *emailOptIn
	}
	if smsOptIn != nil {
		d["smsOptIn"] = *smsOptIn
		p.smsOptIn = *smsOptIn
	}
	fx.ingest(p, "contactPreference.updated", at, d)
	p.linkEmail(email)
	p.linkPhone(phone)
}

func (fx *compileFixture) book(p *fxProf, ats ...time.Time) {
	fx.t.Helper()
	if p.playerID == "" {
		p.playerID = "tt-" + p.name
	}
	for _, at := range ats {
		fx.ingest(p, "teetime.booked", at, map[string]any{"playerId": p.playerID, "bookingId": fx.cause()})
	}
}

func (fx *compileFixture) played(p *fxProf, at time.Time) {
	fx.t.Helper()
	fx.ingest(p, "teetime.completed", at, map[string]any{"playerId": p.playerID, "bookingId": fx.cause()})
}

func (fx *compileFixture) opened(p *fxProf, ats ...time.Time) {
	fx.t.Helper()
	if p.contactID == "" {
		p.contactID = "mc-" + p.name
	}
	for _, at := range ats {
		fx.ingest(p, "email.opened", at, map[string]any{"contactId": p.contactID, "messageId": fx.cause()})
	}
}

// sent is message.sent: the club's doing, which opens a prospect's
// profile but is no activity of theirs.
func (fx *compileFixture) sent(p *fxProf, at time.Time, email, channel string) {
	fx.t.Helper()
	if p.contactID == "" {
		p.contactID = "mc-" + p.name
	}
	if p.p == nil {
		p.lifecycle = "PROSPECT"
	}
	d := map[string]any{"contactId": p.contactID, "messageId": fx.cause(), "channel": channel}
	if email != "" {
		d["email"] = email
	}
	fx.ingest(p, "message.sent", at, d)
	p.linkEmail(email)
}

func (fx *compileFixture) pay(p *fxProf, at time.Time, cents int64, currency string) {
	fx.t.Helper()
	fx.ingest(p, "payment.received", at, map[string]any{"memberId": p.memberID, "paymentId": fx.cause(), "amountCents": cents, "currency": currency})
}

func (fx *compileFixture) failed(p *fxProf, at time.Time) {
	fx.t.Helper()
	fx.ingest(p, "payment.failed", at, map[string]any{"memberId": p.memberID, "paymentId": fx.cause(), "amountCents": int64(90000), "reason": "card expired"})
}

// tag adds tags as staff do.
func (fx *compileFixture) tag(p *fxProf, tags ...string) {
	fx.t.Helper()
	evs, err := p.p.ChangeTags(tags, nil, "staff-1")
	require.NoError(fx.t, err)
	p.p = fx.env.Record(p.p, evs, "staff-1", fx.cause())
	for _, t := range tags {
		t, err := customer.NormalizeTag(t)
		require.NoError(fx.t, err)
		if !slices.Contains(p.tags, t) {
			p.tags = append(p.tags, t)
		}
	}
}

// archive archives the profile as staff do.
func (fx *compileFixture) archive(p *fxProf) {
	fx.t.Helper()
	st := customer.StatusArchived
	evs, err := p.p.Edit(customer.Edited{Status: &st, Actor: "staff-1"})
	require.NoError(fx.t, err)
	p.p = fx.env.Record(p.p, evs, "staff-1", fx.cause())
	p.status = "ARCHIVED"
}

// merge merges source into survivor as staff do: the survivor takes the
// source's keys (its email and phone become aliases), tags and timeline.
func (fx *compileFixture) merge(survivor, source *fxProf) {
	fx.t.Helper()
	survivor.p, source.p = fx.env.Merge(survivor.p, source.p, "staff-1")
	source.status = "MERGED"
	survivor.linkEmail(source.email)
	survivor.linkPhone(source.phone)
	for _, a := range source.aliases {
		survivor.linkEmail(a) // the fixture gives a merged source no aliases of its own
	}
	for _, t := range source.tags {
		if !slices.Contains(survivor.tags, t) {
			survivor.tags = append(survivor.tags, t)
		}
	}
	survivor.acts = append(survivor.acts, source.acts...)
	source.acts = nil
}

// buildCompileFixture builds the population: in phase one every projector
// (customers, timeline, notes, metrics and scores) folds the log; in phase
// two more profiles arrive that the scores projector has not reached yet,
// so they have no scores.
func buildCompileFixture(t *testing.T) *compileFixture {
	t.Helper()
	env := customerstest.New(t)
	clock := func() time.Time { return compileNow }
	run := activitiestest.New(env, clock)
	run.Projectors = append(run.Projectors, scores.Projector{Clock: clock})
	fx := &compileFixture{t: t, env: env, run: run, named: map[string]*fxProf{}}

	// A keen Gold member: everything set, busy lately, opens the club's
	// emails (highly engaged).
	anna := fx.add("anna", compileTenant, 101)
	fx.join(anna, fxAgo(400), "Gold", "ACTIVE", "anna@example.com", "+27821110001")
	fx.player(anna, fxAgo(399), "", fxF(8.2))
	fx.prefs(anna, fxAgo(398), "", "", fxB(true), fxB(true))
	fx.pay(anna, fxAgo(25), 250000, "ZAR")
	fx.book(anna, fxAgo(2), fxAgo(5), fxAgo(12), fxAgo(20), fxAgo(26))
	fx.played(anna, fxAgo(4))
	fx.sent(anna, fxAgo(10), "", "EMAIL")
	fx.sent(anna, fxAgo(4), "", "EMAIL")
	fx.opened(anna, fxAgo(3), fxAgo(9))
	fx.tag(anna, "VIP", "weekend")

	// Platinum, handicap just under 15, SMS explicitly off.
	ben := fx.add("ben", compileTenant, 102)
	fx.join(ben, fxAgo(300), "Platinum", "ACTIVE", "ben@example.com", "+27821110002")
	fx.player(ben, fxAgo(300), "", fxF(14.9))
	fx.prefs(ben, fxAgo(299), "", "", fxB(true), fxB(false))
	fx.pay(ben, fxAgo(15), 90000, "ZAR")
	fx.book(ben, fxAgo(1), fxAgo(20))
	fx.opened(ben, fxAgo(10), fxAgo(40))
	fx.tag(ben, "vip")

	// Handicap exactly 15, no tags.
	carla := fx.add("carla", compileTenant, 103)
	fx.join(carla, fxAgo(250), "Gold", "ACTIVE", "carla@example.com", "")
	fx.player(carla, fxAgo(250), "", fxF(15))
	fx.prefs(carla, fxAgo(249), "", "", fxB(true), nil)
	fx.book(carla, fxAgo(3), fxAgo(6))

	// Never registered with TeeTime's player records: no handicap.
	dan := fx.add("dan", compileTenant, 104)
	fx.join(dan, fxAgo(200), "Gold", "ACTIVE", "dan@example.com", "")
	fx.prefs(dan, fxAgo(199), "", "", fxB(true), nil)
	fx.book(dan, fxAgo(2), fxAgo(4))

	// Silver: the wrong tier for the example segment.
	eve := fx.add("eve", compileTenant, 105)
	fx.join(eve, fxAgo(150), "Silver", "ACTIVE", "eve@example.com", "")
	fx.player(eve, fxAgo(150), "", fxF(5))
	fx.prefs(eve, fxAgo(149), "", "", fxB(true), nil)
	fx.book(eve, fxAgo(1), fxAgo(2), fxAgo(3))

	// Suspended (LAPSED), email off, drifting away: played and opened
	// emails regularly until a month ago, none since, two failed payments
	// (churn risk 80).
	finn := fx.add("finn", compileTenant, 106)
	fx.join(finn, fxAgo(500), "Gold", "SUSPENDED", "finn@example.com", "")
	fx.player(finn, fxAgo(500), "", fxF(10))
	fx.prefs(finn, fxAgo(499), "", "", fxB(false), fxB(true))
	fx.book(finn, fxAgo(40), fxAgo(50), fxAgo(60), fxAgo(80), fxAgo(110), fxAgo(130), fxAgo(150), fxAgo(170))
	fx.opened(finn, fxAgo(70), fxAgo(90), fxAgo(100), fxAgo(120))
	fx.failed(finn, fxAgo(12))
	fx.failed(finn, fxAgo(11))

	// Cancelled (CHURNED), drifted away as finn did: a high churn risk, but
	// not a member any more.
	gus := fx.add("gus", compileTenant, 107)
	fx.join(gus, fxAgo(600), "Platinum", "CANCELLED", "gus@example.com", "")
	fx.player(gus, fxAgo(599), "", fxF(22.5))
	fx.book(gus, fxAgo(40), fxAgo(45), fxAgo(60), fxAgo(90), fxAgo(120), fxAgo(150), fxAgo(200))
	fx.opened(gus, fxAgo(70), fxAgo(100), fxAgo(130))
	fx.failed(gus, fxAgo(10))
	fx.failed(gus, fxAgo(9))
	fx.tag(gus, "lapsed-2025")

	// A guest from TeeTime: no SCL record, a plus handicap.
	hana := fx.add("hana", compileTenant, 0)
	fx.player(hana, fxAgo(90), "hana@example.com", fxF(-1.5))
	fx.prefs(hana, fxAgo(89), "", "", nil, fxB(true))
	fx.book(hana, fxAgo(8))

	// A prospect the club only ever wrote to: never active.
	ivan := fx.add("ivan", compileTenant, 0)
	fx.sent(ivan, fxAgo(5), "ivan@example.com", "email")
	fx.tag(ivan, "newsletter")

	// Archived by staff: archived profiles stay eligible (only merged-away
	// ones are never members).
	jade := fx.add("jade", compileTenant, 110)
	fx.join(jade, fxAgo(100), "Gold", "ACTIVE", "jade@example.com", "")
	fx.player(jade, fxAgo(100), "", fxF(12))
	fx.prefs(jade, fxAgo(99), "", "", fxB(true), nil)
	fx.book(jade, fxAgo(2), fxAgo(3))
	fx.archive(jade)

	// No email at all; a second phone as an alias; drifting, with one failed
	// payment (churn risk under 70).
	kai := fx.add("kai", compileTenant, 111)
	fx.join(kai, fxAgo(300), "Gold", "ACTIVE", "", "+27821110011")
	fx.player(kai, fxAgo(300), "", fxF(18))
	fx.prefs(kai, fxAgo(299), "", "+27821110099", nil, fxB(true))
	fx.book(kai, fxAgo(40), fxAgo(55), fxAgo(70), fxAgo(100), fxAgo(130), fxAgo(160))
	fx.opened(kai, fxAgo(65), fxAgo(80), fxAgo(110))
	fx.failed(kai, fxAgo(20))

	// An alias email (written mixed case, stored lower), booked two hours
	// ago and 29 days ago.
	lena := fx.add("lena", compileTenant, 112)
	fx.join(lena, fxAgo(70), "Platinum", "ACTIVE", "lena@example.com", "+27821110012")
	fx.player(lena, fxAgo(70), "", fxF(3.3))
	fx.prefs(lena, fxAgo(69), "Lena.Work@Corp.Example", "", fxB(true), nil)
	fx.book(lena, fxHoursAgo(2), fxAgo(29))
	fx.opened(lena, fxAgo(1))
	fx.tag(lena, "vip", "weekend", "coach")

	// mo would match the example segment, but is merged into nora: never a
	// member of anything. nora takes mo's keys, tags and bookings.
	mo := fx.add("mo", compileTenant, 113)
	fx.join(mo, fxAgo(60), "Gold", "ACTIVE", "mo@example.com", "+27821110013")
	fx.player(mo, fxAgo(60), "", fxF(9))
	fx.prefs(mo, fxAgo(59), "", "", fxB(true), fxB(true))
	fx.book(mo, fxAgo(2), fxAgo(3))
	fx.tag(mo, "vip")
	nora := fx.add("nora", compileTenant, 114)
	fx.join(nora, fxAgo(50), "Platinum", "ACTIVE", "nora@example.com", "+27821110014")
	fx.player(nora, fxAgo(50), "", fxF(11))
	fx.prefs(nora, fxAgo(49), "", "", fxB(true), nil)
	fx.book(nora, fxAgo(6))
	fx.tag(nora, "weekend")
	fx.merge(nora, mo)

	// A member quiet for two months, whose tier SCL spells in two words.
	owen := fx.add("owen", compileTenant, 115)
	fx.join(owen, fxAgo(60), "Gold Senior", "ACTIVE", "owen@example.com", "")
	fx.player(owen, fxAgo(60), "", fxF(27))

	// The other club: copies of club-a's profiles that must never match.
	bea := fx.add("bea", compileOther, 101)
	fx.join(bea, fxAgo(400), "Gold", "ACTIVE", "anna@example.com", "+27821110001")
	fx.player(bea, fxAgo(399), "", fxF(8.2))
	fx.prefs(bea, fxAgo(398), "", "+27821110099", fxB(true), fxB(true))
	fx.book(bea, fxAgo(2), fxAgo(5), fxAgo(12))
	fx.opened(bea, fxAgo(3))
	fx.pay(bea, fxAgo(20), 50000, "GBP")
	fx.tag(bea, "vip", "weekend", "newsletter")
	bob := fx.add("bob", compileOther, 0)
	fx.sent(bob, fxAgo(5), "bob@example.com", "EMAIL")
	fx.tag(bob, "newsletter", "lapsed-2025")
	bram := fx.add("bram", compileOther, 203)
	fx.join(bram, fxAgo(500), "Gold Senior", "SUSPENDED", "bram@example.com", "")
	fx.book(bram, fxAgo(100))

	run.Project(7)
	for _, p := range fx.profs {
		p.scored = p.status != "MERGED"
	}

	// Phase two: the scores projector has not reached these yet.
	run.Projectors = slices.DeleteFunc(slices.Clone(run.Projectors), func(p projections.Projector) bool { return p.Name() == scores.Name })

	// Would match the example segment but for the missing score.
	pia := fx.add("pia", compileTenant, 116)
	fx.join(pia, fxAgo(30), "Gold", "ACTIVE", "pia@example.com", "")
	fx.player(pia, fxAgo(30), "", fxF(7))
	fx.prefs(pia, fxAgo(29), "", "", fxB(true), nil)
	fx.book(pia, fxAgo(1), fxAgo(2))
	// Joined 100 days ago and not seen since.
	quinn := fx.add("quinn", compileTenant, 117)
	fx.join(quinn, fxAgo(100), "Silver", "ACTIVE", "quinn@example.com", "")

	run.Project(0)

	// The scores are the model's to compute: read them back.
	r := customers.Reader{DB: env.Pool}
	for _, p := range fx.profs {
		c, err := r.Get(context.Background(), p.tenant, p.id)
		require.NoError(t, err)
		p.engagement, p.churn = c.EngagementScore, c.ChurnRiskScore
	}
	return fx
}

// checkReadModel proves the read model holds the profiles the fixture
// means, field by field, so a failing case below is the compiler's doing.
func (fx *compileFixture) checkReadModel(t *testing.T) {
	r := customers.Reader{DB: fx.env.Pool}
	opt := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	for _, p := range fx.profs {
		c, err := r.Get(context.Background(), p.tenant, p.id)
		require.NoError(t, err)
		assert.Equal(t, p.status, c.Status, p.name)
		assert.Equal(t, opt(p.tier), c.MembershipTier, p.name)
		assert.Equal(t, opt(p.mstatus), c.MembershipStatus, p.name)
		assert.Equal(t, opt(p.email), c.Email, p.name)
		assert.Equal(t, opt(p.phone), c.PhoneNumber, p.name)
		assert.Equal(t, p.handicap, c.Handicap, p.name)
		assert.Equal(t, p.emailOptIn, c.EmailOptIn, p.name)
		assert.Equal(t, p.smsOptIn, c.SMSOptIn, p.name)
		assert.ElementsMatch(t, p.tags, c.Tags, p.name)
		if p.status == "MERGED" {
			assert.Nil(t, c.EngagementScore, p.name)
			continue
		}
		assert.Equal(t, p.lifecycle, c.LifecycleStage, p.name)
		var al []string
		for _, a := range c.Aliases {
			al = append(al, a.Value)
		}
		assert.ElementsMatch(t, p.aliases, al, p.name)
		if l := p.last(); l == nil || c.LastActivityAt == nil {
			assert.Equal(t, l == nil, c.LastActivityAt == nil, "%s lastActivityAt: want %v", p.name, l)
		} else {
			assert.True(t, l.Equal(*c.LastActivityAt), "%s lastActivityAt: want %v, got %v", p.name, l, c.LastActivityAt)
		}
		assert.Equal(t, p.bookings30d(), c.BookingCount30d, p.name)
		assert.Equal(t, p.activities30d(), c.ActivityCount30d, p.name)
		if assert.NotNil(t, c.LifetimeValue, p.name) {
			assert.Equal(t, p.lifetime(), *c.LifetimeValue, p.name)
		}
		assert.Equal(t, p.scored, c.EngagementScore != nil, "%s scored", p.name)
		assert.Equal(t, p.scored, c.ChurnRiskScore != nil, "%s scored", p.name)
	}
}

// compileCase is a rule tree as staff write it and, independently, which
// profiles it must select. trivial marks cases whose answer is meant to be
// everyone or no one; every other case must split the population, so a
// fixture that stops exercising it is noticed.
type compileCase struct {
	name    string
	rules   string
	want    func(p *fxProf) bool
	trivial bool
	tenant  string // compileTenant when empty
}

// leaf wraps one rule in the top group.
func fxLeaf(r string) string { return `{"combinator": "AND", "rules": [` + r + `]}` }

func fxNum(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func fxTime(t time.Time) string { return `"` + t.UTC().Format(time.RFC3339) + `"` }

func (fx *compileFixture) p(name string) *fxProf {
	p, ok := fx.named[name]
	if !ok {
		fx.t.Fatalf("no profile %s", name)
	}
	return p
}

// members answers the names of the tenant's profiles want selects:
// merged-away profiles are never members, and no other club's profile ever
// is.
func (fx *compileFixture) members(tenant string, want func(p *fxProf) bool) []string {
	out := []string{}
	for _, p := range fx.profs {
		if p.tenant == tenant && p.status != "MERGED" && want(p) {
			out = append(out, p.name)
		}
	}
	sort.Strings(out)
	return out
}

func (fx *compileFixture) eligible(tenant string) int {
	return len(fx.members(tenant, func(*fxProf) bool { return true }))
}

// preview answers the names of the profiles Reader.Preview selects.
func (fx *compileFixture) preview(t *testing.T, tenant string, node segment.Node) []string {
	t.Helper()
	r := segments.Reader{DB: fx.env.Pool, Clock: func() time.Time { return compileNow }}
	pv, err := r.Preview(context.Background(), tenant, node, 1000)
	require.NoError(t, err)
	byID := map[uuid.UUID]string{}
	for _, p := range fx.profs {
		byID[p.id] = p.name
	}
	out := []string{}
	for _, m := range pv.Sample {
		name, ok := byID[m.CustomerID]
		if !ok {
			name = "unknown:" + m.CustomerID.String()
		}
		out = append(out, name)
	}
	sort.Strings(out)
	assert.EqualValues(t, len(out), pv.Total, "the count and the sample agree")
	return out
}

func (fx *compileFixture) expect(t *testing.T, c compileCase, node segment.Node) {
	t.Helper()
	tenant := c.tenant
	if tenant == "" {
		tenant = compileTenant
	}
	want := fx.members(tenant, c.want)
	if !c.trivial {
		require.NotEmpty(t, want, "the fixture no longer exercises this case: nobody matches")
		require.Less(t, len(want), fx.eligible(tenant), "the fixture no longer exercises this case: everybody matches")
	}
	t.Logf("%s members: %v", tenant, want)
	assert.Equal(t, want, fx.preview(t, tenant, node), c.rules)
}

// fxCover notes the kind and operator of every condition of a checked node.
func fxCover(n segment.Node, covered map[string]bool) {
	switch {
	case n.Group != nil:
		for _, c := range n.Group.Nodes {
			fxCover(c, covered)
		}
	case n.Field != nil:
		covered[string(n.Field.Field.Kind)+"/"+string(n.Field.Op)] = true
	case n.Activity != nil:
		covered["activity/"+string(n.Activity.Op)] = true
	}
}

func fxChecked(t *testing.T, rules string) segment.Node {
	t.Helper()
	var g segment.Rules
	require.NoError(t, json.Unmarshal([]byte(rules), &g))
	node, problems := g.Check()
	require.Empty(t, problems, rules)
	return node
}

func TestCompileRulesPreview(t *testing.T) {
	fx := buildCompileFixture(t)
	if !t.Run("fixture", fx.checkReadModel) {
		t.Fatal("the read model does not hold the fixture the cases assume")
	}

	// Boundaries taken from the fixture itself: the scores are the model's,
	// the last activity is the fixture's.
	var es, cs []float64
	for _, p := range fx.profs {
		if p.tenant == compileTenant && p.status != "MERGED" && p.engagement != nil {
			es = append(es, *p.engagement)
			cs = append(cs, *p.churn)
		}
	}
	sort.Float64s(es)
	sort.Float64s(cs)
	require.GreaterOrEqual(t, len(es), 4)
	eMid, eLow := es[len(es)/2], es[len(es)/4]
	cRef := *fx.p("kai").churn
	annaLast := *fx.p("anna").last()
	ids := func(names ...string) string {
		var s []string
		for _, n := range names {
			s = append(s, `"`+fx.p(n).id.String()+`"`)
		}
		return "[" + strings.Join(s, ", ") + "]"
	}
	isName := func(names ...string) func(p *fxProf) bool {
		return func(p *fxProf) bool { return slices.Contains(names, p.name) }
	}
	booked30 := func(p *fxProf) int { return p.count("TEETIME_BOOKED", "", "", 30*fxDay) }
	everyone := func(*fxProf) bool { return true }
	nobody := func(*fxProf) bool { return false }

	// The specification's example segment.
	specRules := `{"combinator": "AND", "rules": [
		{"field": "membershipStatus", "operator": "eq", "value": "ACTIVE"},
		{"field": "membershipTier", "operator": "in", "value": ["Gold", "Platinum"]},
		{"field": "handicap", "operator": "lt", "value": 15},
		{"field": "bookingCount30d", "operator": "gte", "value": 2},
		{"field": "engagementScore", "operator": "gte", "value": 50},
		{"field": "emailOptIn", "operator": "eq", "value": true}]}`
	specWant := func(p *fxProf) bool {
		return p.mstatus == "ACTIVE" && (p.tier == "Gold" || p.tier == "Platinum") && numLt(p.handicap, 15) &&
			p.bookings30d() >= 2 && numGte(p.engagement, 50) && p.emailOptIn
	}

	cases := []compileCase{
		// String.
		{name: "string/eq", rules: fxLeaf(`{"field": "membershipTier", "operator": "eq", "value": "Gold"}`),
			want: func(p *fxProf) bool { return p.tier == "Gold" }},
		{name: "string/eq is exact (case and whole value)", rules: fxLeaf(`{"field": "membershipTier", "operator": "eq", "value": "gold"}`),
			want: func(p *fxProf) bool { return p.tier == "gold" }, trivial: true},
		{name: "string/eq email isolates tenants", rules: fxLeaf(`{"field": "email", "operator": "eq", "value": "anna@example.com"}`),
			want: func(p *fxProf) bool { return p.email == "anna@example.com" }},
		{name: "string/eq never selects a merged-away profile", rules: fxLeaf(`{"field": "email", "operator": "eq", "value": "mo@example.com"}`),
			want: func(p *fxProf) bool { return p.email == "mo@example.com" }, trivial: true},
		{name: "string/mergedInto exists selects no one", rules: fxLeaf(`{"field": "mergedInto", "operator": "exists"}`),
			want: nobody, trivial: true},
		{name: "string/neq matches missing", rules: fxLeaf(`{"field": "membershipTier", "operator": "neq", "value": "Gold"}`),
			want: func(p *fxProf) bool { return p.tier != "Gold" }},
		{name: "string/neq membershipStatus", rules: fxLeaf(`{"field": "membershipStatus", "operator": "neq", "value": "ACTIVE"}`),
			want: func(p *fxProf) bool { return p.mstatus != "ACTIVE" }},
		{name: "string/in", rules: fxLeaf(`{"field": "membershipTier", "operator": "in", "value": ["Gold", "Platinum"]}`),
			want: func(p *fxProf) bool { return p.tier == "Gold" || p.tier == "Platinum" }},
		{name: "string/nin matches missing", rules: fxLeaf(`{"field": "membershipTier", "operator": "nin", "value": ["Gold", "Platinum"]}`),
			want: func(p *fxProf) bool { return p.tier != "Gold" && p.tier != "Platinum" }},
		{name: "string/in id", rules: fxLeaf(`{"field": "id", "operator": "in", "value": ` + ids("anna", "hana", "bea@club-b") + `}`),
			want: isName("anna", "hana")},
		{name: "string/nin id", rules: fxLeaf(`{"field": "id", "operator": "nin", "value": ` + ids("anna", "hana") + `}`),
			want: func(p *fxProf) bool { return !isName("anna", "hana")(p) }},
		{name: "string/contains ignores case", rules: fxLeaf(`{"field": "membershipTier", "operator": "contains", "value": "OLD"}`),
			want: func(p *fxProf) bool { return strings.Contains(strings.ToLower(p.tier), "old") }},
		{name: "string/contains email", rules: fxLeaf(`{"field": "email", "operator": "contains", "value": "An"}`),
			want: func(p *fxProf) bool { return strings.Contains(p.email, "an") }},
		{name: "string/contains is no pattern", rules: fxLeaf(`{"field": "email", "operator": "contains", "value": "%"}`),
			want: nobody, trivial: true},
		{name: "string/startsWith is no pattern", rules: fxLeaf(`{"field": "email", "operator": "startsWith", "value": "_"}`),
			want: nobody, trivial: true},
		{name: "string/startsWith ignores case", rules: fxLeaf(`{"field": "membershipTier", "operator": "startsWith", "value": "gold "}`),
			want: func(p *fxProf) bool { return strings.HasPrefix(strings.ToLower(p.tier), "gold ") }},
		{name: "string/startsWith phone", rules: fxLeaf(`{"field": "phoneNumber", "operator": "startsWith", "value": "+2782111001"}`),
			want: func(p *fxProf) bool { return strings.HasPrefix(p.phone, "+2782111001") }},
		{name: "string/exists", rules: fxLeaf(`{"field": "phoneNumber", "operator": "exists"}`),
			want: func(p *fxProf) bool { return p.phone != "" }},
		{name: "string/notExists", rules: fxLeaf(`{"field": "email", "operator": "notExists"}`),
			want: func(p *fxProf) bool { return p.email == "" }},
		{name: "string/notExists tier", rules: fxLeaf(`{"field": "membershipTier", "operator": "notExists"}`),
			want: func(p *fxProf) bool { return p.tier == "" }},

		// Enum.
		{name: "enum/eq forgives case", rules: fxLeaf(`{"field": "lifecycleStage", "operator": "eq", "value": "member"}`),
			want: func(p *fxProf) bool { return p.lifecycle == "MEMBER" }},
		{name: "enum/neq", rules: fxLeaf(`{"field": "lifecycleStage", "operator": "neq", "value": "MEMBER"}`),
			want: func(p *fxProf) bool { return p.lifecycle != "MEMBER" }},
		{name: "enum/in", rules: fxLeaf(`{"field": "lifecycleStage", "operator": "in", "value": ["LAPSED", "churned"]}`),
			want: func(p *fxProf) bool { return p.lifecycle == "LAPSED" || p.lifecycle == "CHURNED" }},
		{name: "enum/nin", rules: fxLeaf(`{"field": "lifecycleStage", "operator": "nin", "value": ["MEMBER", "GUEST"]}`),
			want: func(p *fxProf) bool { return p.lifecycle != "MEMBER" && p.lifecycle != "GUEST" }},
		{name: "enum/exists", rules: fxLeaf(`{"field": "lifecycleStage", "operator": "exists"}`), want: everyone, trivial: true},
		{name: "enum/notExists", rules: fxLeaf(`{"field": "lifecycleStage", "operator": "notExists"}`), want: nobody, trivial: true},
		{name: "enum/status eq ARCHIVED", rules: fxLeaf(`{"field": "status", "operator": "eq", "value": "ARCHIVED"}`),
			want: func(p *fxProf) bool { return p.status == "ARCHIVED" }},
		{name: "enum/status neq ACTIVE never selects the merged", rules: fxLeaf(`{"field": "status", "operator": "neq", "value": "ACTIVE"}`),
			want: func(p *fxProf) bool { return p.status != "ACTIVE" }},
		{name: "enum/status eq MERGED selects no one", rules: fxLeaf(`{"field": "status", "operator": "eq", "value": "MERGED"}`),
			want: nobody, trivial: true},
		{name: "enum/status in with MERGED", rules: fxLeaf(`{"field": "status", "operator": "in", "value": ["MERGED", "ACTIVE"]}`),
			want: func(p *fxProf) bool { return p.status == "ACTIVE" }},

		// Number, with a missing handicap (dan, ivan) never satisfying a
		// comparison.
		{name: "number/eq", rules: fxLeaf(`{"field": "handicap", "operator": "eq", "value": 15}`),
			want: func(p *fxProf) bool { return numEq(p.handicap, 15) }},
		{name: "number/neq matches missing", rules: fxLeaf(`{"field": "handicap", "operator": "neq", "value": 15}`),
			want: func(p *fxProf) bool { return !numEq(p.handicap, 15) }},
		{name: "number/in", rules: fxLeaf(`{"field": "handicap", "operator": "in", "value": [8.2, 15, -1.5]}`),
			want: func(p *fxProf) bool {
				return numEq(p.handicap, 8.2) || numEq(p.handicap, 15) || numEq(p.handicap, -1.5)
			}},
		{name: "number/nin matches missing", rules: fxLeaf(`{"field": "handicap", "operator": "nin", "value": [8.2, 15]}`),
			want: func(p *fxProf) bool { return !numEq(p.handicap, 8.2) && !numEq(p.handicap, 15) }},
		{name: "number/lt", rules: fxLeaf(`{"field": "handicap", "operator": "lt", "value": 15}`),
			want: func(p *fxProf) bool { return numLt(p.handicap, 15) }},
		{name: "number/lt a bound nobody exceeds still leaves missing out", rules: fxLeaf(`{"field": "handicap", "operator": "lt", "value": 100}`),
			want: func(p *fxProf) bool { return numLt(p.handicap, 100) }},
		{name: "number/lte", rules: fxLeaf(`{"field": "handicap", "operator": "lte", "value": 15}`),
			want: func(p *fxProf) bool { return numLte(p.handicap, 15) }},
		{name: "number/gt", rules: fxLeaf(`{"field": "handicap", "operator": "gt", "value": 15}`),
			want: func(p *fxProf) bool { return numGt(p.handicap, 15) }},
		{name: "number/gte", rules: fxLeaf(`{"field": "handicap", "operator": "gte", "value": 15}`),
			want: func(p *fxProf) bool { return numGte(p.handicap, 15) }},
		{name: "number/between is inclusive", rules: fxLeaf(`{"field": "handicap", "operator": "between", "value": [5, 15]}`),
			want: func(p *fxProf) bool { return numGte(p.handicap, 5) && numLte(p.handicap, 15) }},
		{name: "number/between negative", rules: fxLeaf(`{"field": "handicap", "operator": "between", "value": [-2, 0]}`),
			want: func(p *fxProf) bool { return numGte(p.handicap, -2) && numLte(p.handicap, 0) }},
		{name: "number/exists", rules: fxLeaf(`{"field": "handicap", "operator": "exists"}`),
			want: func(p *fxProf) bool { return p.handicap != nil }},
		{name: "number/notExists", rules: fxLeaf(`{"field": "handicap", "operator": "notExists"}`),
			want: func(p *fxProf) bool { return p.handicap == nil }},
		{name: "number/sclMemberId in", rules: fxLeaf(`{"field": "sclMemberId", "operator": "in", "value": [101, 102, 999]}`),
			want: func(p *fxProf) bool { return p.memberID == 101 || p.memberID == 102 }},
		{name: "number/sclMemberId notExists", rules: fxLeaf(`{"field": "sclMemberId", "operator": "notExists"}`),
			want: func(p *fxProf) bool { return p.memberID == 0 }},
		{name: "number/bookingCount30d eq 0", rules: fxLeaf(`{"field": "bookingCount30d", "operator": "eq", "value": 0}`),
			want: func(p *fxProf) bool { return p.bookings30d() == 0 }},
		{name: "number/bookingCount30d neq 0", rules: fxLeaf(`{"field": "bookingCount30d", "operator": "neq", "value": 0}`),
			want: func(p *fxProf) bool { return p.bookings30d() != 0 }},
		{name: "number/bookingCount30d gte", rules: fxLeaf(`{"field": "bookingCount30d", "operator": "gte", "value": 2}`),
			want: func(p *fxProf) bool { return p.bookings30d() >= 2 }},
		{name: "number/bookingCount30d gt", rules: fxLeaf(`{"field": "bookingCount30d", "operator": "gt", "value": 2}`),
			want: func(p *fxProf) bool { return p.bookings30d() > 2 }},
		{name: "number/bookingCount30d lt", rules: fxLeaf(`{"field": "bookingCount30d", "operator": "lt", "value": 1}`),
			want: func(p *fxProf) bool { return p.bookings30d() < 1 }},
		{name: "number/bookingCount30d lte", rules: fxLeaf(`{"field": "bookingCount30d", "operator": "lte", "value": 1}`),
			want: func(p *fxProf) bool { return p.bookings30d() <= 1 }},
		{name: "number/bookingCount30d between", rules: fxLeaf(`{"field": "bookingCount30d", "operator": "between", "value": [1, 2]}`),
			want: func(p *fxProf) bool { n := p.bookings30d(); return n >= 1 && n <= 2 }},
		{name: "number/activityCount30d gte", rules: fxLeaf(`{"field": "activityCount30d", "operator": "gte", "value": 4}`),
			want: func(p *fxProf) bool { return p.activities30d() >= 4 }},
		{name: "number/lifetimeValue gt", rules: fxLeaf(`{"field": "lifetimeValue", "operator": "gt", "value": 100000}`),
			want: func(p *fxProf) bool { return p.lifetime() > 100000 }},
		{name: "number/lifetimeValue eq 0", rules: fxLeaf(`{"field": "lifetimeValue", "operator": "eq", "value": 0}`),
			want: func(p *fxProf) bool { return p.lifetime() == 0 }},
		{name: "number/engagementScore gte", rules: fxLeaf(`{"field": "engagementScore", "operator": "gte", "value": ` + fxNum(eMid) + `}`),
			want: func(p *fxProf) bool { return numGte(p.engagement, eMid) }},
		{name: "number/engagementScore lt leaves unscored out", rules: fxLeaf(`{"field": "engagementScore", "operator": "lt", "value": ` + fxNum(eMid) + `}`),
			want: func(p *fxProf) bool { return numLt(p.engagement, eMid) }},
		{name: "number/engagementScore eq", rules: fxLeaf(`{"field": "engagementScore", "operator": "eq", "value": ` + fxNum(eMid) + `}`),
			want: func(p *fxProf) bool { return numEq(p.engagement, eMid) }},
		{name: "number/engagementScore neq matches unscored", rules: fxLeaf(`{"field": "engagementScore", "operator": "neq", "value": ` + fxNum(eMid) + `}`),
			want: func(p *fxProf) bool { return !numEq(p.engagement, eMid) }},
		{name: "number/engagementScore between", rules: fxLeaf(`{"field": "engagementScore", "operator": "between", "value": [` + fxNum(eLow) + `, ` + fxNum(eMid) + `]}`),
			want: func(p *fxProf) bool { return numGte(p.engagement, eLow) && numLte(p.engagement, eMid) }},
		{name: "number/engagementScore notExists", rules: fxLeaf(`{"field": "engagementScore", "operator": "notExists"}`),
			want: func(p *fxProf) bool { return p.engagement == nil }},
		{name: "number/churnRiskScore gt", rules: fxLeaf(`{"field": "churnRiskScore", "operator": "gt", "value": ` + fxNum(cRef) + `}`),
			want: func(p *fxProf) bool { return numGt(p.churn, cRef) }},
		{name: "number/churnRiskScore lte", rules: fxLeaf(`{"field": "churnRiskScore", "operator": "lte", "value": ` + fxNum(cRef) + `}`),
			want: func(p *fxProf) bool { return numLte(p.churn, cRef) }},
		{name: "number/churnRiskScore exists", rules: fxLeaf(`{"field": "churnRiskScore", "operator": "exists"}`),
			want: func(p *fxProf) bool { return p.churn != nil }},

		// Boolean.
		{name: "boolean/eq true", rules: fxLeaf(`{"field": "emailOptIn", "operator": "eq", "value": true}`),
			want: func(p *fxProf) bool { return p.emailOptIn }},
		{name: "boolean/eq false", rules: fxLeaf(`{"field": "emailOptIn", "operator": "eq", "value": false}`),
			want: func(p *fxProf) bool { return !p.emailOptIn }},
		{name: "boolean/neq true", rules: fxLeaf(`{"field": "smsOptIn", "operator": "neq", "value": true}`),
			want: func(p *fxProf) bool { return !p.smsOptIn }},
		{name: "boolean/neq false", rules: fxLeaf(`{"field": "smsOptIn", "operator": "neq", "value": false}`),
			want: func(p *fxProf) bool { return p.smsOptIn }},
		{name: "boolean/exists", rules: fxLeaf(`{"field": "smsOptIn", "operator": "exists"}`), want: everyone, trivial: true},
		{name: "boolean/notExists", rules: fxLeaf(`{"field": "smsOptIn", "operator": "notExists"}`), want: nobody, trivial: true},

		// Time, with ivan and bob never active.
		{name: "time/eq", rules: fxLeaf(`{"field": "lastActivityAt", "operator": "eq", "value": ` + fxTime(annaLast) + `}`),
			want: func(p *fxProf) bool { l := p.last(); return l != nil && l.Equal(annaLast) }},
		{name: "time/neq matches never", rules: fxLeaf(`{"field": "lastActivityAt", "operator": "neq", "value": ` + fxTime(annaLast) + `}`),
			want: func(p *fxProf) bool { l := p.last(); return l == nil || !l.Equal(annaLast) }},
		{name: "time/lt a date", rules: fxLeaf(`{"field": "lastActivityAt", "operator": "lt", "value": "2026-03-01"}`),
			want: func(p *fxProf) bool {
				l := p.last()
				return l != nil && l.Before(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
			}},
		{name: "time/a date is its midnight (UTC)", rules: fxLeaf(`{"field": "lastActivityAt", "operator": "lte", "value": "` + annaLast.Format(time.DateOnly) + `"}`),
			want: func(p *fxProf) bool {
				l := p.last()
				y, m, d := annaLast.Date()
				return l != nil && !l.After(time.Date(y, m, d, 0, 0, 0, 0, time.UTC))
			}},
		{name: "time/lte", rules: fxLeaf(`{"field": "lastActivityAt", "operator": "lte", "value": ` + fxTime(annaLast) + `}`),
			want: func(p *fxProf) bool { l := p.last(); return l != nil && !l.After(annaLast) }},
		{name: "time/gt", rules: fxLeaf(`{"field": "lastActivityAt", "operator": "gt", "value": ` + fxTime(annaLast) + `}`),
			want: func(p *fxProf) bool { l := p.last(); return l != nil && l.After(annaLast) }},
		{name: "time/gte", rules: fxLeaf(`{"field": "lastActivityAt", "operator": "gte", "value": ` + fxTime(annaLast) + `}`),
			want: func(p *fxProf) bool { l := p.last(); return l != nil && !l.Before(annaLast) }},
		{name: "time/between dates", rules: fxLeaf(`{"field": "lastActivityAt", "operator": "between", "value": ["2026-01-01", "2026-03-25T00:00:00Z"]}`),
			want: func(p *fxProf) bool {
				l := p.last()
				return l != nil && !l.Before(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) && !l.After(time.Date(2026, 3, 25, 0, 0, 0, 0, time.UTC))
			}},
		{name: "time/withinLast days", rules: fxLeaf(`{"field": "lastActivityAt", "operator": "withinLast", "value": "30d"}`),
			want: func(p *fxProf) bool { l := p.last(); return l != nil && fxWithin(*l, 30*fxDay) }},
		{name: "time/withinLast hours", rules: fxLeaf(`{"field": "lastActivityAt", "operator": "withinLast", "value": "36h"}`),
			want: func(p *fxProf) bool { l := p.last(); return l != nil && fxWithin(*l, 36*time.Hour) }},
		{name: "time/withinLast weeks", rules: fxLeaf(`{"field": "lastActivityAt", "operator": "withinLast", "value": "1w"}`),
			want: func(p *fxProf) bool { l := p.last(); return l != nil && fxWithin(*l, 7*fxDay) }},
		{name: "time/notWithinLast matches never", rules: fxLeaf(`{"field": "lastActivityAt", "operator": "notWithinLast", "value": "30d"}`),
			want: func(p *fxProf) bool { l := p.last(); return l == nil || !fxWithin(*l, 30*fxDay) }},
		{name: "time/exists", rules: fxLeaf(`{"field": "lastActivityAt", "operator": "exists"}`),
			want: func(p *fxProf) bool { return p.last() != nil }},
		{name: "time/notExists", rules: fxLeaf(`{"field": "lastActivityAt", "operator": "notExists"}`),
			want: func(p *fxProf) bool { return p.last() == nil }},

		// Tags (stored normalised; values are normalised too).
		{name: "tags/hasTag", rules: fxLeaf(`{"field": "tags", "operator": "hasTag", "value": " VIP "}`),
			want: func(p *fxProf) bool { return p.hasTag("vip") }},
		{name: "tags/hasAnyTag", rules: fxLeaf(`{"field": "tags", "operator": "hasAnyTag", "value": ["coach", "Newsletter", "nobody-has-this"]}`),
			want: func(p *fxProf) bool { return p.hasTag("coach") || p.hasTag("newsletter") }},
		{name: "tags/hasAllTags", rules: fxLeaf(`{"field": "tags", "operator": "hasAllTags", "value": ["vip", "weekend"]}`),
			want: func(p *fxProf) bool { return p.hasTag("vip") && p.hasTag("weekend") }},
		{name: "tags/contains", rules: fxLeaf(`{"field": "tags", "operator": "contains", "value": "Lapsed"}`),
			want: func(p *fxProf) bool {
				return slices.ContainsFunc(p.tags, func(t string) bool { return strings.Contains(t, "lapsed") })
			}},
		{name: "tags/contains a part of a tag", rules: fxLeaf(`{"field": "tags", "operator": "contains", "value": "end"}`),
			want: func(p *fxProf) bool {
				return slices.ContainsFunc(p.tags, func(t string) bool { return strings.Contains(t, "end") })
			}},
		{name: "tags/exists", rules: fxLeaf(`{"field": "tags", "operator": "exists"}`),
			want: func(p *fxProf) bool { return len(p.tags) > 0 }},
		{name: "tags/notExists", rules: fxLeaf(`{"field": "tags", "operator": "notExists"}`),
			want: func(p *fxProf) bool { return len(p.tags) == 0 }},

		// Aliases: a value matches when any alias does.
		{name: "aliases/eq email", rules: fxLeaf(`{"field": "aliases", "operator": "eq", "value": "mo@example.com"}`),
			want: func(p *fxProf) bool { return slices.Contains(p.aliases, "mo@example.com") }},
		{name: "aliases/eq phone", rules: fxLeaf(`{"field": "aliases", "operator": "eq", "value": "+27821110099"}`),
			want: func(p *fxProf) bool { return slices.Contains(p.aliases, "+27821110099") }},
		{name: "aliases/contains ignores case", rules: fxLeaf(`{"field": "aliases", "operator": "contains", "value": "CORP"}`),
			want: func(p *fxProf) bool {
				return slices.ContainsFunc(p.aliases, func(a string) bool { return strings.Contains(a, "corp") })
			}},
		{name: "aliases/startsWith", rules: fxLeaf(`{"field": "aliases", "operator": "startsWith", "value": "+2782111"}`),
			want: func(p *fxProf) bool {
				return slices.ContainsFunc(p.aliases, func(a string) bool { return strings.HasPrefix(a, "+2782111") })
			}},
		{name: "aliases/exists", rules: fxLeaf(`{"field": "aliases", "operator": "exists"}`),
			want: func(p *fxProf) bool { return len(p.aliases) > 0 }},
		{name: "aliases/notExists", rules: fxLeaf(`{"field": "aliases", "operator": "notExists"}`),
			want: func(p *fxProf) bool { return len(p.aliases) == 0 }},

		// Activity conditions over the timeline.
		{name: "activity/upstream type within gte", rules: fxLeaf(`{"activity": {"type": "teetime.booked"}, "operator": "gte", "value": 2, "within": "30d"}`),
			want: func(p *fxProf) bool { return booked30(p) >= 2 }},
		{name: "activity/eq", rules: fxLeaf(`{"activity": {"type": "TEETIME_BOOKED"}, "operator": "eq", "value": 3, "within": "30d"}`),
			want: func(p *fxProf) bool { return booked30(p) == 3 }},
		{name: "activity/eq 0 all time", rules: fxLeaf(`{"activity": {"type": "TEETIME_BOOKED"}, "operator": "eq", "value": 0}`),
			want: func(p *fxProf) bool { return p.count("TEETIME_BOOKED", "", "", 0) == 0 }},
		{name: "activity/neq", rules: fxLeaf(`{"activity": {"type": "TEETIME_BOOKED"}, "operator": "neq", "value": 2, "within": "30d"}`),
			want: func(p *fxProf) bool { return booked30(p) != 2 }},
		{name: "activity/lt counts profiles with none", rules: fxLeaf(`{"activity": {"type": "TEETIME_BOOKED"}, "operator": "lt", "value": 1, "within": "30d"}`),
			want: func(p *fxProf) bool { return booked30(p) < 1 }},
		{name: "activity/lte", rules: fxLeaf(`{"activity": {"type": "TEETIME_BOOKED"}, "operator": "lte", "value": 1, "within": "30d"}`),
			want: func(p *fxProf) bool { return booked30(p) <= 1 }},
		{name: "activity/gt", rules: fxLeaf(`{"activity": {"type": "TEETIME_BOOKED"}, "operator": "gt", "value": 2, "within": "30d"}`),
			want: func(p *fxProf) bool { return booked30(p) > 2 }},
		{name: "activity/between", rules: fxLeaf(`{"activity": {"type": "TEETIME_BOOKED"}, "operator": "between", "value": [1, 2], "within": "30d"}`),
			want: func(p *fxProf) bool { n := booked30(p); return n >= 1 && n <= 2 }},
		{name: "activity/between from 0", rules: fxLeaf(`{"activity": {"type": "TEETIME_BOOKED"}, "operator": "between", "value": [0, 1], "within": "30d"}`),
			want: func(p *fxProf) bool { return booked30(p) <= 1 }},
		{name: "activity/exists within a week", rules: fxLeaf(`{"activity": {"type": "TEETIME_BOOKED"}, "operator": "exists", "within": "1w"}`),
			want: func(p *fxProf) bool { return p.count("TEETIME_BOOKED", "", "", 7*fxDay) > 0 }},
		{name: "activity/exists within hours", rules: fxLeaf(`{"activity": {"type": "TEETIME_BOOKED"}, "operator": "exists", "within": "12h"}`),
			want: func(p *fxProf) bool { return p.count("TEETIME_BOOKED", "", "", 12*time.Hour) > 0 }},
		{name: "activity/notExists all time", rules: fxLeaf(`{"activity": {"type": "teetime.booked"}, "operator": "notExists"}`),
			want: func(p *fxProf) bool { return p.count("TEETIME_BOOKED", "", "", 0) == 0 }},
		{name: "activity/notExists within", rules: fxLeaf(`{"activity": {"type": "teetime.booked"}, "operator": "notExists", "within": "30d"}`),
			want: func(p *fxProf) bool { return booked30(p) == 0 }},
		{name: "activity/category", rules: fxLeaf(`{"activity": {"category": "booking"}, "operator": "gte", "value": 2, "within": "7d"}`),
			want: func(p *fxProf) bool { return p.count("", "BOOKING", "", 7*fxDay) >= 2 }},
		{name: "activity/category notExists", rules: fxLeaf(`{"activity": {"category": "ENGAGEMENT"}, "operator": "notExists"}`),
			want: func(p *fxProf) bool { return p.count("", "ENGAGEMENT", "", 0) == 0 }},
		{name: "activity/email opened within", rules: fxLeaf(`{"activity": {"type": "email.opened"}, "operator": "exists", "within": "30d"}`),
			want: func(p *fxProf) bool { return p.count("EMAIL_OPENED", "", "", 30*fxDay) > 0 }},
		{name: "activity/email opened all time gte", rules: fxLeaf(`{"activity": {"type": "EMAIL_OPENED"}, "operator": "gte", "value": 2}`),
			want: func(p *fxProf) bool { return p.count("EMAIL_OPENED", "", "", 0) >= 2 }},
		{name: "activity/channel", rules: fxLeaf(`{"activity": {"channel": "email"}, "operator": "exists"}`),
			want: func(p *fxProf) bool { return p.count("", "", "EMAIL", 0) > 0 }},
		{name: "activity/type and category", rules: fxLeaf(`{"activity": {"type": "teetime.completed", "category": "BOOKING"}, "operator": "exists"}`),
			want: func(p *fxProf) bool { return p.count("TEETIME_COMPLETED", "BOOKING", "", 0) > 0 }},
		{name: "activity/type and a category it is not of", rules: fxLeaf(`{"activity": {"type": "EMAIL_OPENED", "category": "BOOKING"}, "operator": "exists"}`),
			want: nobody, trivial: true},
		{name: "activity/type, channel and window", rules: fxLeaf(`{"activity": {"type": "EMAIL_OPENED", "channel": "EMAIL"}, "operator": "gte", "value": 1, "within": "5d"}`),
			want: func(p *fxProf) bool { return p.count("EMAIL_OPENED", "", "EMAIL", 5*fxDay) >= 1 }},

		// Groups.
		{name: "group/top-level OR", rules: `{"combinator": "OR", "rules": [
				{"field": "membershipTier", "operator": "eq", "value": "Platinum"},
				{"field": "handicap", "operator": "lt", "value": 5}]}`,
			want: func(p *fxProf) bool { return p.tier == "Platinum" || numLt(p.handicap, 5) }},
		{name: "group/AND of field and activity", rules: `{"combinator": "AND", "rules": [
				{"field": "lifecycleStage", "operator": "eq", "value": "MEMBER"},
				{"activity": {"type": "email.opened"}, "operator": "exists"}]}`,
			want: func(p *fxProf) bool { return p.lifecycle == "MEMBER" && p.count("EMAIL_OPENED", "", "", 0) > 0 }},
		{name: "group/NOT takes in missing values", rules: `{"combinator": "AND", "not": true, "rules": [
				{"field": "membershipTier", "operator": "in", "value": ["Gold", "Platinum"]}]}`,
			want: func(p *fxProf) bool { return !(p.tier == "Gold" || p.tier == "Platinum") }},
		{name: "group/NOT of a comparison takes in missing", rules: fxLeaf(`{"combinator": "AND", "not": true, "rules": [
				{"field": "handicap", "operator": "lt", "value": 15}]}`),
			want: func(p *fxProf) bool { return !numLt(p.handicap, 15) }},
		{name: "group/NOT of neq leaves missing out", rules: fxLeaf(`{"combinator": "AND", "not": true, "rules": [
				{"field": "handicap", "operator": "neq", "value": 15}]}`),
			want: func(p *fxProf) bool { return numEq(p.handicap, 15) }},
		{name: "group/NOT of OR", rules: fxLeaf(`{"combinator": "OR", "not": true, "rules": [
				{"field": "tags", "operator": "hasTag", "value": "vip"},
				{"field": "emailOptIn", "operator": "eq", "value": false}]}`),
			want: func(p *fxProf) bool { return !(p.hasTag("vip") || !p.emailOptIn) }},
		{name: "group/NOT of an activity", rules: fxLeaf(`{"combinator": "AND", "not": true, "rules": [
				{"activity": {"type": "email.opened"}, "operator": "exists", "within": "30d"}]}`),
			want: func(p *fxProf) bool { return p.count("EMAIL_OPENED", "", "", 30*fxDay) == 0 }},
		{name: "group/NOT of a missing score", rules: fxLeaf(`{"combinator": "AND", "not": true, "rules": [
				{"field": "engagementScore", "operator": "gte", "value": ` + fxNum(eMid) + `}]}`),
			want: func(p *fxProf) bool { return !numGte(p.engagement, eMid) }},
		{name: "group/depth 3", rules: `{"combinator": "AND", "rules": [
				{"field": "status", "operator": "eq", "value": "ACTIVE"},
				{"combinator": "OR", "rules": [
					{"combinator": "AND", "rules": [
						{"field": "membershipTier", "operator": "eq", "value": "Gold"},
						{"field": "handicap", "operator": "lt", "value": 15}]},
					{"combinator": "AND", "rules": [
						{"combinator": "AND", "not": true, "rules": [
							{"field": "emailOptIn", "operator": "eq", "value": true}]},
						{"field": "lifecycleStage", "operator": "in", "value": ["LAPSED", "CHURNED"]}]}]},
				{"activity": {"type": "teetime.booked"}, "operator": "exists"}]}`,
			want: func(p *fxProf) bool {
				return p.status == "ACTIVE" &&
					((p.tier == "Gold" && numLt(p.handicap, 15)) || (!p.emailOptIn && (p.lifecycle == "LAPSED" || p.lifecycle == "CHURNED"))) &&
					p.count("TEETIME_BOOKED", "", "", 0) > 0
			}},
		{name: "group/depth 4 with NOT inside NOT", rules: `{"combinator": "OR", "not": true, "rules": [
				{"field": "lifecycleStage", "operator": "eq", "value": "PROSPECT"},
				{"combinator": "AND", "rules": [
					{"field": "bookingCount30d", "operator": "gte", "value": 1},
					{"combinator": "OR", "not": true, "rules": [
						{"field": "tags", "operator": "exists"},
						{"combinator": "AND", "rules": [
							{"field": "handicap", "operator": "gt", "value": 10},
							{"field": "phoneNumber", "operator": "exists"}]}]}]}]}`,
			want: func(p *fxProf) bool {
				inner := len(p.tags) > 0 || (numGt(p.handicap, 10) && p.phone != "")
				return !(p.lifecycle == "PROSPECT" || (p.bookings30d() >= 1 && !inner))
			}},
		{name: "group/top-level NOT", rules: `{"combinator": "AND", "not": true, "rules": [
				{"field": "bookingCount30d", "operator": "gte", "value": 1},
				{"field": "emailOptIn", "operator": "eq", "value": true}]}`,
			want: func(p *fxProf) bool { return !(p.bookings30d() >= 1 && p.emailOptIn) }},
		{name: "group/empty matches everyone", rules: `{"combinator": "AND", "rules": []}`, want: everyone, trivial: true},
		{name: "group/empty nested group matches everyone", rules: fxLeaf(`{"combinator": "OR", "rules": []}`), want: everyone, trivial: true},
		{name: "group/NOT of an empty group matches no one", rules: fxLeaf(`{"combinator": "OR", "not": true, "rules": []}`), want: nobody, trivial: true},

		// The other club's previews see the other club's profiles only.
		{name: "tenant/club-b hasTag", tenant: compileOther, rules: fxLeaf(`{"field": "tags", "operator": "hasTag", "value": "vip"}`),
			want: func(p *fxProf) bool { return p.hasTag("vip") }},
		{name: "tenant/club-b activity", tenant: compileOther, rules: fxLeaf(`{"activity": {"type": "teetime.booked"}, "operator": "gte", "value": 2, "within": "30d"}`),
			want: func(p *fxProf) bool { return booked30(p) >= 2 }},

		{name: "spec example", rules: specRules, want: specWant},
		{name: "spec example in club-b", tenant: compileOther, rules: specRules, want: specWant},
	}
	covered := map[string]bool{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			node := fxChecked(t, c.rules)
			fxCover(node, covered)
			fx.expect(t, c, node)
		})
	}
	t.Run("every operator of every kind is covered", func(t *testing.T) {
		kinds := map[segment.Kind]bool{}
		for _, f := range segment.Fields {
			kinds[f.Kind] = true
		}
		for k := range kinds {
			for _, op := range k.Operators() {
				assert.True(t, covered[string(k)+"/"+string(op)], "no case for %s %s", k, op)
			}
		}
		for _, op := range segment.CountOperators() {
			assert.True(t, covered["activity/"+string(op)], "no case for an activity count %s", op)
		}
	})

	// The smart kinds, through the rules they stand for.
	th := func(v float64) *float64 { return &v }
	days := func(n int) *int { return &n }
	smart := []struct {
		name  string
		smart segment.Smart
		want  func(p *fxProf) bool
	}{
		{"LIKELY_TO_CHURN default", segment.Smart{Kind: segment.LikelyToChurn}, func(p *fxProf) bool {
			return p.status == "ACTIVE" && (p.lifecycle == "MEMBER" || p.lifecycle == "LAPSED") && numGte(p.churn, segment.DefaultChurnThreshold)
		}},
		{"LIKELY_TO_CHURN threshold", segment.Smart{Kind: segment.LikelyToChurn, Threshold: th(cRef)}, func(p *fxProf) bool {
			return p.status == "ACTIVE" && (p.lifecycle == "MEMBER" || p.lifecycle == "LAPSED") && numGte(p.churn, cRef)
		}},
		{"HIGHLY_ENGAGED default", segment.Smart{Kind: segment.HighlyEngaged}, func(p *fxProf) bool {
			return p.status == "ACTIVE" && numGte(p.engagement, segment.DefaultEngagementThreshold)
		}},
		{"HIGHLY_ENGAGED threshold", segment.Smart{Kind: segment.HighlyEngaged, Threshold: th(eLow)}, func(p *fxProf) bool {
			return p.status == "ACTIVE" && numGte(p.engagement, eLow)
		}},
		{"LAPSING_MEMBERS default", segment.Smart{Kind: segment.LapsingMembers}, func(p *fxProf) bool {
			l := p.last()
			return p.status == "ACTIVE" && p.lifecycle == "MEMBER" && (l == nil || !fxWithin(*l, segment.DefaultInactiveDays*fxDay))
		}},
		{"LAPSING_MEMBERS inactiveDays", segment.Smart{Kind: segment.LapsingMembers, InactiveDays: days(5)}, func(p *fxProf) bool {
			l := p.last()
			return p.status == "ACTIVE" && p.lifecycle == "MEMBER" && (l == nil || !fxWithin(*l, 5*fxDay))
		}},
	}
	for _, c := range smart {
		t.Run("smart/"+c.name, func(t *testing.T) {
			node, problems := c.smart.Rules().Check()
			require.Empty(t, problems)
			rules, _ := json.Marshal(c.smart.Rules())
			fx.expect(t, compileCase{rules: string(rules), want: c.want}, node)
		})
	}

	// A SMART definition is its kind's rules AND the rules staff add.
	t.Run("smart/definition with rules", func(t *testing.T) {
		d := segment.Definition{Name: "Engaged Gold", Type: segment.Smartly, Smart: &segment.Smart{Kind: segment.HighlyEngaged, Threshold: th(eLow)},
			Combinator: "AND", Rules: []segment.Rule{{Field: "membershipTier", Operator: segment.Eq, Value: json.RawMessage(`"Gold"`)}}}
		node, problems := d.Check()
		require.Empty(t, problems)
		fx.expect(t, compileCase{rules: fmt.Sprintf("%+v", d), want: func(p *fxProf) bool {
			return p.status == "ACTIVE" && numGte(p.engagement, eLow) && p.tier == "Gold"
		}}, node)
	})
}
