SET lock_timeout = '5s';
SET statement_timeout = '60s';

-- DROP TABLE recipient.recipients; TRUNCATE events.email_events;
/* ALTER TABLE recipient.recipients RENAME TO contacts; */
COMMENT ON TABLE recipient.recipients IS 'never DROP TABLE or TRUNCATE this; DELETE FROM it in batches';
COMMENT ON COLUMN recipient.recipients.status IS E'don\'t ALTER COLUMN status TYPE int; ever';
CREATE FUNCTION recipient.touch() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    -- 'DELETE FROM recipient.recipients;' is only text here
    NEW.updated_at := now();
    RETURN NEW;
END;
$fn$;
CREATE TABLE recipient."Drop Table; Truncate" ("rename" text, "timestamp" text);
