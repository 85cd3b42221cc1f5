SET lock_timeout = '5s';
SET statement_timeout = '60s';

-- Expand step of renaming campaigns.state to campaigns.status (docs/migrations.md, "A worked
-- example"): every other table of Herald names its lifecycle column status, and a RENAME would
-- break the running release. The new column starts nullable and without a default, so that a
-- row the previous release writes stays NULL until the backfill copies its state: a default
-- would hide which rows still need it.
ALTER TABLE campaign.campaigns ADD COLUMN status text;

-- New rows are checked at once; the rows written before are checked when the constraint is
-- validated, in a later migration, after the backfill.
ALTER TABLE campaign.campaigns
    ADD CONSTRAINT campaigns_status_check
    CHECK (status IN ('draft', 'scheduled', 'sending', 'sent', 'paused', 'cancelled')) NOT VALID;

-- The backfill (worker, backfill campaigns_status) copies state into status for the rows of
-- every tenant. The worker gets the three columns it needs and nothing else, and a policy of
-- its own: it reads and writes no tenant's content. The contract step revokes both.
GRANT USAGE ON SCHEMA campaign TO herald_worker;
GRANT SELECT (id, state, status), UPDATE (status) ON campaign.campaigns TO herald_worker;
CREATE POLICY campaigns_status_backfill ON campaign.campaigns
    TO herald_worker
    USING (true)
    WITH CHECK (true);
