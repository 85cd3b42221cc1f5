SET lock_timeout = '5s';
SET statement_timeout = '60s';

ALTER TABLE recipient.recipients
    DROP COLUMN status_reason;

ALTER TABLE recipient.recipients ALTER COLUMN status SET DEFAULT 'subscribed', ALTER COLUMN status DROP DEFAULT;
