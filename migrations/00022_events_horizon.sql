-- +goose Up
-- The bound below which readers of the global log may read events (see
-- eventstore/postgres). It was the xmin of the reader's snapshot: every
-- transaction still running held the log back, the projectors' own included,
-- so an event appended while a projector's batch was open stayed unread
-- until that batch committed. Only an appender can still write an event
-- with a smaller key, and every appender holds an advisory lock in the
-- store's namespace ("crme", 1668443493) from before its transaction has an
-- id until it ends. The horizon is therefore the oldest transaction running
-- at the reader's snapshot that is appending or whose role is not known;
-- with none, the snapshot's xmax.
--
-- The locks are read first, then the backends: a transaction found running
-- with its id and without a lock in the second read held none in the first
-- either, so it is not an appender. One that ended in between is not found
-- running and counts as an appender: the horizon stays at it for this read
-- and passes it at the next. Backends are read afresh
-- (pg_stat_clear_snapshot): a transaction keeps its first read of them.
-- Prepared transactions, and backends whose ids are hidden, count as
-- appenders. The function is STABLE so that pg_current_snapshot() is the
-- calling statement's snapshot.
-- +goose StatementBegin
CREATE FUNCTION events_horizon() RETURNS xid8
LANGUAGE plpgsql STABLE AS $$
DECLARE
    snap      pg_snapshot := pg_current_snapshot();
    appending int[];
    horizon   xid8;
BEGIN
    SELECT coalesce(array_agg(pid), '{}') INTO appending FROM pg_locks
    WHERE locktype = 'advisory' AND classid = 1668443493 AND objsubid = 2
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database());
    PERFORM pg_stat_clear_snapshot();
    SELECT min(x) INTO horizon FROM pg_snapshot_xip(snap) AS x
    WHERE NOT EXISTS (
        SELECT FROM pg_stat_get_activity(NULL) AS a
        WHERE a.backend_xid = (x::text::bigint % 4294967296)::text::xid
          AND a.pid <> ALL (appending));
    RETURN coalesce(horizon, pg_snapshot_xmax(snap));
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION events_horizon();
