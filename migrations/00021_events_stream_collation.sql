-- +goose Up
-- Stream names are identifiers, compared byte by byte: a category is then
-- one range of events_stream_version ("customer" up to "customer."), which
-- the stream-by-stream read of a rebuild scans (eventstore/postgres
-- ReadCategory). Under a linguistic collation (en_US.UTF-8, say) the
-- punctuation that separates a category from its ids is ignored at first
-- and the names of a category need not be contiguous. The indexes on
-- stream are rebuilt; the table is not rewritten.
ALTER TABLE events ALTER COLUMN stream TYPE text COLLATE "C";

-- +goose Down
ALTER TABLE events ALTER COLUMN stream TYPE text COLLATE "default";
