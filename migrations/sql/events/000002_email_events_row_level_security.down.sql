SET lock_timeout = '5s';
SET statement_timeout = '60s';

ALTER DEFAULT PRIVILEGES IN SCHEMA events
    REVOKE USAGE, SELECT ON SEQUENCES FROM herald_events;
ALTER DEFAULT PRIVILEGES IN SCHEMA events
    REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM herald_events;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA events FROM herald_events;
REVOKE ALL ON events.email_events FROM herald_events;
REVOKE USAGE ON SCHEMA events FROM herald_events;

DROP POLICY IF EXISTS email_events_tenant_isolation ON events.email_events;
ALTER TABLE events.email_events NO FORCE ROW LEVEL SECURITY;
ALTER TABLE events.email_events DISABLE ROW LEVEL SECURITY;
