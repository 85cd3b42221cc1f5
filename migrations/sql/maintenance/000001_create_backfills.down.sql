SET lock_timeout = '5s';
SET statement_timeout = '60s';

REVOKE ALL ON maintenance.backfills FROM herald_worker;
REVOKE USAGE ON SCHEMA maintenance FROM herald_worker;

DROP TABLE IF EXISTS maintenance.backfills;
