ALTER TABLE recipient.recipients ALTER COLUMN last_event_id DROP NOT NULL;
