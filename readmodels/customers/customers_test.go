package customers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/domain/identity"
	"github.com/clubcrm/crm/projections"
	"github.com/clubcrm/crm/readmodels/customers"
	"github.com/clubcrm/crm/readmodels/customers/customerstest"
)

const (
	tenantA = "club-a"
	tenantB = "club-b"
)

var liveTables = projections.Tables{"customers": "customers", "duplicate_candidates": "duplicate_candidates"}

func ptr[T any](v T) *T { return &v }

// dump answers both tables as JSON, generated columns included, for
// comparing whole read models.
func dump(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	var s string
	err := pool.QueryRow(context.Background(), `
		SELECT jsonb_build_object(
			'customers', (SELECT coalesce(jsonb_agg(to_jsonb(c) ORDER BY c.tenant_id, c.id), '[]') FROM customers c),
			'duplicates', (SELECT coalesce(jsonb_agg(to_jsonb(d) ORDER BY d.tenant_id, d.id), '[]') FROM duplicate_candidates d))::text`).Scan(&s)
	require.NoError(t, err)
	return s
}

func TestProjectionEqualsFold(t *testing.T) {
	ctx := context.Background()
	env := customerstest.New(t)
	jane := env.Ingest(tenantA, nil, "member.created", `{"memberId": 42, "authUserId": "idp|jane", "email": " Jane.Doe@Mail.co.za", "phoneNumber": "082 555 1234",
		"firstName": "Jane", "lastName": "Doe", "membershipTier": "Gold", "membershipStatus": "active", "homeClubId": "club-1", "externalIds": {"golfRsaId": "G-1"}}`)
	jane = env.Ingest(tenantA, jane, "contactPreference.updated", `{"contactId": "c-1", "email": "jane@work.co.za", "emailOptIn": true, "smsOptIn": true, "whatsappOptIn": true}`)
	jane = env.Ingest(tenantA, jane, "player.created", `{"playerId": "p-1", "handicap": 11.8, "homeClubId": "club-1"}`)
	jane = env.Ingest(tenantA, jane, "tier.changed", `{"memberId": 42, "fromTier": "Gold", "toTier": "Platinum"}`)
	evs, err := jane.Edit(customer.Edited{DisplayName: ptr("Janey"), Actor: "staff-1"})
	require.NoError(t, err)
	jane = env.Record(jane, evs, "staff-1", "edit-1")

	guest := env.Ingest(tenantA, nil, "player.created", `{"playerId": "p-2", "firstName": "Sam", "lastName": "Guest", "handicap": -2.5}`)
	evs, err = guest.Edit(customer.Edited{Status: ptr(customer.StatusArchived), Actor: "staff-1"})
	require.NoError(t, err)
	guest = env.Record(guest, evs, "staff-1", "edit-2")
	// Tags travel to the table as array literals: words PostgreSQL would
	// read as NULL, spaces, symbols and letters beyond ASCII must survive.
	evs, err = guest.ChangeTags([]string{"vip", "null", "Junior  Section", "ünï", "x/y & z+1", "a:b.c_d-e"}, nil, "staff-1")
	require.NoError(t, err)
	guest = env.Record(guest, evs, "staff-1", "tags-1")

	source := env.Ingest(tenantA, nil, "message.sent", `{"contactId": "c-9", "email": "jd@other.com", "phoneNumber": "+44 7911 123456"}`)
	jane, source = env.Merge(jane, source, "staff-2")
	elsewhere := env.Ingest(tenantB, nil, "member.created", `{"memberId": 42, "email": "jane.doe@mail.co.za", "firstName": "Jane"}`)

	env.Project(1) // one event a batch
	r := customers.Reader{DB: env.Pool}
	for _, p := range []*customer.Profile{jane, guest, source, elsewhere} {
		got, err := r.Get(ctx, p.TenantID, p.ID)
		require.NoError(t, err)
		assert.Equal(t, customers.FromProfile(p), got, "profile %s", p.ID)
	}

	got, err := r.Get(ctx, tenantA, jane.ID)
	require.NoError(t, err)
	b, err := json.Marshal(got)
	require.NoError(t, err)
	assert.JSONEq(t, `{"id":"`+jane.ID.String()+`","tenantId":"club-a","authUserId":"idp|jane","email":"jane.doe@mail.co.za","phoneNumber":"+27825551234",
		"sclMemberId":42,"teetimePlayerId":"p-1","messagingContactId":"c-1","externalIds":{"mcaV1ZaId":null,"mcaV1UkId":null,"golfRsaId":"G-1"},
		"firstName":"Jane","lastName":"Doe","displayName":"Janey","status":"ACTIVE","lifecycleStage":"MEMBER","tags":[],
		"engagementScore":null,"churnRiskScore":null,"lifetimeValue":null,"lifetimeValueCurrency":null,"lastActivityAt":null,"activityCount30d":0,"bookingCount30d":0,
		"handicap":11.8,"homeClubId":"club-1","membershipTier":"Platinum","membershipStatus":"ACTIVE",
		"emailOptIn":true,"smsOptIn":true,"pushOptIn":false,"whatsappOptIn":true,
		"aliases":[{"kind":"email","value":"jane@work.co.za"},{"kind":"email","value":"jd@other.com"},{"kind":"phoneNumber","value":"+447911123456"}],
		"version":`+jsonNumber(jane.Version)+`,"createdAt":"`+jsonTime(t, got.CreatedAt)+`","updatedAt":"`+jsonTime(t, got.UpdatedAt)+`","mergedInto":null}`, string(b))
	assert.Equal(t, "MERGED", mustGet(t, r, tenantA, source.ID).Status)
	assert.Equal(t, &jane.ID, mustGet(t, r, tenantA, source.ID).MergedInto)

	// The same log projected in one batch from nothing gives the same tables,
	// and a batch applied again changes nothing.
	want := dump(t, env.Pool)
	_, err = env.Pool.Exec(ctx, `TRUNCATE customers, duplicate_candidates`)
	require.NoError(t, err)
	all := env.Events()
	env.ApplyBatch(liveTables, all)
	assert.Equal(t, want, dump(t, env.Pool))
	env.ApplyBatch(liveTables, all[:len(all)/2])
	assert.Equal(t, want, dump(t, env.Pool))

}

