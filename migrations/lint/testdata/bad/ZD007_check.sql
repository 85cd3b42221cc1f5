SET lock_timeout = '5s';
SET statement_timeout = '60s';

ALTER TABLE campaign.campaigns ADD CONSTRAINT campaigns_name_check CHECK (length(name) <= 200);
