SET lock_timeout = '5s';
SET statement_timeout = '60s';

ALTER TABLE recipient.recipients
    ADD CONSTRAINT recipients_last_event_id_not_null CHECK (last_event_id IS NOT NULL) NOT VALID;