// TestRebuildAgrees checks the projector through the projections runtime:
// a rebuild replays the log into shadow tables and swaps them in, so every
// write must go through the tables it is handed.
func TestRebuildAgrees(t *testing.T) {
	ctx := context.Background()
	env := customerstest.New(t)
	p := seed(t, env)
	evs, err := p.jane.ClearDuplicate(p.john.ID, "dismissed", "staff")
	require.NoError(t, err)
	env.Record(p.jane, evs, "staff", "dismiss-1")
	env.Ingest(tenantA, p.guest, "handicap.updated", `{"playerId": "p-7", "handicap": 3.2}`,
		identity.Conflict{Other: p.jane.ID, Key: identity.Key{Kind: identity.Phone, Value: "+27825551234"}, Reason: "r", Confidence: 85})
	// A pair flagged on the stream whose name sorts last and dismissed on
	// the one that sorts first: a rebuild reading stream by stream must
	// still apply the two in log order.
	early, late := p.obrien, p.john
	if customer.Stream(late.ID) < customer.Stream(early.ID) {
		early, late = late, early
	}
	late = env.Ingest(tenantA, late, "member.updated", fmt.Sprintf(`{"memberId": %d, "membershipTier": "Bronze"}`, *late.SCLMemberID),
		identity.Conflict{Other: early.ID, Key: identity.Key{Kind: identity.Email, Value: "shared@golf.ie"}, Reason: "r", Confidence: 90})
	evs, err = early.ClearDuplicate(late.ID, "dismissed", "staff")
	require.NoError(t, err)
	env.Record(early, evs, "staff", "dismiss-2")
	env.Project(0)
	want := dump(t, env.Pool)
	var status string
	require.NoError(t, env.Pool.QueryRow(ctx, `SELECT status FROM duplicate_candidates WHERE id = $1`,
		customers.PairID(tenantA, early.ID, late.ID)).Scan(&status))
	require.Equal(t, customers.DuplicateDismissed, status)

	// The runtime reads the log as subscribers do: an event shows once no
	// transaction on the server that began before it is still open. Other
	// tests sharing the server may hold one for a while.
	all := env.Events()
	last := all[len(all)-1].Position
	deadline := time.Now().Add(15 * time.Second)
	for {
		head, err := env.Store.Head(ctx)
		require.NoError(t, err)
		if !head.Less(last) {
			break
		}
		if time.Now().After(deadline) {
			t.Skip("the server kept a transaction open for 15s: the log is not visible to the runtime")
		}
		time.Sleep(50 * time.Millisecond)
	}
	rt, err := projections.New(env.Pool, env.Store, []projections.Projector{customers.Projector{}},
		projections.WithRegisterer(prometheus.NewRegistry()), projections.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), projections.WithProgress(io.Discard))
	require.NoError(t, err)
	defer rt.Close()
	require.NoError(t, rt.Rebuild(ctx, customers.Name))
	assert.Equal(t, want, dump(t, env.Pool))
}

