package httpapi

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/clubcrm/crm/adapters/auth"
	"github.com/clubcrm/crm/commands"
	"github.com/clubcrm/crm/domain/scoring"
	"github.com/clubcrm/crm/readmodels/customers"
	"github.com/clubcrm/crm/readmodels/scores"
)

// ScoreEndpoints is what the scoring endpoints use.
type ScoreEndpoints struct {
	Reader scores.Reader
	Models *commands.ScoringModels
}

// MaxTrendDays bounds the trend GET /analytics/engagement answers.
const MaxTrendDays = 730

// RegisterScores adds the score explanation, the scoring model and the
// engagement analytics.
func (a *API) RegisterScores(s ScoreEndpoints) {
	a.Handle(Route{Method: http.MethodGet, Path: "/customers/{id}/score", Summary: "A profile's engagement score and churn risk, explained component by component",
		Tags: []string{"scoring"}, Role: auth.RoleRead, Response: scores.Explanation{}, Errors: []int{http.StatusNotFound}},
		func(w http.ResponseWriter, r *http.Request) error {
			id, err := pathID(r, "id")
			if err != nil {
				return err
			}
			p, _ := auth.FromContext(r.Context())
			x, err := s.Reader.Explain(r.Context(), p.Tenant, id)
			switch {
			case errors.Is(err, customers.ErrNotFound):
				return NotFound("customer")
			case errors.Is(err, scores.ErrNotScored):
				return NewProblem(http.StatusNotFound, "not-scored", "Not scored yet", "the scores projector has not reached this profile yet; retry shortly")
			case err != nil:
				return err
			}
			WriteJSON(w, http.StatusOK, x)
			return nil
		})

	a.Handle(Route{Method: http.MethodGet, Path: "/scoring/model", Summary: "The tenant's scoring model in force, or ?version=N of its history",
		Tags: []string{"scoring"}, Role: auth.RoleRead, Response: scoring.Versioned{}, Errors: []int{http.StatusNotFound},
		Query: []Param{{Name: "version", Type: "integer", Description: "a past version (0: the built-in model); the current one when left out"}}},
		func(w http.ResponseWriter, r *http.Request) error {
			p, _ := auth.FromContext(r.Context())
			if v := r.URL.Query().Get("version"); v != "" {
				n, err := strconv.ParseUint(v, 10, 64)
				if err != nil {
					return Invalid(FieldError{"version", "must be a whole number of at least 0"})
				}
				m, err := s.Models.At(r.Context(), p.Tenant, n)
				if errors.Is(err, commands.ErrNoSuchVersion) {
					return NotFound("scoring model version")
				}
				if err != nil {
					return err
				}
				WriteJSON(w, http.StatusOK, m)
				return nil
			}
			m, err := s.Models.Current(r.Context(), p.Tenant)
			if err != nil {
				return err
			}
			WriteJSON(w, http.StatusOK, m)
			return nil
		})

	a.Handle(Route{Method: http.MethodPut, Path: "/scoring/model",
		Summary: "Replace the tenant's scoring model (fields left out take the built-in values); a new version, rescored in the background",
		Tags:    []string{"scoring"}, Role: auth.RoleAdmin, Request: scoring.Model{}, Response: scoring.Versioned{}, Idempotent: true},
		func(w http.ResponseWriter, r *http.Request) error {
			m := scoring.Default()
			if err := Decode(r, &m); err != nil {
				return err
			}
			act := actor(r)
			v, err := s.Models.Put(r.Context(), act.Tenant, act.Subject, act.CommandID, m)
			var bad commands.ErrInvalidModel
			if errors.As(err, &bad) {
				return Invalid(problemFields(bad)...)
			}
			if err != nil {
				return err
			}
			WriteJSON(w, http.StatusOK, v)
			return nil
		})

	a.Handle(Route{Method: http.MethodGet, Path: "/analytics/engagement",
		Summary: "Distributions of engagement and churn risk, counts by lifecycle stage and tier, and the daily trend",
		Tags:    []string{"analytics"}, Role: auth.RoleRead, Response: scores.Analytics{},
		Query: []Param{{Name: "days", Type: "integer", Description: "how many days of trend, 1-" + strconv.Itoa(MaxTrendDays) + " (default 30)"}}},
		func(w http.ResponseWriter, r *http.Request) error {
			days := 30
			if v := r.URL.Query().Get("days"); v != "" {
				n, err := strconv.Atoi(v)
				if err != nil || n < 1 || n > MaxTrendDays {
					return Invalid(FieldError{"days", "must be a whole number from 1 to " + strconv.Itoa(MaxTrendDays)})
				}
				days = n
			}
			p, _ := auth.FromContext(r.Context())
			out, err := s.Reader.Analytics(r.Context(), p.Tenant, days)
			if err != nil {
				return err
			}
			WriteJSON(w, http.StatusOK, out)
			return nil
		})
}
