SET lock_timeout = 0;
SET statement_timeout = '60s';

CREATE TABLE campaign.templates (id uuid PRIMARY KEY);
