-- +goose Up
-- Most events change a profile's version, state, timestamps or counters and
-- none of the columns the read models' secondary indexes hold. PostgreSQL
-- then updates the row in place (a HOT update: no new index entries) if the
-- new version fits on the row's page. With pages filled to the brim it
-- rarely does, and every such update wrote an entry in each index: ten for
-- customers. A customers row is about 1.6 KB, so 30% of each page is kept
-- free for one new version; the narrow per-profile rows need less.
-- Existing pages keep their fill until rewritten (a rebuild copies the
-- setting to its shadow tables).
ALTER TABLE customers SET (fillfactor = 70);
ALTER TABLE customer_metrics SET (fillfactor = 85);
ALTER TABLE customer_scores SET (fillfactor = 85);
ALTER TABLE timeline_state SET (fillfactor = 85);
ALTER TABLE customer_activity_days SET (fillfactor = 90);

-- +goose Down
ALTER TABLE customers RESET (fillfactor);
ALTER TABLE customer_metrics RESET (fillfactor);
ALTER TABLE customer_scores RESET (fillfactor);
ALTER TABLE timeline_state RESET (fillfactor);
ALTER TABLE customer_activity_days RESET (fillfactor);
