SET lock_timeout = '5s';
SET statement_timeout = '60s';

-- herald:allow ZD099 reason: there is no such rule
-- herald:allow ZD000 reason: ZD000 cannot be allowed
UPDATE recipient.recipients SET status_reason = '' WHERE status_reason IS NULL;
