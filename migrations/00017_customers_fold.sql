-- +goose Up
-- customers.state is the folded profile (customer.Profile) at the row's
-- version. The ingest command handler starts loading a profile from it and
-- reads only the events after it, rather than the whole stream
-- (readmodels/customers.Snapshots): at 200,000 people, the stream reads of
-- profiles not in the command side's cache were the largest statement of
-- the event → visible phase (docs/performance.md). fold records how the
-- state was folded (customer.FoldVersion), so a state folded by an older
-- Apply is never taken for one folded by this build's. Existing rows keep
-- 0 until the projector writes them again or a rebuild does, and are read
-- from their streams until then.
ALTER TABLE customers ADD COLUMN fold smallint NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE customers DROP COLUMN fold;
