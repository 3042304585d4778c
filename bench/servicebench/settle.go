package servicebench

import (
	"context"
	"log/slog"
	"time"
)

// settleLimit bounds the wait for the scheduler's catch-up before the
// queries; past it they are measured anyway, and the report says so.
const settleLimit = 15 * time.Minute

// sqlUnsettled counts what the scheduler of a freshly started crm serve
// still has to catch up on (all of it in UTC days, as the jobs count):
// scores not yet computed for today, score changes the alerter has not
// decided on, and 30-day metric windows not yet moved to today. After a
// rebuild every score is due an alert decision, and on a database written
// on an earlier day everything is due a rescoring. The metrics condition
// is spelled out rather than read from the rolling column (migration
// 00020), so that the harness still runs a crm built before it (-crm).
const sqlUnsettled = `SELECT
    (SELECT count(*) FROM customer_scores WHERE scored_on < (now() AT TIME ZONE 'UTC')::date),
    (SELECT count(*) FROM score_alert_due),
    (SELECT count(*) FROM customer_metrics WHERE windows_as_of < (now() AT TIME ZONE 'UTC')::date
        AND (activity_count_30d > 0 OR booking_count_30d > 0))`

// Settle is how the query phase's crm serve caught up before its figures
// were taken.
type Settle struct {
	// At the start: scores to compute for today, scores due an alert
	// decision, metric windows to move.
	Rescore int64   `json:"rescore"`
	Alerts  int64   `json:"alerts"`
	Windows int64   `json:"windows"`
	Seconds float64 `json:"seconds"`
	// Settled is false when the limit passed first.
	Settled bool `json:"settled"`
}

// settle waits until srv's scheduler has caught up (sqlUnsettled all
// zero) and its projectors have passed the events that produced (score
// alerts), so that the query figures measure the service at rest rather
// than its catch-up, which is reported on its own.
func (b *bench) settle(ctx context.Context, srv *server) (Settle, error) {
	began := time.Now()
	var s Settle
	logged := time.Now()
	for first := true; ; first = false {
		if err := srv.alive(); err != nil {
			return s, err
		}
		var rescore, alerts, windows int64
		if err := b.pool.QueryRow(ctx, sqlUnsettled).Scan(&rescore, &alerts, &windows); err != nil {
			return s, err
		}
		if first {
			s.Rescore, s.Alerts, s.Windows = rescore, alerts, windows
		}
		if rescore+alerts+windows == 0 {
			s.Settled = true
			break
		}
		if time.Since(began) > settleLimit {
			b.log.Warn("the scheduler has not caught up; measuring the queries anyway",
				slog.Int64("rescore", rescore), slog.Int64("alerts", alerts), slog.Int64("windows", windows))
			break
		}
		if time.Since(logged) > 5*time.Second {
			logged = time.Now()
			b.log.Info("waiting for the scheduler to catch up", slog.Int64("rescore", rescore), slog.Int64("alerts", alerts), slog.Int64("windows", windows))
		}
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return s, err
		}
	}
	if _, err := b.waitCaughtUp(ctx, srv, time.Now()); err != nil {
		return s, err
	}
	s.Seconds = time.Since(began).Seconds()
	return s, nil
}
