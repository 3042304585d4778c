-- +goose Up
-- Stream names are identifiers, compared byte by byte: a category is then
-- one range of names ("customer" up to "customer."), which the
-- stream-by-stream read of a rebuild selects and sorts by (eventstore/postgres
-- ReadCategory). Under a linguistic collation (en_US.UTF-8, say) the
-- punctuation that separates a category from its ids is ignored at first
-- and the names of a category need not be contiguous. The indexes on
-- stream are rebuilt; the table is not rewritten. The change drops the
-- column's statistics, which the planner needs to see that a category is
-- most of the log (and read it with a sequential scan, not the index):
-- they are gathered again at once.
ALTER TABLE events ALTER COLUMN stream TYPE text COLLATE "C";
ANALYZE events (stream);

-- +goose Down
ALTER TABLE events ALTER COLUMN stream TYPE text COLLATE "default";
