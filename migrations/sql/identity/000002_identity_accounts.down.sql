SET lock_timeout = '5s';
SET statement_timeout = '60s';

ALTER DEFAULT PRIVILEGES IN SCHEMA identity
    REVOKE USAGE, SELECT ON SEQUENCES FROM herald_gateway;
ALTER DEFAULT PRIVILEGES IN SCHEMA identity
    REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM herald_gateway;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA identity FROM herald_gateway;
REVOKE ALL ON identity.companies, identity.workspaces, identity.domains FROM herald_gateway;
REVOKE USAGE ON SCHEMA identity FROM herald_gateway;

DROP FUNCTION IF EXISTS identity.invitation_by_token_hash(text);
DROP FUNCTION IF EXISTS identity.api_key_by_prefix(text);

DROP POLICY IF EXISTS domains_company_isolation ON identity.domains;
ALTER TABLE identity.domains NO FORCE ROW LEVEL SECURITY;
ALTER TABLE identity.domains DISABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS workspaces_company_isolation ON identity.workspaces;
ALTER TABLE identity.workspaces NO FORCE ROW LEVEL SECURITY;
ALTER TABLE identity.workspaces DISABLE ROW LEVEL SECURITY;

DROP TABLE IF EXISTS identity.platform_operators;
DROP TABLE IF EXISTS identity.refresh_tokens;
DROP TABLE IF EXISTS identity.api_keys;
DROP TABLE IF EXISTS identity.invitations;
DROP TABLE IF EXISTS identity.memberships;
DROP TABLE IF EXISTS identity.users;

ALTER TABLE identity.companies DROP COLUMN IF EXISTS monthly_send_limit;
ALTER TABLE identity.companies DROP COLUMN IF EXISTS max_domains;
ALTER TABLE identity.companies DROP COLUMN IF EXISTS max_seats;
ALTER TABLE identity.companies DROP COLUMN IF EXISTS plan;
