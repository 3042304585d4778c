package httpapi_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/adapters/auth"
	"github.com/clubcrm/crm/adapters/httpapi"
	"github.com/clubcrm/crm/commands"
	"github.com/clubcrm/crm/domain/scoring"
	"github.com/clubcrm/crm/projections"
	"github.com/clubcrm/crm/readmodels/customers/customerstest"
	"github.com/clubcrm/crm/readmodels/scores"
)

func TestScoreEndpoints(t *testing.T) {
	v, err := auth.NewVerifier(context.Background(), auth.Config{HMACSecret: secret})
	require.NoError(t, err)
	api := httpapi.New(slog.New(slog.NewTextHandler(io.Discard, nil)), v, prometheus.NewRegistry())
	env := customerstest.New(t)
	models := &commands.ScoringModels{Store: env.Store}
	api.RegisterScores(httpapi.ScoreEndpoints{Reader: scores.Reader{DB: env.Pool, Models: models}, Models: models})
	reader := staffToken(t, "viewer", "club-a", auth.RoleRead)
	admin := staffToken(t, "boss", "club-a", auth.RoleAdmin)
	other := staffToken(t, "viewer", "club-b", auth.RoleRead)

	jane := env.Ingest("club-a", nil, "member.created", `{"memberId": 42, "email": "jane@mail.com", "membershipTier": "Gold", "membershipStatus": "ACTIVE"}`)
	jane = env.Ingest("club-a", jane, "teetime.booked", `{"playerId": "p-7", "bookingId": "b-1"}`)
	env.Project(0)
	path := "/api/v1/customers/" + jane.ID.String() + "/score"
	assertProblem(t, do(t, api, "GET", path, reader, ""), 404, "") // not scored yet

	project := func() {
		p := scores.Projector{Models: models}
		require.NoError(t, pgx.BeginFunc(context.Background(), env.Pool, func(tx pgx.Tx) error {
			return p.Apply(context.Background(), tx, projections.Tables{scores.Table: scores.Table, scores.DueTable: scores.DueTable}, env.Events())
		}))
	}
	project()
	rec := do(t, api, "GET", path, reader, "")
	require.Equal(t, 200, rec.Code, rec.Body.String())
	x := decodeBody[scores.Explanation](t, rec)
	assert.Equal(t, jane.ID, x.CustomerID)
	assert.Equal(t, 0, x.ModelVersion)
	require.Len(t, x.Engagement.Components, 5)
	require.Len(t, x.ChurnRisk.Components, 5)
	sum := 0.0
	for _, c := range x.Engagement.Components {
		sum += c.Contribution
	}
	assert.InDelta(t, x.EngagementScore, sum, 0.06, "the contributions add up to the score")
	assert.Equal(t, "recency", x.Engagement.Components[0].Name)
	assert.Equal(t, 0.3, x.Engagement.Components[0].Weight)
	assertProblem(t, do(t, api, "GET", path, other, ""), 404, "")

	// The model: the built-in one, then a new version.
	rec = do(t, api, "GET", "/api/v1/scoring/model", reader, "")
	require.Equal(t, 200, rec.Code, rec.Body.String())
	assert.Equal(t, uint64(0), decodeBody[scoring.Versioned](t, rec).Version)
	assertProblem(t, do(t, api, "PUT", "/api/v1/scoring/model", reader, `{}`), 403, "")
	rec = do(t, api, "PUT", "/api/v1/scoring/model", admin, `{"engagement": {"weights": {"recency": 0.6, "frequency": 0.25, "monetary": 0.2, "breadth": 0.15, "depth": 0.1}, "recencyHalfLifeDays": 0}, "alerts": {"churnHigh": 50, "churnClear": 70}}`)
	require.Equal(t, 400, rec.Code, rec.Body.String())
	fields := map[string]string{}
	for _, e := range decodeBody[httpapi.Problem](t, rec).Errors {
		fields[e.Field] = e.Reason
	}
	assert.Equal(t, map[string]string{
		"engagement.weights":             "must sum to 1, not 1.3",
		"engagement.recencyHalfLifeDays": "must be greater than 0",
		"alerts.churnClear":              "must not be above alerts.churnHigh",
	}, fields, "every problem at once, by path")
	assertProblem(t, do(t, api, "PUT", "/api/v1/scoring/model", admin, `{"engagement": {"halfLife": 3}}`), 400, "halfLife")

	rec = do(t, api, "PUT", "/api/v1/scoring/model", admin, `{"engagement": {"recencyHalfLifeDays": 14}}`)
	require.Equal(t, 200, rec.Code, rec.Body.String())
	m := decodeBody[scoring.Versioned](t, rec)
	assert.Equal(t, uint64(1), m.Version)
	assert.Equal(t, 14.0, m.Model.Engagement.RecencyHalfLifeDays)
	assert.Equal(t, 0.3, m.Model.Engagement.Weights.Recency, "fields left out take the built-in values")
	assert.Equal(t, "boss", m.ChangedBy)
	rec = do(t, api, "GET", "/api/v1/scoring/model?version=0", reader, "")
	assert.Equal(t, 30.0, decodeBody[scoring.Versioned](t, rec).Model.Engagement.RecencyHalfLifeDays)
	assertProblem(t, do(t, api, "GET", "/api/v1/scoring/model?version=7", reader, ""), 404, "")
	assertProblem(t, do(t, api, "GET", "/api/v1/scoring/model?version=x", reader, ""), 400, "version")
	rec = do(t, api, "GET", "/api/v1/scoring/model", other, "")
	assert.Equal(t, uint64(0), decodeBody[scoring.Versioned](t, rec).Version, "another tenant's model is its own")

	// Analytics.
	rec = do(t, api, "GET", "/api/v1/analytics/engagement?days=7", reader, "")
	require.Equal(t, 200, rec.Code, rec.Body.String())
	a := decodeBody[scores.Analytics](t, rec)
	assert.Equal(t, 1, a.Profiles)
	assert.Len(t, a.Engagement.Buckets, 10)
	assert.Equal(t, []scores.Group{{Key: "MEMBER", Profiles: 1, AverageEngagement: x.EngagementScore, AverageChurnRisk: x.ChurnRiskScore}}, a.ByLifecycleStage)
	assertProblem(t, do(t, api, "GET", "/api/v1/analytics/engagement?days=0", reader, ""), 400, "days")
	rec = do(t, api, "GET", "/api/v1/analytics/engagement", other, "")
	assert.Equal(t, 0, decodeBody[scores.Analytics](t, rec).Profiles)
}
