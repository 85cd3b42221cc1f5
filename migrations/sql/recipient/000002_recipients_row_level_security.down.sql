SET lock_timeout = '5s';
SET statement_timeout = '60s';

ALTER DEFAULT PRIVILEGES IN SCHEMA recipient
    REVOKE USAGE, SELECT ON SEQUENCES FROM herald_recipient;
ALTER DEFAULT PRIVILEGES IN SCHEMA recipient
    REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM herald_recipient;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA recipient FROM herald_recipient;
REVOKE ALL ON recipient.recipients FROM herald_recipient;
REVOKE USAGE ON SCHEMA recipient FROM herald_recipient;

DROP POLICY IF EXISTS recipients_tenant_isolation ON recipient.recipients;
ALTER TABLE recipient.recipients NO FORCE ROW LEVEL SECURITY;
ALTER TABLE recipient.recipients DISABLE ROW LEVEL SECURITY;
