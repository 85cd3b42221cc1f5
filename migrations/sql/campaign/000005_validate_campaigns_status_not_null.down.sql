SET lock_timeout = '5s';
SET statement_timeout = '60s';

-- A validated constraint cannot be made NOT VALID again; recreate it unvalidated.
ALTER TABLE campaign.campaigns DROP CONSTRAINT IF EXISTS campaigns_status_not_null;
ALTER TABLE campaign.campaigns
    ADD CONSTRAINT campaigns_status_not_null CHECK (status IS NOT NULL) NOT VALID;
