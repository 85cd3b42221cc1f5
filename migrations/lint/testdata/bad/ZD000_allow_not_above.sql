SET lock_timeout = '5s';
SET statement_timeout = '60s';

-- herald:allow ZD010 reason: the blank line below detaches this from the statement

TRUNCATE recipient.recipients;
