-- +goose Up
-- Denormalised activity metrics of each profile, projected from customer-*
-- streams by the "metrics" projector (readmodels/metrics) and joined into
-- the customers query by (tenant_id, customer_id), so rebuilding one read
-- model never wipes another's columns.

-- Per profile: when the person last did something, the rolling 30-day
-- counts (as of windows_as_of, moved daily by the scheduler), and payments
-- received per currency (minor units).
CREATE TABLE customer_metrics (
    tenant_id          text        NOT NULL,
    customer_id        uuid        NOT NULL,
    last_activity_at   timestamptz,
    activity_count_30d int         NOT NULL DEFAULT 0,
    booking_count_30d  int         NOT NULL DEFAULT 0,
    windows_as_of      date        NOT NULL,
    lifetime_cents     jsonb       NOT NULL DEFAULT '{}', -- {"ZAR": 125000}
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, customer_id)
);
-- The rows the daily job must move: only non-zero windows can change as
-- days pass without events.
CREATE INDEX customer_metrics_due ON customer_metrics (windows_as_of)
    WHERE activity_count_30d > 0 OR booking_count_30d > 0;
SELECT crm_enable_tenancy('customer_metrics');

-- Activities and bookings per profile per day (UTC) of occurrence: the
-- 30-day sums are recomputed from these.
CREATE TABLE customer_activity_days (
    tenant_id   text NOT NULL,
    customer_id uuid NOT NULL,
    day         date NOT NULL,
    activities  int  NOT NULL DEFAULT 0,
    bookings    int  NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, customer_id, day)
);
SELECT crm_enable_tenancy('customer_activity_days');

-- Payments received per tenant and currency: the tenant's main currency is
-- the one most payments were made in, and lifetimeValue is expressed in it.
CREATE TABLE tenant_currencies (
    tenant_id text   NOT NULL,
    currency  text   NOT NULL,
    payments  bigint NOT NULL DEFAULT 0,
    cents     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, currency)
);
SELECT crm_enable_tenancy('tenant_currencies');

-- +goose Down
DROP TABLE IF EXISTS tenant_currencies;
DROP TABLE IF EXISTS customer_activity_days;
DROP TABLE IF EXISTS customer_metrics;
