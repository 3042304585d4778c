-- +goose Up
-- The customer profile read model, projected from customer-* streams by
-- the "customers" projector. Disposable: crm projections rebuild customers
-- recreates it from the event log. Computed metrics and scores live in
-- tables of their own projectors, joined by (tenant_id, id), so rebuilding
-- one read model never wipes another's columns.
CREATE TABLE customers (
    tenant_id            text        NOT NULL,
    id                   uuid        NOT NULL,
    version              bigint      NOT NULL,
    auth_user_id         text,
    email                text,
    phone_number         text,
    scl_member_id        bigint,
    teetime_player_id    text,
    messaging_contact_id text,
    external_ids         jsonb       NOT NULL DEFAULT '{}',
    aliases              jsonb       NOT NULL DEFAULT '[]',
    first_name           text,
    last_name            text,
    display_name         text,
    status               text        NOT NULL,
    lifecycle_stage      text        NOT NULL,
    tags                 text[]      NOT NULL DEFAULT '{}',
    handicap             numeric(4,1),
    home_club_id         text,
    membership_tier      text,
    membership_status    text,
    email_opt_in         boolean     NOT NULL DEFAULT false,
    sms_opt_in           boolean     NOT NULL DEFAULT false,
    push_opt_in          boolean     NOT NULL DEFAULT false,
    whatsapp_opt_in      boolean     NOT NULL DEFAULT false,
    merged_into          uuid,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL,
    -- the folded aggregate (customer.Profile as JSON): the projector applies
    -- each new event to it, so the columns always equal a fold of the stream
    state                jsonb       NOT NULL,
    -- for fuzzy duplicate detection: same email domain, same folded surname
    email_domain         text GENERATED ALWAYS AS (lower(split_part(email, '@', 2))) STORED,
    last_name_folded     text GENERATED ALWAYS AS (lower(regexp_replace(coalesce(last_name, ''), '[^[:alpha:]]', '', 'g'))) STORED,
    search               tsvector GENERATED ALWAYS AS (
        to_tsvector('simple'::regconfig,
            coalesce(first_name, '') || ' ' || coalesce(last_name, '') || ' ' || coalesce(display_name, '') || ' ' ||
            coalesce(email, '') || ' ' || replace(coalesce(email, ''), '@', ' ') || ' ' ||
            translate(split_part(coalesce(email, ''), '@', 1), '._-+', '    ') || ' ' ||
            coalesce(phone_number, '') || ' ' || ltrim(coalesce(phone_number, ''), '+'))
    ) STORED,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX customers_created ON customers (tenant_id, created_at DESC, id DESC);
CREATE INDEX customers_lifecycle ON customers (tenant_id, lifecycle_stage);
CREATE INDEX customers_status ON customers (tenant_id, status);
CREATE INDEX customers_tier ON customers (tenant_id, membership_tier);
CREATE INDEX customers_club ON customers (tenant_id, home_club_id);
CREATE INDEX customers_tags ON customers USING gin (tags);
CREATE INDEX customers_search ON customers USING gin (search);
CREATE INDEX customers_fuzzy ON customers (tenant_id, email_domain, last_name_folded);
SELECT crm_enable_tenancy('customers');

-- Pairs of profiles that may be one person, raised by identity resolution
-- (conflicting keys, similar names at one email domain) for staff review.
CREATE TABLE duplicate_candidates (
    tenant_id   text        NOT NULL,
    id          uuid        NOT NULL, -- derived from the ordered pair
    customer_a  uuid        NOT NULL,
    customer_b  uuid        NOT NULL,
    key_kind    text        NOT NULL,
    key_value   text        NOT NULL,
    reason      text        NOT NULL,
    confidence  int         NOT NULL,
    caused_by   text        NOT NULL,
    status      text        NOT NULL DEFAULT 'OPEN' CHECK (status IN ('OPEN', 'MERGED', 'DISMISSED')),
    resolved_by text,
    created_at  timestamptz NOT NULL,
    resolved_at timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX duplicate_candidates_open ON duplicate_candidates (tenant_id, status, created_at DESC, id);
SELECT crm_enable_tenancy('duplicate_candidates');

-- +goose Down
DROP TABLE IF EXISTS duplicate_candidates;
DROP TABLE IF EXISTS customers;
