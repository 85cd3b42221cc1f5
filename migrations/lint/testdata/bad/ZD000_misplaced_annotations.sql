-- herald:no-transation
SET lock_timeout = '5s';
SET statement_timeout = '60s'; -- herald:allow ZD009 reason: trailing comments are not annotations

-- herald:no-transaction
CREATE TABLE recipient.tags (id uuid PRIMARY KEY, name text NOT NULL);