func jsonNumber(v uint64) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func jsonTime(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	var s string
	require.NoError(t, json.Unmarshal(b, &s))
	return s
}

func mustGet(t *testing.T, r customers.Reader, tenant string, id uuid.UUID) customers.Customer {
	t.Helper()
	c, err := r.Get(context.Background(), tenant, id)
	require.NoError(t, err)
	return c
}

// people is a small tenant for list tests.
type people struct {
	jane, john, obrien, guest, merged *customer.Profile
}

func seed(t *testing.T, env *customerstest.Env) people {
	var p people
	p.jane = env.Ingest(tenantA, nil, "member.created", `{"memberId": 1, "email": "Jane.Doe@Mail.co.za", "phoneNumber": "082 555 1234", "firstName": "Jane", "lastName": "Doe", "membershipTier": "Gold", "membershipStatus": "active", "homeClubId": "club-1"}`)
	// Tags arrive with merges for now: a merge of nobody in particular gives her one.
	p.jane = env.Record(p.jane, []customer.Event{{Type: customer.TypeMerged, Data: &customer.Merged{SourceID: uuid.New(), Source: json.RawMessage(`{}`), Tags: []string{"vip"}, Actor: "staff"}}}, "staff", "tag-1")
	p.john = env.Ingest(tenantA, nil, "member.created", `{"memberId": 2, "email": "john@smith.org", "phoneNumber": "+44 7911 123456", "firstName": "John", "lastName": "Smith", "membershipTier": "Silver", "membershipStatus": "suspended", "homeClubId": "club-2"}`)
	p.obrien = env.Ingest(tenantA, nil, "member.created", `{"memberId": 3, "email": "rob@golf.ie", "firstName": "Robert", "lastName": "O'Brien-Smith", "membershipTier": "Gold", "membershipStatus": "cancelled", "homeClubId": "club-2"}`)
	p.guest = env.Ingest(tenantA, nil, "player.created", `{"playerId": "p-7", "firstName": "Sam", "lastName": "Guest"}`)
	evs, err := p.guest.Edit(customer.Edited{Status: ptr(customer.StatusArchived), Actor: "staff"})
	require.NoError(t, err)
	p.guest = env.Record(p.guest, evs, "staff", "archive-1")
	p.merged = env.Ingest(tenantA, nil, "message.sent", `{"contactId": "c-5", "email": "johnny@smith.org", "firstName": "Johnny"}`)
	p.john, p.merged = env.Merge(p.john, p.merged, "staff")
	env.Ingest(tenantB, nil, "member.created", `{"memberId": 1, "email": "jane.doe@mail.co.za", "phoneNumber": "082 555 1234", "firstName": "Jane", "lastName": "Doe", "membershipTier": "Gold"}`)
	env.Project(0)
	return p
}

