-- +goose Up
-- customers.state and timeline_state.state hold a projector's folded state
-- between batches: only that projector reads or writes them, and never a
-- field of them in SQL. As jsonb, PostgreSQL parsed every document written
-- and printed every document read: for the customers row, about 40 µs of a
-- backend's time per profile written and 15 µs per profile read, a fifth
-- of the customers projector's statement time while ingesting
-- (docs/performance.md, 2026-12-06, morning). As bytea they are stored and
-- returned as the projector wrote them (the same JSON, from encoding/json),
-- and a rebuild writes the same bytes as the live projector.
ALTER TABLE customers ALTER COLUMN state TYPE bytea USING convert_to(state::text, 'UTF8');
ALTER TABLE timeline_state ALTER COLUMN state TYPE bytea USING convert_to(state::text, 'UTF8');

-- +goose Down
ALTER TABLE customers ALTER COLUMN state TYPE jsonb USING convert_from(state, 'UTF8')::jsonb;
ALTER TABLE timeline_state ALTER COLUMN state TYPE jsonb USING convert_from(state, 'UTF8')::jsonb;
