SET lock_timeout = '5s';
SET statement_timeout = '60s';

REVOKE ALL ON events.email_events_daily FROM herald_worker;
REVOKE ALL ON events.engagement_events FROM herald_worker;
REVOKE ALL ON events.email_events FROM herald_worker;
REVOKE USAGE ON SCHEMA events FROM herald_worker;

DROP FUNCTION IF EXISTS events.drop_engagement_partitions(timestamptz);
DROP FUNCTION IF EXISTS events.create_engagement_partitions(timestamptz, timestamptz);

DROP POLICY IF EXISTS email_events_worker_read ON events.email_events;
DROP TABLE IF EXISTS events.email_events_daily;
-- Drops every partition with it.
DROP TABLE IF EXISTS events.engagement_events;