func ids(cs []customers.Customer) []uuid.UUID {
	out := []uuid.UUID{}
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

func TestListSearchAndFilters(t *testing.T) {
	ctx := context.Background()
	env := customerstest.New(t)
	p := seed(t, env)
	r := customers.Reader{DB: env.Pool}
	list := func(f customers.Filter) []uuid.UUID {
		t.Helper()
		got, next, err := r.List(ctx, tenantA, f, customers.Page{})
		require.NoError(t, err, "%+v", f)
		assert.Nil(t, next)
		return ids(got)
	}
	none := []uuid.UUID{}
	cases := []struct {
		name string
		f    customers.Filter
		want []*customer.Profile
	}{
		{"everyone but the merged, newest first", customers.Filter{}, []*customer.Profile{p.guest, p.obrien, p.john, p.jane}},
		{"first name", customers.Filter{Q: "jane"}, []*customer.Profile{p.jane}},
		{"any case", customers.Filter{Q: "JANE"}, []*customer.Profile{p.jane}},
		{"starts of words", customers.Filter{Q: "ja do"}, []*customer.Profile{p.jane}},
		{"every word must match", customers.Filter{Q: "jane smith"}, nil},
		{"last name", customers.Filter{Q: "Smith"}, []*customer.Profile{p.obrien, p.john}},
		{"apostrophe", customers.Filter{Q: "o'brien"}, []*customer.Profile{p.obrien}},
		{"part of a hyphenated name", customers.Filter{Q: "brien"}, []*customer.Profile{p.obrien}},
		{"whole email", customers.Filter{Q: "Jane.Doe@Mail.co.za"}, []*customer.Profile{p.jane}},
		{"email domain", customers.Filter{Q: "mail.co"}, []*customer.Profile{p.jane}},
		{"email local part", customers.Filter{Q: "rob@"}, []*customer.Profile{p.obrien}},
		{"national phone", customers.Filter{Q: "082 555 1234"}, []*customer.Profile{p.jane}},
		{"national phone, no spaces", customers.Filter{Q: "0825551234"}, []*customer.Profile{p.jane}},
		{"start of a national phone", customers.Filter{Q: "082 555"}, []*customer.Profile{p.jane}},
		{"international phone", customers.Filter{Q: "+27 82 555 1234"}, []*customer.Profile{p.jane}},
		{"start of an international phone", customers.Filter{Q: "+44 7911"}, []*customer.Profile{p.john}},
		{"E.164 digits", customers.Filter{Q: "27825551234"}, []*customer.Profile{p.jane}},
		{"national phone of another region", customers.Filter{Q: "07911 123456", Region: "GB"}, []*customer.Profile{p.john}},
		{"nobody", customers.Filter{Q: "zebedee"}, nil},
		{"punctuation only", customers.Filter{Q: " -- ! "}, nil},
		{"status", customers.Filter{Status: "ARCHIVED"}, []*customer.Profile{p.guest}},
		{"merged only when asked for", customers.Filter{Status: "MERGED"}, []*customer.Profile{p.merged}},
		{"lifecycle stage", customers.Filter{LifecycleStage: "LAPSED"}, []*customer.Profile{p.john}},
		{"tag", customers.Filter{Tag: "vip"}, []*customer.Profile{p.jane}},
		{"tier", customers.Filter{MembershipTier: "Gold"}, []*customer.Profile{p.obrien, p.jane}},
		{"home club", customers.Filter{HomeClubID: "club-2"}, []*customer.Profile{p.obrien, p.john}},
		{"search and filters together", customers.Filter{Q: "smith", MembershipTier: "Gold", HomeClubID: "club-2"}, []*customer.Profile{p.obrien}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := none
			for _, w := range c.want {
				want = append(want, w.ID)
			}
			assert.Equal(t, want, list(c.f))
		})
	}

	// What the caller types never becomes tsquery syntax.
	for _, q := range []string{`jane' | 'x`, `\`, `'`, `:*`, `!jane`, `(jane`, `jane & | !`, `jane:*A`, `''''`, `a<->b`, `ж`, "\t\n"} {
		_, _, err := r.List(ctx, tenantA, customers.Filter{Q: q}, customers.Page{})
		assert.NoError(t, err, "q=%q", q)
	}
	got, _, err := r.List(ctx, tenantA, customers.Filter{Q: `jane' | 'smith`}, customers.Page{})
	require.NoError(t, err)
	assert.Empty(t, got, "an injected | must not widen the search")

	// Another tenant sees only its own.
	got, _, err = r.List(ctx, tenantB, customers.Filter{Q: "jane"}, customers.Page{})
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, tenantB, got[0].TenantID)
}

func TestListPagingIsStableUnderInserts(t *testing.T) {
	ctx := context.Background()
	env := customerstest.New(t)
	member := func(n int) string {
		return `{"memberId": ` + jsonNumber(uint64(n)) + `, "firstName": "Member", "lastName": "No` + jsonNumber(uint64(n)) + `"}`
	}
	// Seven profiles opened by one append share their created time, so the
	// id alone orders them: the cursor must carry it.
	var data []string
	for i := 1; i <= 7; i++ {
		data = append(data, member(i))
	}
	first := env.Register(tenantA, data...)
	later := env.Register(tenantA, member(8), member(9), member(10))
	env.Project(0)
	want := append(ids(fromProfiles(later)), ids(fromProfiles(first))...)
	sortNewestFirst(t, env, want)

	r := customers.Reader{DB: env.Pool}
	var seen []uuid.UUID
	page := customers.Page{Limit: 4}
	for n := 0; ; n++ {
		got, next, err := r.List(ctx, tenantA, customers.Filter{}, page)
		require.NoError(t, err)
		seen = append(seen, ids(got)...)
		if next == nil {
			break
		}
		// New profiles arrive between pages: they sort first, so the pages
		// already handed out neither repeat nor skip anyone.
		env.Register(tenantA, member(100+n))
		env.Project(0)
		page.After = next
	}
	assert.Equal(t, want, seen)
}

func fromProfiles(ps []*customer.Profile) []customers.Customer {
	out := make([]customers.Customer, len(ps))
	for i, p := range ps {
		out[i] = customers.FromProfile(p)
	}
	return out
}

// sortNewestFirst orders ids as the list must: created_at, then id, both
// descending.
func sortNewestFirst(t *testing.T, env *customerstest.Env, ids []uuid.UUID) {
	r := customers.Reader{DB: env.Pool}
	created := map[uuid.UUID]customers.Customer{}
	for _, id := range ids {
		created[id] = mustGet(t, r, tenantA, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		a, b := created[ids[i]], created[ids[j]]
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.After(b.CreatedAt)
		}
		return slices.Compare(a.ID[:], b.ID[:]) > 0
	})
}

func TestMergedAndOtherTenants(t *testing.T) {
	ctx := context.Background()
	env := customerstest.New(t)
	p := seed(t, env)
	r := customers.Reader{DB: env.Pool}

	c, err := r.Current(ctx, tenantA, p.merged.ID)
	require.NoError(t, err)
	assert.Equal(t, customers.FromProfile(p.john), c, "a merged-away id answers its survivor")
	c, err = r.Current(ctx, tenantA, p.jane.ID)
	require.NoError(t, err)
	assert.Equal(t, p.jane.ID, c.ID)

	for _, id := range []uuid.UUID{p.jane.ID, uuid.New()} {
		_, err = r.Get(ctx, tenantB, id)
		assert.ErrorIs(t, err, customers.ErrNotFound)
		_, err = r.Current(ctx, tenantB, id)
		assert.ErrorIs(t, err, customers.ErrNotFound)
	}
}

func TestDuplicates(t *testing.T) {
	ctx := context.Background()
	env := customerstest.New(t)
	conflict := func(other *customer.Profile, kind identity.Kind, value, reason string, confidence int) identity.Conflict {
		return identity.Conflict{Other: other.ID, Key: identity.Key{Kind: kind, Value: value}, Reason: reason, Confidence: confidence}
	}
	// a and b: flagged from b's side, then more strongly from a's, dismissed,
	// flagged again: it stays dismissed.
	a := env.Ingest(tenantA, nil, "member.created", `{"memberId": 1, "email": "ann.lee@golf.com", "firstName": "Ann", "lastName": "Lee"}`)
	b := env.Ingest(tenantA, nil, "player.created", `{"playerId": "p-1", "email": "a.lee@golf.com", "firstName": "Ann", "lastName": "Lee"}`,
		conflict(a, identity.Email, "golf.com", "similar name at the same email domain", 60))
	a = env.Ingest(tenantA, a, "member.updated", `{"memberId": 1, "phoneNumber": "082 555 1234"}`,
		conflict(b, identity.Phone, "+27825551234", "phoneNumber belongs to another profile", 85))
	evs, err := a.ClearDuplicate(b.ID, "dismissed", "staff-1")
	require.NoError(t, err)
	a = env.Record(a, evs, "staff-1", "dismiss-1")
	b = env.Ingest(tenantA, b, "handicap.updated", `{"playerId": "p-1", "handicap": 9}`, conflict(a, identity.Email, "golf.com", "similar name at the same email domain", 60))

	// c and d: flagged, then merged.
	c := env.Ingest(tenantA, nil, "member.created", `{"memberId": 2, "email": "carl@x.com", "firstName": "Carl", "lastName": "Diaz"}`)
	d := env.Ingest(tenantA, nil, "player.created", `{"playerId": "p-2", "email": "carl.diaz@x.com", "firstName": "Carl", "lastName": "Diaz"}`,
		conflict(c, identity.Email, "x.com", "similar name at the same email domain", 60))
	c, d = env.Merge(c, d, "staff-2")

	// e and f: flagged, still open. Another tenant has a pair of its own.
	e := env.Ingest(tenantA, nil, "member.created", `{"memberId": 3, "email": "eve@y.com", "firstName": "Eve"}`)
	f := env.Ingest(tenantA, nil, "player.created", `{"playerId": "p-3", "firstName": "Eve"}`, conflict(e, identity.AuthUser, "idp|eve", "shares authUserId but has another sclMemberId", 100))
	g := env.Ingest(tenantB, nil, "member.created", `{"memberId": 3, "email": "eve@y.com"}`)
	env.Ingest(tenantB, nil, "player.created", `{"playerId": "p-3"}`, conflict(g, identity.Email, "y.com", "r", 60))

	env.Project(1)
	perEvent := dump(t, env.Pool)
	_, err = env.Pool.Exec(ctx, `TRUNCATE customers, duplicate_candidates`)
	require.NoError(t, err)
	env.ApplyBatch(liveTables, env.Events())
	assert.Equal(t, perEvent, dump(t, env.Pool), "one batch or one event at a time, the same read model")

	r := customers.Reader{DB: env.Pool}
	ab, err := r.DuplicateByID(ctx, tenantA, customers.PairID(tenantA, a.ID, b.ID))
	require.NoError(t, err)
	assert.Equal(t, customers.PairID(tenantA, b.ID, a.ID), ab.ID, "either order names the pair")
	assert.Equal(t, b.ID, ab.CustomerA, "the side that raised the pair first")
	assert.Equal(t, a.ID, ab.CustomerB)
	assert.Equal(t, customers.DuplicateDismissed, ab.Status)
	assert.Equal(t, 85, ab.Confidence, "the stronger evidence replaced the weaker while open")
	assert.Equal(t, customers.DuplicateKey{Kind: "phoneNumber", Value: "+27825551234"}, ab.Key)
	assert.Equal(t, "phoneNumber belongs to another profile", ab.Reason)
	assert.Equal(t, ptr("staff-1"), ab.ResolvedBy)
	require.NotNil(t, ab.ResolvedAt)
	assert.Equal(t, &customers.Summary{Name: ptr("Ann Lee"), Email: ptr("a.lee@golf.com"), Status: "ACTIVE"}, ab.SummaryA)
	assert.Equal(t, &customers.Summary{Name: ptr("Ann Lee"), Email: ptr("ann.lee@golf.com"), Status: "ACTIVE"}, ab.SummaryB)

	pairs := func(status string) []uuid.UUID {
		var out []uuid.UUID
		page := customers.Page{Limit: 1}
		for {
			got, next, err := r.Duplicates(ctx, tenantA, status, page)
			require.NoError(t, err)
			for _, d := range got {
				out = append(out, d.ID)
			}
			if next == nil {
				return out
			}
			page.After = next
		}
	}
	open, merged, dismissed := customers.PairID(tenantA, e.ID, f.ID), customers.PairID(tenantA, c.ID, d.ID), ab.ID
	assert.Equal(t, []uuid.UUID{open}, pairs(customers.DuplicateOpen))
	assert.Equal(t, []uuid.UUID{merged}, pairs(customers.DuplicateMerged))
	assert.Equal(t, []uuid.UUID{dismissed}, pairs(customers.DuplicateDismissed))
	assert.Equal(t, []uuid.UUID{open, merged, dismissed}, pairs(""), "newest first, across pages")

	cd, err := r.DuplicateByID(ctx, tenantA, merged)
	require.NoError(t, err)
	assert.Equal(t, ptr("staff-2"), cd.ResolvedBy)
	assert.Equal(t, "MERGED", cd.SummaryA.Status, "d, merged away")

	_, err = r.DuplicateByID(ctx, tenantB, open)
	assert.ErrorIs(t, err, customers.ErrNotFound)
	got, _, err := r.Duplicates(ctx, tenantB, "", customers.Page{})
	require.NoError(t, err)
	require.Len(t, got, 1)
}

func TestResolve(t *testing.T) {
	ctx := context.Background()
	env := customerstest.New(t)
	jane := env.Ingest(tenantA, nil, "member.created", `{"memberId": 42, "authUserId": "idp|jane", "email": "jane@mail.com", "phoneNumber": "082 555 1234", "firstName": "Jane"}`)
	jane = env.Ingest(tenantA, jane, "player.created", `{"playerId": "p-1", "email": "jane@mail.com"}`)
	jane = env.Ingest(tenantA, jane, "contactPreference.updated", `{"contactId": "c-1", "email": "jane@mail.com", "emailOptIn": true}`)
	// A household: two profiles share a landline.
	env.Ingest(tenantA, nil, "member.created", `{"memberId": 50, "email": "pat@home.com", "phoneNumber": "011 555 0101"}`)
	env.Ingest(tenantA, nil, "member.created", `{"memberId": 51, "email": "sam@home.com", "phoneNumber": "011 555 0101"}`)
	// A profile merged into Jane.
	old := env.Ingest(tenantA, nil, "message.sent", `{"contactId": "c-2", "email": "jane.old@mail.com"}`)
	jane, old = env.Merge(jane, old, "staff")
	env.Project(0)

	r := customers.Reader{DB: env.Pool}
	s := identity.DefaultSettings()
	key := func(k identity.Kind, v string) identity.Key { return identity.Key{Kind: k, Value: v} }
	cases := []struct {
		keys       []identity.Key
		matchedBy  string
		confidence int
	}{
		{[]identity.Key{key(identity.Email, "jane@mail.com")}, "email", 95},
		{[]identity.Key{key(identity.Phone, "+27825551234")}, "phoneNumber", 85},
		{[]identity.Key{key(identity.Email, "jane@mail.com"), key(identity.Phone, "+27825551234")}, "email+phoneNumber", 99},
		{[]identity.Key{key(identity.AuthUser, "idp|jane")}, "authUserId", 100},
		{[]identity.Key{key(identity.SCLMember, "42")}, "sclMemberId", 100},
		{[]identity.Key{key(identity.TeeTimePlayer, "p-1")}, "teetimePlayerId", 100},
		{[]identity.Key{key(identity.MessagingContact, "c-1")}, "messagingContactId", 100},
		{[]identity.Key{key(identity.Email, "jane.old@mail.com")}, "email", 95}, // moved by the merge
		{[]identity.Key{key(identity.Email, "nobody@mail.com"), key(identity.AuthUser, "idp|jane")}, "authUserId", 100},
	}
	for _, c := range cases {
		res, err := r.Resolve(ctx, tenantA, c.keys, s)
		require.NoError(t, err, "%v", c.keys)
		assert.Equal(t, jane.ID, res.Customer.ID, "%v", c.keys)
		assert.Equal(t, c.matchedBy, res.MatchedBy, "%v", c.keys)
		assert.Equal(t, c.confidence, res.Confidence, "%v", c.keys)
	}

	// A key the index still gives the merged-away profile answers the survivor.
	_, err := env.Pool.Exec(ctx, `INSERT INTO identity_keys (tenant_id, kind, value, customer_id, caused_by) VALUES ($1, 'email', 'stale@mail.com', $2, 'test')`, tenantA, old.ID)
	require.NoError(t, err)
	res, err := r.Resolve(ctx, tenantA, []identity.Key{key(identity.Email, "stale@mail.com")}, s)
	require.NoError(t, err)
	assert.Equal(t, jane.ID, res.Customer.ID)

	for _, keys := range [][]identity.Key{
		{key(identity.Email, "nobody@mail.com")},
		{key(identity.Phone, "+27115550101")}, // shared: decides nothing
		nil,
	} {
		_, err := r.Resolve(ctx, tenantA, keys, s)
		assert.ErrorIs(t, err, customers.ErrNotFound, "%v", keys)
	}
	_, err = r.Resolve(ctx, tenantB, []identity.Key{key(identity.Email, "jane@mail.com")}, s)
	assert.ErrorIs(t, err, customers.ErrNotFound, "another tenant's index is out of sight")
}
