-- +goose Up
-- The scores projector (readmodels/scores) keeps, beside each profile's two
-- scores, the inputs they are computed from (per-day counts over the last
-- 400 days, binary: domain/scoring.Inputs), the day they were computed for
-- and a revision the projector moves on every write, so the daily rescoring
-- job never overwrites inputs newer than those it read. alert_due marks
-- rows whose scores changed since the alerting looked at them.
ALTER TABLE customer_scores
    ADD COLUMN inputs    bytea   NOT NULL DEFAULT '\x',
    ADD COLUMN scored_on date    NOT NULL DEFAULT '1970-01-01',
    ADD COLUMN revision  bigint  NOT NULL DEFAULT 1,
    ADD COLUMN alert_due boolean NOT NULL DEFAULT true;
ALTER TABLE customer_scores ALTER COLUMN computed_at SET DEFAULT now();
CREATE INDEX customer_scores_due ON customer_scores (scored_on);
CREATE INDEX customer_scores_alert_due ON customer_scores (tenant_id, customer_id) WHERE alert_due;
CREATE INDEX customer_scores_engagement ON customer_scores (tenant_id, engagement_score);
CREATE INDEX customer_scores_churn ON customer_scores (tenant_id, churn_risk_score);
CREATE INDEX customer_scores_model ON customer_scores (tenant_id, model_version);

-- What the alerting (readmodels/scores.Alerter) remembers between score
-- changes: whether churn risk is high, the highest engagement since the
-- last drop, and how many events of each kind it caused. It is the state
-- of a process that writes events, not a read model: rebuilds leave it.
CREATE TABLE score_alerts (
    tenant_id      text             NOT NULL,
    customer_id    uuid             NOT NULL,
    churn_high     boolean          NOT NULL DEFAULT false,
    crossings      int              NOT NULL DEFAULT 0,
    engagement_ref double precision,
    ref_model      int              NOT NULL DEFAULT 0,
    drops          int              NOT NULL DEFAULT 0,
    updated_at     timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, customer_id)
);
SELECT crm_enable_tenancy('score_alerts');

-- One row per tenant per day: the distribution of the scores that day,
-- taken by the scores job after the day's rescoring. A record of what the
-- scores were, under the model of the day; kept, never rebuilt.
CREATE TABLE score_snapshots (
    tenant_id          text             NOT NULL,
    day                date             NOT NULL,
    profiles           int              NOT NULL,
    avg_engagement     double precision NOT NULL,
    avg_churn_risk     double precision NOT NULL,
    high_churn_risk    int              NOT NULL,
    engagement_buckets int[]            NOT NULL,
    churn_buckets      int[]            NOT NULL,
    model_version      int              NOT NULL,
    taken_at           timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, day)
);
SELECT crm_enable_tenancy('score_snapshots');

-- +goose Down
DROP TABLE IF EXISTS score_snapshots;
DROP TABLE IF EXISTS score_alerts;
DROP INDEX IF EXISTS customer_scores_model;
DROP INDEX IF EXISTS customer_scores_churn;
DROP INDEX IF EXISTS customer_scores_engagement;
DROP INDEX IF EXISTS customer_scores_alert_due;
DROP INDEX IF EXISTS customer_scores_due;
ALTER TABLE customer_scores DROP COLUMN alert_due, DROP COLUMN revision, DROP COLUMN scored_on, DROP COLUMN inputs;
