SET lock_timeout = '5s';
SET statement_timeout = '60s';

GRANT USAGE ON SCHEMA campaign TO herald_worker;
GRANT SELECT (id, state, status), UPDATE (status) ON campaign.campaigns TO herald_worker;
CREATE POLICY campaigns_status_backfill ON campaign.campaigns
    TO herald_worker
    USING (true)
    WITH CHECK (true);
