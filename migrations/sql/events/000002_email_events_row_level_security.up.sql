SET lock_timeout = '5s';
SET statement_timeout = '60s';

-- Row-level security: a row is seen and written only inside a transaction
-- scoped to its tenant (app.company_id, app.workspace_id and app.domain_id,
-- set by libs/tenancy); with no tenant set a query sees no row. FORCE holds
-- the table's owner to the policy too.
ALTER TABLE events.email_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE events.email_events FORCE ROW LEVEL SECURITY;
CREATE POLICY email_events_tenant_isolation ON events.email_events
    USING (company_id = NULLIF(current_setting('app.company_id', true), '')::uuid
           AND workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::uuid
           AND domain_id = NULLIF(current_setting('app.domain_id', true), '')::uuid)
    WITH CHECK (company_id = NULLIF(current_setting('app.company_id', true), '')::uuid
                AND workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::uuid
                AND domain_id = NULLIF(current_setting('app.domain_id', true), '')::uuid);

-- The events-ingest service's role: its tables (not the migration history) and
-- those later migrations add.
GRANT USAGE ON SCHEMA events TO herald_events;
GRANT SELECT, INSERT, UPDATE, DELETE ON events.email_events TO herald_events;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA events TO herald_events;
ALTER DEFAULT PRIVILEGES IN SCHEMA events
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO herald_events;
ALTER DEFAULT PRIVILEGES IN SCHEMA events
    GRANT USAGE, SELECT ON SEQUENCES TO herald_events;
