-- +goose Up
-- Segments (docs/segments.md). Definitions are event-sourced (segment-<id>
-- streams) and projected by the "segments" projector into segments and
-- segment_static_members, both rebuildable. Membership is a function of
-- the read models, not of the log: the "segment-membership" projector and
-- every refresh keep segment_members, segment_state and segment_outbox in
-- one transaction, and a refresh is their rebuild.

-- One row per segment, deleted ones kept (deleted_at) so their ids answer
-- 404 and their history stays readable.
CREATE TABLE segments (
    tenant_id   text        NOT NULL,
    id          uuid        NOT NULL,
    version     bigint      NOT NULL, -- the segment stream's version
    name        text        NOT NULL,
    description text        NOT NULL DEFAULT '',
    type        text        NOT NULL CHECK (type IN ('STATIC', 'DYNAMIC', 'SMART')),
    -- the rules as staff wrote them: {"combinator", "rules": [...]}
    rules       jsonb       NOT NULL,
    smart       jsonb,      -- SMART: {"kind", parameters}
    created_by  text        NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    deleted_at  timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX segments_list ON segments (tenant_id, created_at DESC, id DESC) WHERE deleted_at IS NULL;
SELECT crm_enable_tenancy('segments');

-- The members staff put in STATIC segments (segment.members.changed); a
-- merged-away profile's entries move to its survivor.
CREATE TABLE segment_static_members (
    tenant_id   text        NOT NULL,
    segment_id  uuid        NOT NULL,
    customer_id uuid        NOT NULL,
    added_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, segment_id, customer_id)
);
SELECT crm_enable_tenancy('segment_static_members');

-- CustomerSegmentMembership: who is in each segment now, and since when.
CREATE TABLE segment_members (
    tenant_id   text        NOT NULL,
    segment_id  uuid        NOT NULL,
    customer_id uuid        NOT NULL,
    since       timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, segment_id, customer_id)
);
-- The segments of the profiles an event batch touched.
CREATE INDEX segment_members_customer ON segment_members (tenant_id, customer_id);
SELECT crm_enable_tenancy('segment_members');

-- Per segment: the member count, the number of membership changes so far
-- (each crm.segment.membership.changed carries its sequence), the last
-- full refresh, and the Messaging sync (snapshot id and the sequence of
-- the last message sent for it).
CREATE TABLE segment_state (
    tenant_id        text        NOT NULL,
    segment_id       uuid        NOT NULL,
    members          bigint      NOT NULL DEFAULT 0,
    changes          bigint      NOT NULL DEFAULT 0,
    refreshed_at     timestamptz,
    refreshed_ms     int,
    sync_snapshot_id uuid,
    sync_sequence    bigint      NOT NULL DEFAULT 0,
    synced_at        timestamptz,
    PRIMARY KEY (tenant_id, segment_id)
);
SELECT crm_enable_tenancy('segment_state');

-- Messages to publish, written in the transaction that changed the
-- membership: crm.segment.membership.changed to crm.events, snapshots and
-- diffs to messaging.segments. The relay publishes them in id order and
-- deletes what it published a while ago.
CREATE TABLE segment_outbox (
    id           bigserial   PRIMARY KEY,
    tenant_id    text        NOT NULL,
    topic        text        NOT NULL,
    message_id   uuid        NOT NULL,
    type         text        NOT NULL,
    payload      jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX segment_outbox_pending ON segment_outbox (id) WHERE published_at IS NULL;
CREATE INDEX segment_outbox_published ON segment_outbox (published_at) WHERE published_at IS NOT NULL;
SELECT crm_enable_tenancy('segment_outbox');
GRANT USAGE ON SEQUENCE segment_outbox_id_seq TO crm_tenant;

-- +goose Down
DROP TABLE IF EXISTS segment_outbox;
DROP TABLE IF EXISTS segment_state;
DROP TABLE IF EXISTS segment_members;
DROP TABLE IF EXISTS segment_static_members;
DROP TABLE IF EXISTS segments;
