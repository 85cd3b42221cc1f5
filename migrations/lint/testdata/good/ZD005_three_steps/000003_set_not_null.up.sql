SET lock_timeout = '5s';
SET statement_timeout = '60s';

ALTER TABLE recipient.recipients ALTER COLUMN last_event_id SET NOT NULL;
