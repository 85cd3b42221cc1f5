SET lock_timeout = '5s';
SET statement_timeout = '60s';

ALTER TABLE recipient.recipients
    ADD COLUMN locale text NOT NULL;
