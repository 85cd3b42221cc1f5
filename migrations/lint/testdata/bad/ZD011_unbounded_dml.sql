SET lock_timeout = '5s';
SET statement_timeout = '60s';

DELETE FROM events.email_events;
UPDATE recipient.recipients
SET status_reason = (SELECT 'x' WHERE true);
WITH old AS (SELECT id FROM campaign.campaigns WHERE state = 'sent')
DELETE FROM campaign.campaigns USING old;
