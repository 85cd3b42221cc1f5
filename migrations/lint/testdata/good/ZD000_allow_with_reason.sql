SET lock_timeout = '5s';
SET statement_timeout = '60s';

-- Two rules for one statement: one annotation each, or both in one.
-- herald:allow ZD003 reason: campaigns is empty until the campaign service ships
-- herald:allow ZD012, ZD002 reason: same
ALTER TABLE campaign.campaigns ALTER COLUMN name TYPE varchar(200);
