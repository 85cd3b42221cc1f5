SET lock_timeout = '5s';
SET statement_timeout = '60s';

ALTER TABLE recipient.recipients ALTER COLUMN status_changed_at SET NOT NULL;
