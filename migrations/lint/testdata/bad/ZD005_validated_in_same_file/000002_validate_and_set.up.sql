SET lock_timeout = '5s';
SET statement_timeout = '60s';

-- The check must be valid before this migration, not within it.
ALTER TABLE recipient.recipients VALIDATE CONSTRAINT recipients_last_event_id_not_null;
ALTER TABLE recipient.recipients ALTER COLUMN last_event_id SET NOT NULL;
