SET lock_timeout = '5s';
SET statement_timeout = '10min';

-- Runs once the campaigns_status backfill is done everywhere (docs/migrations.md, "A worked
-- example"): from here on every row has a valid status. Validation scans the table under a
-- SHARE UPDATE EXCLUSIVE lock, which lets reads and writes go on; a row the backfill missed
-- fails it, and the deploy stops before any code relies on status.
ALTER TABLE campaign.campaigns VALIDATE CONSTRAINT campaigns_status_check;

-- The way to NOT NULL without a long exclusive lock: a CHECK for new rows now, validated by
-- the next migration, which lets the one after set NOT NULL without a scan.
ALTER TABLE campaign.campaigns
    ADD CONSTRAINT campaigns_status_not_null CHECK (status IS NOT NULL) NOT VALID;
