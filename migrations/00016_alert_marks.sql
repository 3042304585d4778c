-- +goose Up
-- The marks of profiles whose scores changed since the alerting
-- (readmodels/scores.Alerter) looked at them move from a column of
-- customer_scores to a table of their own. As a column, clearing a mark
-- was an UPDATE that could not be HOT (the column is the predicate of a
-- partial index), so every cleared row was a new row version with an
-- entry in each of the table's six indexes: about 200 ms per 2,000 marks,
-- 10 s after a rebuild of 200,000 profiles (docs/performance.md). A mark
-- is now a row here, set by the scores projector and job and deleted by
-- the alerting: one narrow heap tuple and one index entry.
CREATE TABLE score_alert_due (
    tenant_id   text NOT NULL,
    customer_id uuid NOT NULL,
    PRIMARY KEY (tenant_id, customer_id)
);
SELECT crm_enable_tenancy('score_alert_due');
INSERT INTO score_alert_due (tenant_id, customer_id)
    SELECT tenant_id, customer_id FROM customer_scores WHERE alert_due;
DROP INDEX customer_scores_alert_due;
ALTER TABLE customer_scores DROP COLUMN alert_due;

-- +goose Down
ALTER TABLE customer_scores ADD COLUMN alert_due boolean NOT NULL DEFAULT false;
UPDATE customer_scores s SET alert_due = true
    FROM score_alert_due d WHERE d.tenant_id = s.tenant_id AND d.customer_id = s.customer_id;
ALTER TABLE customer_scores ALTER COLUMN alert_due SET DEFAULT true;
CREATE INDEX customer_scores_alert_due ON customer_scores (tenant_id, customer_id) WHERE alert_due;
DROP TABLE IF EXISTS score_alert_due;
