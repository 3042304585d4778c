-- +goose Up
-- The daily job's index held the rows with a non-zero window through a
-- predicate on the two counts, and a column an index's predicate reads is
-- an indexed column: every event that moved a count (most do) made the
-- metrics update write new entries in both indexes rather than update the
-- row in place (4 WAL records a row, against 2 for customer_scores). The
-- predicate now reads one stored flag, which stays true as the counts
-- move, so those updates are HOT (TestUpgradeMetricsHotUpdates). Adding
-- the column rewrites the table once.
ALTER TABLE customer_metrics
    ADD COLUMN rolling boolean GENERATED ALWAYS AS (activity_count_30d > 0 OR booking_count_30d > 0) STORED;
DROP INDEX customer_metrics_due;
CREATE INDEX customer_metrics_due ON customer_metrics (windows_as_of) WHERE rolling;

-- +goose Down
DROP INDEX customer_metrics_due;
ALTER TABLE customer_metrics DROP COLUMN rolling;
CREATE INDEX customer_metrics_due ON customer_metrics (windows_as_of)
    WHERE activity_count_30d > 0 OR booking_count_30d > 0;
