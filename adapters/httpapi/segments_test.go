package httpapi_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/adapters/auth"
	"github.com/clubcrm/crm/adapters/httpapi"
	"github.com/clubcrm/crm/commands"
	"github.com/clubcrm/crm/readmodels/activities"
	"github.com/clubcrm/crm/readmodels/customers"
	"github.com/clubcrm/crm/readmodels/customers/customerstest"
	"github.com/clubcrm/crm/readmodels/metrics"
	"github.com/clubcrm/crm/readmodels/scores"
	"github.com/clubcrm/crm/readmodels/segments"
)

func TestSegmentEndpoints(t *testing.T) {
	v, err := auth.NewVerifier(context.Background(), auth.Config{HMACSecret: secret})
	require.NoError(t, err)
	api := httpapi.New(slog.New(slog.NewTextHandler(io.Discard, nil)), v, prometheus.NewRegistry())
	env := customerstest.New(t)
	api.RegisterSegments(httpapi.SegmentEndpoints{Segments: &commands.Segments{Store: env.Store}, Reader: segments.Reader{DB: env.Pool},
		Refresher: &segments.Refresher{Pool: env.Pool}, Unknown: customers.Reader{DB: env.Pool}.Unknown})
	project := func() {
		env.Apply(customers.Projector{}, activities.Projector{}, metrics.Projector{}, scores.Projector{},
			segments.Projector{}, segments.MembershipProjector{})
	}
	reader := staffToken(t, "viewer", "club-a", auth.RoleRead)
	admin := staffToken(t, "boss", "club-a", auth.RoleAdmin)
	other := staffToken(t, "boss", "club-b", auth.RoleAdmin)

	jane := env.Ingest("club-a", nil, "member.created", `{"memberId": 42, "email": "jane@mail.com", "membershipTier": "Gold", "membershipStatus": "ACTIVE"}`)
	jane = env.Ingest("club-a", jane, "contactPreference.updated", `{"contactId": "c-42", "email": "jane@mail.com", "emailOptIn": true}`)
	sam := env.Ingest("club-a", nil, "member.created", `{"memberId": 43, "email": "sam@mail.com", "membershipTier": "Silver", "membershipStatus": "ACTIVE"}`)
	project()

	// The catalogue of fields and operators.
	rec := do(t, api, "GET", "/api/v1/segments/fields", reader, "")
	require.Equal(t, 200, rec.Code, rec.Body.String())
	fields := decodeBody[httpapi.SegmentFields](t, rec)
	assert.Contains(t, fields.SmartKinds, "LIKELY_TO_CHURN")
	assert.NotEmpty(t, fields.Fields)

	// Every problem at once, by path.
	bad := `{"name": "", "type": "DYNAMIC", "rules": [
		{"field": "handicap", "operator": "lt", "value": "low"},
		{"field": "shoeSize", "operator": "eq", "value": 9},
		{"combinator": "OR", "rules": [{"field": "membershipTier", "operator": "between", "value": [1, 2]}]},
		{"activity": {"type": "teetime.booked"}, "operator": "gte", "value": -1, "within": "30 days"}]}`
	rec = do(t, api, "POST", "/api/v1/segments", admin, bad)
	require.Equal(t, 400, rec.Code, rec.Body.String())
	got := map[string]string{}
	for _, e := range decodeBody[httpapi.Problem](t, rec).Errors {
		got[e.Field] = e.Reason
	}
	assert.Equal(t, map[string]string{
		"name":                       "is required",
		"rules[0].value":             "must be a number for lt",
		"rules[1].field":             `unknown field "shoeSize"`,
		"rules[2].rules[0].operator": "between is not an operator of membershipTier (a string): use one of eq, neq, in, nin, contains, startsWith, exists, notExists",
		"rules[3].value":             "must be a whole number of at least 0 for gte",
		"rules[3].within":            `"30 days" is not a duration: use a whole number and m, h, d or w, such as "30d" or "12h"`,
	}, got)
	assertProblem(t, do(t, api, "POST", "/api/v1/segments", reader, `{"name": "x", "type": "STATIC"}`), 403, "")
	assertProblem(t, do(t, api, "POST", "/api/v1/segments", admin, `{"name": "x", "type": "STATIC", "colour": "red"}`), 400, "colour")

	// Preview saves nothing.
	gold := `{"field": "membershipTier", "operator": "in", "value": ["Gold", "Platinum"]}`
	rec = do(t, api, "POST", "/api/v1/segments/preview", admin, `{"rules": [`+gold+`], "sample": 5}`)
	require.Equal(t, 200, rec.Code, rec.Body.String())
	pv := decodeBody[segments.Preview](t, rec)
	assert.Equal(t, int64(1), pv.Total)
	require.Len(t, pv.Sample, 1)
	assert.Equal(t, jane.ID, pv.Sample[0].CustomerID)

	// Create: the answer carries the position to wait for.
	rec = do(t, api, "POST", "/api/v1/segments", admin, `{"name": "Gold and Platinum", "type": "DYNAMIC", "rules": [`+gold+`]}`)
	require.Equal(t, 201, rec.Code, rec.Body.String())
	assert.NotEmpty(t, rec.Header().Get(httpapi.PositionHeader))
	created := decodeBody[segments.View](t, rec)
	assert.Equal(t, "DYNAMIC", created.Type)
	assert.Equal(t, "AND", created.Combinator)
	assert.Equal(t, "/api/v1/segments/"+created.ID.String(), rec.Header().Get("Location"))
	project()
	path := "/api/v1/segments/" + created.ID.String()
	rec = do(t, api, "GET", path, reader, "")
	require.Equal(t, 200, rec.Code, rec.Body.String())
	view := decodeBody[segments.View](t, rec)
	assert.Equal(t, int64(1), view.Membership.Members)
	assertProblem(t, do(t, api, "GET", path, other, ""), 404, "")
	assertProblem(t, do(t, api, "GET", "/api/v1/segments/not-a-uuid", reader, ""), 404, "")

	rec = do(t, api, "GET", path+"/members?limit=10", reader, "")
	require.Equal(t, 200, rec.Code, rec.Body.String())
	members := decodeBody[httpapi.List[segments.Member]](t, rec)
	require.Len(t, members.Items, 1)
	assert.Equal(t, jane.ID, members.Items[0].CustomerID)
	assert.Equal(t, "c-42", *members.Items[0].MessagingContactID)
	assert.Nil(t, members.NextCursor)

	rec = do(t, api, "GET", "/api/v1/segments?type=dynamic", reader, "")
	require.Equal(t, 200, rec.Code, rec.Body.String())
	assert.Len(t, decodeBody[httpapi.List[segments.View]](t, rec).Items, 1)
	assertProblem(t, do(t, api, "GET", "/api/v1/segments?type=fancy", reader, ""), 400, "type")

	// Redefine: Silver too; recomputed whole.
	rec = do(t, api, "PATCH", path, admin, `{"rules": [{"field": "membershipTier", "operator": "in", "value": ["Gold", "Silver"]}]}`)
	require.Equal(t, 200, rec.Code, rec.Body.String())
	assert.Equal(t, int64(2), decodeBody[segments.View](t, rec).Version)
	assertProblem(t, do(t, api, "PATCH", path, admin, `{"type": "STATIC"}`), 422, "type")
	project()
	rec = do(t, api, "POST", path+"/refresh", admin, "")
	require.Equal(t, 200, rec.Code, rec.Body.String())
	res := decodeBody[segments.Result](t, rec)
	assert.Equal(t, int64(2), res.Total)
	assert.Zero(t, res.Added+res.Removed, "the redefinition was applied already")
	assertProblem(t, do(t, api, "POST", path+"/refresh", reader, ""), 403, "")
	assertProblem(t, do(t, api, "POST", path+"/refresh", other, ""), 404, "")

	rec = do(t, api, "POST", path+"/sync-to-messaging", admin, "")
	require.Equal(t, 200, rec.Code, rec.Body.String())
	sync := decodeBody[segments.SyncResult](t, rec)
	assert.Equal(t, int64(2), sync.Members)
	assert.Equal(t, int64(1), sync.Contacts)
	assert.Equal(t, int64(1), sync.WithoutContact)

	// STATIC members: only live profiles of the tenant.
	rec = do(t, api, "POST", "/api/v1/segments", admin, `{"name": "Board", "type": "STATIC"}`)
	require.Equal(t, 201, rec.Code, rec.Body.String())
	board := "/api/v1/segments/" + decodeBody[segments.View](t, rec).ID.String()
	stranger := uuid.New()
	rec = do(t, api, "POST", board+"/members", admin, `{"add": ["`+sam.ID.String()+`", "`+stranger.String()+`"]}`)
	assertProblem(t, rec, 422, "add[1]")
	rec = do(t, api, "POST", board+"/members", admin, `{"add": ["`+sam.ID.String()+`"]}`)
	require.Equal(t, 200, rec.Code, rec.Body.String())
	assert.Equal(t, []uuid.UUID{sam.ID}, decodeBody[httpapi.MembersChanged](t, rec).Added)
	assertProblem(t, do(t, api, "POST", path+"/members", admin, `{"add": ["`+sam.ID.String()+`"]}`), 422, "type")
	assertProblem(t, do(t, api, "POST", board+"/members", admin, `{}`), 400, "")
	project()
	rec = do(t, api, "GET", board+"/members", reader, "")
	require.Equal(t, 200, rec.Code, rec.Body.String())
	assert.Equal(t, sam.ID, decodeBody[httpapi.List[segments.Member]](t, rec).Items[0].CustomerID)

	// Delete: gone for reads and commands alike.
	rec = do(t, api, "DELETE", path, admin, "")
	require.Equal(t, 204, rec.Code, rec.Body.String())
	project()
	assertProblem(t, do(t, api, "GET", path, reader, ""), 404, "")
	assertProblem(t, do(t, api, "GET", path+"/members", reader, ""), 404, "")
	assertProblem(t, do(t, api, "DELETE", path, admin, ""), 404, "")
	assertProblem(t, do(t, api, "POST", path+"/sync-to-messaging", admin, ""), 404, "")
}
