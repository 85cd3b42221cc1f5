SET lock_timeout = '5s';
SET statement_timeout = '60s';

-- The campaigns_status backfill is over: status is NOT NULL (000006). The worker loses the
-- columns and the policy 000003 gave it for the backfill.
-- herald:allow ZD001 reason: the backfill's own policy; no release reads through it once status is NOT NULL
DROP POLICY campaigns_status_backfill ON campaign.campaigns;
REVOKE ALL ON campaign.campaigns FROM herald_worker;
REVOKE USAGE ON SCHEMA campaign FROM herald_worker;
