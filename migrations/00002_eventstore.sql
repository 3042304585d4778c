-- +goose Up
-- The event log (see eventstore/postgres). It is system-level: it stays out
-- of row-level security because projectors and command handlers read and
-- write it for every tenant; tenant_id is kept for audits and tenant exports.
--
-- Global order is (tx_id, seq): tx_id is the writing transaction's id, so a
-- reader that only reads rows whose tx_id is below the oldest transaction
-- still running (pg_snapshot_xmin) never passes an event that may yet commit
-- with a smaller key. Ordering by seq alone is not gap-safe: sequence values
-- are taken at insert time and transactions commit in any order.
--
-- Appenders serialise per stream on transaction-scoped advisory locks taken
-- before their transaction has an id (see eventstore/postgres): the id is
-- assigned by the insert, after the previous writer of the stream committed,
-- so tx_id order agrees with each stream's version order. A row lock (FOR
-- UPDATE on a streams table) would not do: locking a row assigns the id
-- before waiting for the lock, and waiters are not granted it in id order.
CREATE TABLE events (
    tx_id       xid8        NOT NULL DEFAULT pg_current_xact_id(),
    seq         bigint      GENERATED ALWAYS AS IDENTITY,
    id          uuid        NOT NULL,
    stream      text        NOT NULL,
    version     bigint      NOT NULL CHECK (version > 0),
    type        text        NOT NULL,
    data        jsonb,
    metadata    jsonb       NOT NULL,
    tenant_id   text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT statement_timestamp(),
    CONSTRAINT events_pkey PRIMARY KEY (tx_id, seq),
    CONSTRAINT events_stream_version UNIQUE (stream, version),
    -- An append retried with the same event ids finds them here and skips them.
    CONSTRAINT events_stream_id UNIQUE (stream, id)
);

-- +goose Down
DROP TABLE IF EXISTS events;
