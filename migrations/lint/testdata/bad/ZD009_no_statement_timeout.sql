SET lock_timeout = '5s';
CREATE TABLE campaign.templates (id uuid PRIMARY KEY);
SET statement_timeout = '60s';
