-- herald:no-transaction
SET lock_timeout = '5s';
SET statement_timeout = 0;

-- Listing a domain's recipients of one status, in keyset order.
CREATE INDEX CONCURRENTLY recipients_domain_id_status_created_at_id_idx
    ON recipient.recipients (domain_id, status, created_at, id);
