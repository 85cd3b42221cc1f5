-- herald:contract flag=campaign_status_reads
SET lock_timeout = '5s';
SET statement_timeout = '60s';

-- Contract step of moving the lifecycle column from state to status (docs/migrations.md, "A
-- worked example"): the flag that switched the reads is retired, and neither this release nor
-- the previous one reads or writes state. Its check constraint goes with it.
ALTER TABLE campaign.campaigns DROP COLUMN state;
