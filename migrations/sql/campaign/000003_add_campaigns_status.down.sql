SET lock_timeout = '5s';
SET statement_timeout = '60s';

DROP POLICY IF EXISTS campaigns_status_backfill ON campaign.campaigns;
REVOKE ALL ON campaign.campaigns FROM herald_worker;
REVOKE USAGE ON SCHEMA campaign FROM herald_worker;
ALTER TABLE campaign.campaigns DROP CONSTRAINT IF EXISTS campaigns_status_check;
ALTER TABLE campaign.campaigns DROP COLUMN IF EXISTS status;
