SET lock_timeout = '5s';
SET statement_timeout = '60s';

CREATE TABLE campaign.templates (
    id          serial PRIMARY KEY,
    campaign_id integer NOT NULL,
    owner       int,
    name        varchar(200) NOT NULL,
    locale      char(2) NOT NULL DEFAULT 'en',
    created_at  timestamp NOT NULL DEFAULT now(),
    CONSTRAINT templates_owner_fkey FOREIGN KEY (owner) REFERENCES identity.companies (id)
);

ALTER TABLE campaign.campaigns ADD COLUMN sent_at timestamp without time zone;
