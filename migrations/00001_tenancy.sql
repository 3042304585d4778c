-- +goose Up
-- Row-level security for every read model. Queries served to API clients run
-- as the NOLOGIN role crm_tenant with the setting crm.tenant_id pinned for the
-- transaction, so a query that forgets its tenant filter still sees only its
-- tenant's rows. Projectors and migrations run as the owning role, which the
-- policies do not bind (no FORCE), because they write for many tenants.

-- +goose StatementBegin
DO $$
BEGIN
    CREATE ROLE crm_tenant NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL; -- roles are cluster-wide: another database created it first
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
DO $$
BEGIN
    EXECUTE format('GRANT crm_tenant TO %I', current_user);
EXCEPTION WHEN OTHERS THEN
    NULL; -- already a member, or granted concurrently
END
$$;
-- +goose StatementEnd

GRANT USAGE ON SCHEMA public TO crm_tenant;

-- crm_current_tenant answers the tenant pinned for this transaction, or NULL.
-- +goose StatementBegin
CREATE FUNCTION crm_current_tenant() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT NULLIF(current_setting('crm.tenant_id', true), '')
$$;
-- +goose StatementEnd

-- crm_enable_tenancy puts a read-model table under the tenant policy: every
-- table with a tenant_id column calls it in the migration that creates it.
-- +goose StatementBegin
CREATE FUNCTION crm_enable_tenancy(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('DROP POLICY IF EXISTS tenant_isolation ON %s', tbl);
    EXECUTE format('CREATE POLICY tenant_isolation ON %s USING (tenant_id = crm_current_tenant()) WITH CHECK (tenant_id = crm_current_tenant())', tbl);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO crm_tenant', tbl);
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION IF EXISTS crm_enable_tenancy(regclass);
DROP FUNCTION IF EXISTS crm_current_tenant();
