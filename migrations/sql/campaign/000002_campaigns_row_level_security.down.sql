SET lock_timeout = '5s';
SET statement_timeout = '60s';

ALTER DEFAULT PRIVILEGES IN SCHEMA campaign
    REVOKE USAGE, SELECT ON SEQUENCES FROM herald_campaign;
ALTER DEFAULT PRIVILEGES IN SCHEMA campaign
    REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM herald_campaign;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA campaign FROM herald_campaign;
REVOKE ALL ON campaign.campaigns FROM herald_campaign;
REVOKE USAGE ON SCHEMA campaign FROM herald_campaign;

DROP POLICY IF EXISTS campaigns_tenant_isolation ON campaign.campaigns;
ALTER TABLE campaign.campaigns NO FORCE ROW LEVEL SECURITY;
ALTER TABLE campaign.campaigns DISABLE ROW LEVEL SECURITY;
