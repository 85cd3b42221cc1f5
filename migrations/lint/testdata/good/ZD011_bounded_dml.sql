SET lock_timeout = '5s';
SET statement_timeout = '60s';

DELETE FROM campaign.campaigns WHERE state = 'cancelled' AND created_at < now() - interval '1 year';
UPDATE recipient.recipients SET status_reason = '' WHERE status_reason IS NULL;
INSERT INTO identity.companies (id, name) VALUES ('7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f', 'Herald')
    ON CONFLICT (id) DO UPDATE SET name = excluded.name;
WITH gone AS (DELETE FROM campaign.campaigns WHERE state = 'cancelled' RETURNING id)
SELECT count(*) FROM gone;
