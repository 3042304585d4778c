-- +goose Up
-- Command-side state of identity resolution. Unlike read models these
-- tables are written before events are appended ("reserve, then append"),
-- because uniqueness must hold at the moment two handlers decide about the
-- same new person; each can still be rebuilt from the customer streams.

-- identity_keys links normalised identifiers to profiles. Every kind but
-- phoneNumber is unique per tenant; a phone may be shared by a household, up
-- to the tenant's sharedPhoneLimit.
CREATE TABLE identity_keys (
    tenant_id   text        NOT NULL,
    kind        text        NOT NULL,
    value       text        NOT NULL,
    customer_id uuid        NOT NULL,
    caused_by   text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, kind, value, customer_id)
);
CREATE UNIQUE INDEX identity_keys_unique ON identity_keys (tenant_id, kind, value) WHERE kind <> 'phoneNumber';
CREATE INDEX identity_keys_customer ON identity_keys (tenant_id, customer_id);
SELECT crm_enable_tenancy('identity_keys');

-- upstream_inbox remembers every upstream event already turned into domain
-- events, by its envelope id, so a redelivery changes nothing.
CREATE TABLE upstream_inbox (
    tenant_id    text        NOT NULL,
    event_id     text        NOT NULL,
    type         text        NOT NULL,
    stream       text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, event_id)
);
SELECT crm_enable_tenancy('upstream_inbox');

-- idempotency_keys answers a command retried with the same Idempotency-Key
-- with the response it first got.
CREATE TABLE idempotency_keys (
    tenant_id     text        NOT NULL,
    key           text        NOT NULL,
    request_hash  text        NOT NULL,
    status        int         NOT NULL,
    response      jsonb       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);
SELECT crm_enable_tenancy('idempotency_keys');

-- +goose Down
DROP TABLE IF EXISTS idempotency_keys;
DROP TABLE IF EXISTS upstream_inbox;
DROP TABLE IF EXISTS identity_keys;
