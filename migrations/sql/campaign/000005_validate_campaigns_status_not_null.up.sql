SET lock_timeout = '5s';
SET statement_timeout = '10min';

-- Scans under a lock that lets reads and writes go on (see 000004).
ALTER TABLE campaign.campaigns VALIDATE CONSTRAINT campaigns_status_not_null;
