SET lock_timeout = '5s';
SET statement_timeout = '60s';

-- No scan: the validated campaigns_status_not_null proves every row has a status. The default
-- is state's: a campaign starts as a draft, whoever inserts it.
ALTER TABLE campaign.campaigns ALTER COLUMN status SET NOT NULL;
ALTER TABLE campaign.campaigns ALTER COLUMN status SET DEFAULT 'draft';

-- herald:allow ZD001 reason: redundant once status is NOT NULL
ALTER TABLE campaign.campaigns DROP CONSTRAINT campaigns_status_not_null;
