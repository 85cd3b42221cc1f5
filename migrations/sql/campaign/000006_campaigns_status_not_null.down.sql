SET lock_timeout = '5s';
SET statement_timeout = '60s';

ALTER TABLE campaign.campaigns
    ADD CONSTRAINT campaigns_status_not_null CHECK (status IS NOT NULL) NOT VALID;
ALTER TABLE campaign.campaigns ALTER COLUMN status DROP DEFAULT;
ALTER TABLE campaign.campaigns ALTER COLUMN status DROP NOT NULL;
