-- +goose Up
-- A segment belongs to one tenant, but PostgreSQL takes the columns of
-- (tenant_id, segment_id) for independent, and so expects a segment to
-- hold a fortieth of its members when there are forty clubs. For the few
-- profiles a batch moved, the membership projector's statement
-- (readmodels/segments.refreshSQL) then read the segment's every member
-- through the primary key's (tenant_id, segment_id) prefix, where one
-- probe of segment_members_customer a profile would do: at 500 members,
-- 900 buffers a statement, two fifths of PostgreSQL's buffer reads while
-- events about known people flowed (docs/performance.md, 2026-12-06,
-- evening), and growing with the segment. With the dependency recorded,
-- the estimate is the segment's own size and the probes win. ANALYZE
-- (autovacuum's) builds the statistics.
CREATE STATISTICS segment_members_segment_tenant (dependencies) ON tenant_id, segment_id FROM segment_members;
ANALYZE segment_members;

-- +goose Down
DROP STATISTICS IF EXISTS segment_members_segment_tenant;
