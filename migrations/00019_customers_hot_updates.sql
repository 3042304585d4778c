-- +goose Up
-- PostgreSQL updates a row in place, writing no index entry (a HOT
-- update), only when no indexed column changed. customers had ten indexes,
-- four of them on one low-cardinality column beside tenant_id: lifecycle
-- stage, status, membership tier, home club. An event moving any of the
-- four (a tier change, a lifecycle step) made its update write an entry in
-- all ten indexes, the GIN search index's dozen lexemes included. The four
-- earned little: a club has thousands of profiles, so a list filtered by
-- one of them walks customers_created (which the list's order needs
-- anyway) and filters, and segments are computed per club. Updates that
-- leave names, contact keys, tags and status (the predicate of
-- customers_tagged) alone are now all HOT. At 1,000 tier changes a second
-- this cut PostgreSQL's processor time per event by about a tenth and the
-- recorded → visible p99 by half (docs/performance.md, "2026-12-06, late").
DROP INDEX IF EXISTS customers_lifecycle;
DROP INDEX IF EXISTS customers_status;
DROP INDEX IF EXISTS customers_tier;
DROP INDEX IF EXISTS customers_club;

-- +goose Down
CREATE INDEX IF NOT EXISTS customers_lifecycle ON customers (tenant_id, lifecycle_stage);
CREATE INDEX IF NOT EXISTS customers_status ON customers (tenant_id, status);
CREATE INDEX IF NOT EXISTS customers_tier ON customers (tenant_id, membership_tier);
CREATE INDEX IF NOT EXISTS customers_club ON customers (tenant_id, home_club_id);
