SET lock_timeout = '5s';
SET statement_timeout = '10min';

ALTER TABLE recipient.recipients VALIDATE CONSTRAINT recipients_last_event_id_not_null;
