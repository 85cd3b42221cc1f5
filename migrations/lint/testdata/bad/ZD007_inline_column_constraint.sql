SET lock_timeout = '5s';
SET statement_timeout = '60s';

ALTER TABLE campaign.campaigns ADD COLUMN template_id uuid REFERENCES campaign.templates (id);
