SET lock_timeout = '5s';
SET statement_timeout = '60s';

-- Row-level security: a row is seen and written only inside a transaction
-- scoped to its tenant (app.company_id, app.workspace_id and app.domain_id,
-- set by libs/tenancy); with no tenant set a query sees no row. FORCE holds
-- the table's owner to the policy too.
ALTER TABLE campaign.campaigns ENABLE ROW LEVEL SECURITY;
ALTER TABLE campaign.campaigns FORCE ROW LEVEL SECURITY;
CREATE POLICY campaigns_tenant_isolation ON campaign.campaigns
    USING (company_id = NULLIF(current_setting('app.company_id', true), '')::uuid
           AND workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::uuid
           AND domain_id = NULLIF(current_setting('app.domain_id', true), '')::uuid)
    WITH CHECK (company_id = NULLIF(current_setting('app.company_id', true), '')::uuid
                AND workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::uuid
                AND domain_id = NULLIF(current_setting('app.domain_id', true), '')::uuid);

-- The campaign service's role: its tables (not the migration history) and
-- those later migrations add.
GRANT USAGE ON SCHEMA campaign TO herald_campaign;
GRANT SELECT, INSERT, UPDATE, DELETE ON campaign.campaigns TO herald_campaign;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA campaign TO herald_campaign;
ALTER DEFAULT PRIVILEGES IN SCHEMA campaign
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO herald_campaign;
ALTER DEFAULT PRIVILEGES IN SCHEMA campaign
    GRANT USAGE, SELECT ON SEQUENCES TO herald_campaign;
