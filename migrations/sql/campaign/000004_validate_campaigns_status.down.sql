SET lock_timeout = '5s';
SET statement_timeout = '60s';

ALTER TABLE campaign.campaigns DROP CONSTRAINT IF EXISTS campaigns_status_not_null;
