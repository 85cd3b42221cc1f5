SET lock_timeout = '5s';
SET statement_timeout = '60s';

ALTER TABLE recipient.recipients RENAME COLUMN status_reason TO reason;
ALTER TABLE recipient.recipients RENAME TO contacts;
ALTER TABLE recipient.recipients RENAME CONSTRAINT recipients_status_check TO status_check;
ALTER INDEX recipient.recipients_domain_id_created_at_id_idx RENAME TO recipients_page_idx;
