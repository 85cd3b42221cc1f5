-- herald:no-transaction

-- Plain SET: each statement runs on its own, and SET LOCAL would end with it.
SET lock_timeout = '5s';
SET statement_timeout = 0;

CREATE INDEX CONCURRENTLY IF NOT EXISTS recipients_domain_id_status_idx
    ON recipient.recipients (domain_id, status);
