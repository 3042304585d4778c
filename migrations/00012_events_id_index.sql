-- +goose Up
-- The held-id look-up of an append (an append retried with the same event
-- ids skips them) goes through a plain index on id instead of the unique
-- (stream, id) constraint.
--
-- Why: both (stream, version) and (stream, id) are keyed by the stream name
-- ("customer-<uuid>", 45 bytes), so every event inserted touches a random
-- leaf page of two indexes of ~100 bytes a row; at ten million events they
-- were 1.0 GB and 1.1 GB, far beyond shared_buffers, and after every
-- checkpoint the first touch of each leaf page writes an 8 KB full-page
-- image to the WAL: ~0.9 full-page images and ~6 KB of WAL per event, with
-- sessions waiting on WALSync/WALWrite (docs/performance.md). A 16-byte
-- key makes the id index about a third of that size, so far fewer pages
-- are dirtied per checkpoint.
--
-- Nothing is weakened: appends serialise per stream on an advisory lock
-- and look the ids up after taking it, in the same transaction as the
-- insert (eventstore/postgres/append.go), so no two appends can both find
-- an id missing from a stream and write it; the store is the only writer of
-- this table. Event ids are derived from the stream, so an id is in
-- practice held by one stream only, and the look-up (an index probe on id,
-- then the stream compared) reads one row.
CREATE INDEX events_id ON events (id);
ALTER TABLE events DROP CONSTRAINT events_stream_id;

-- +goose Down
ALTER TABLE events ADD CONSTRAINT events_stream_id UNIQUE (stream, id);
DROP INDEX IF EXISTS events_id;
