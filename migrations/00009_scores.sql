-- +goose Up
-- Engagement and churn-risk scores of each profile, kept by the "scores"
-- projector (readmodels/scores) and joined into the customers query by
-- (tenant_id, customer_id) like the metrics: rebuilding the scores never
-- wipes another read model's columns. Segments read the two scores from
-- here.
CREATE TABLE customer_scores (
    tenant_id        text             NOT NULL,
    customer_id      uuid             NOT NULL,
    engagement_score double precision NOT NULL,
    churn_risk_score double precision NOT NULL,
    model_version    int              NOT NULL,
    computed_at      timestamptz      NOT NULL,
    PRIMARY KEY (tenant_id, customer_id)
);
SELECT crm_enable_tenancy('customer_scores');

-- +goose Down
DROP TABLE IF EXISTS customer_scores;
