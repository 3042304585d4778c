-- +goose Up
-- The activity timeline and staff notes, projected from customer-* streams
-- by the "timeline" and "notes" projectors (readmodels/activities).
-- Disposable: `crm projections rebuild timeline` (or notes) recreates them
-- from the event log.

-- One row per activity: every upstream event recorded on a person, and the
-- CRM's own (notes, tag changes, merges, manual activities). customer_id is
-- the profile the activity belongs to now: when a profile is merged away
-- its activities move to the survivor, so the survivor's timeline holds
-- both histories; profile_id keeps the profile whose stream recorded it.
CREATE TABLE activities (
    tenant_id      text        NOT NULL,
    id             uuid        NOT NULL, -- the event id (a note's id, a manual activity's id)
    customer_id    uuid        NOT NULL,
    profile_id     uuid        NOT NULL,
    type           text        NOT NULL,
    category       text        NOT NULL,
    channel        text,
    title          text        NOT NULL,
    description    text,
    metadata       jsonb       NOT NULL DEFAULT '{}',
    source_service text        NOT NULL,
    source_id      text,
    -- when it happened (the upstream occurredAt): the timeline's order,
    -- so an event that arrives late lands in its place
    occurred_at    timestamptz NOT NULL,
    recorded_at    timestamptz NOT NULL,
    stream_version bigint      NOT NULL, -- the event's version in profile_id's stream
    PRIMARY KEY (tenant_id, id)
);
-- Newest first, keyset paged: the page is one range scan of this index.
-- Full-text search (q) is evaluated on the customer's rows only, so it
-- needs no index of its own.
CREATE INDEX activities_timeline ON activities (tenant_id, customer_id, occurred_at DESC, id DESC);
SELECT crm_enable_tenancy('activities');

-- What the timeline remembers of each profile between events, to describe
-- a change against what was known before it ("Handicap 12.4 -> 11.8"), and
-- where a merged-away profile went.
CREATE TABLE timeline_state (
    tenant_id   text  NOT NULL,
    customer_id uuid  NOT NULL,
    state       jsonb NOT NULL,
    PRIMARY KEY (tenant_id, customer_id)
);
SELECT crm_enable_tenancy('timeline_state');

-- Staff notes. Deleted notes keep their row (deleted_at) and every edit
-- stays in the profile's event history.
CREATE TABLE customer_notes (
    tenant_id   text        NOT NULL,
    id          uuid        NOT NULL,
    customer_id uuid        NOT NULL, -- the survivor after merges
    profile_id  uuid        NOT NULL, -- the profile it was written on
    author      text        NOT NULL,
    body        text        NOT NULL,
    pinned      boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    edited_by   text,
    deleted_at  timestamptz,
    deleted_by  text,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX customer_notes_list ON customer_notes (tenant_id, customer_id, pinned DESC, created_at DESC, id DESC);
SELECT crm_enable_tenancy('customer_notes');

-- +goose Down
DROP TABLE IF EXISTS customer_notes;
DROP TABLE IF EXISTS timeline_state;
DROP TABLE IF EXISTS activities;
