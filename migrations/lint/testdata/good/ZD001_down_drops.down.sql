-- Down migrations are for development: they may drop, and need no timeouts.
DROP INDEX IF EXISTS recipient.recipients_domain_id_status_idx;
ALTER TABLE recipient.recipients DROP COLUMN IF EXISTS locale;
DROP TABLE IF EXISTS recipient.tags;
