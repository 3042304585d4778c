-- +goose Up
-- Projector state (see package projections). A projector writes its read
-- model and its row here in one transaction, so the checkpoint always says
-- exactly which events the read model holds.
--
-- Positions are eventstore.Position values; their uint64 parts are stored
-- bit for bit in bigint columns (real positions stay below 2^63) and are
-- compared in Go, never in SQL.
CREATE TABLE projection_checkpoints (
    name              text        PRIMARY KEY,
    commit_position   bigint      NOT NULL DEFAULT 0,
    prepare_position  bigint      NOT NULL DEFAULT 0,
    -- recorded time of the last event the read model holds, for staleness
    event_recorded_at timestamptz,
    events_applied    bigint      NOT NULL DEFAULT 0,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    -- the error of the latest failed attempt, cleared by the next success
    last_error        text,
    last_error_at     timestamptz,
    rebuilt_at        timestamptz
);

-- A rebuild in progress: how far its shadow tables have got. The row goes
-- away in the transaction that swaps the shadow tables in.
CREATE TABLE projection_rebuilds (
    name             text        PRIMARY KEY,
    state            text        NOT NULL CHECK (state IN ('building', 'swapping')),
    commit_position  bigint      NOT NULL DEFAULT 0,
    prepare_position bigint      NOT NULL DEFAULT 0,
    events_applied   bigint      NOT NULL DEFAULT 0,
    started_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Every committed checkpoint move is announced on crm_projection_checkpoints
-- as "name commit prepare", so that readers waiting for their own writes
-- (Runtime.WaitFor) in any process wake without polling.
-- +goose StatementBegin
CREATE FUNCTION crm_projection_checkpoint_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('crm_projection_checkpoints',
        NEW.name || ' ' || NEW.commit_position || ' ' || NEW.prepare_position);
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER projection_checkpoints_notify
    AFTER UPDATE OF commit_position, prepare_position ON projection_checkpoints
    FOR EACH ROW
    WHEN ((OLD.commit_position, OLD.prepare_position) IS DISTINCT FROM (NEW.commit_position, NEW.prepare_position))
    EXECUTE FUNCTION crm_projection_checkpoint_notify();

-- +goose Down
DROP TABLE IF EXISTS projection_rebuilds;
DROP TABLE IF EXISTS projection_checkpoints;
DROP FUNCTION IF EXISTS crm_projection_checkpoint_notify();
