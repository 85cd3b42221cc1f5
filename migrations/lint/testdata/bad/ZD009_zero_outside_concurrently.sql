SET lock_timeout TO '5s';
SET statement_timeout TO '0';

CREATE TABLE campaign.templates (id uuid PRIMARY KEY);
