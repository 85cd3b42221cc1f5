ALTER TABLE recipient.recipients DROP CONSTRAINT IF EXISTS recipients_last_event_id_not_null;
