SET lock_timeout = '5s';
SET statement_timeout = '60s';

-- herald:allow ZD001 reason: the index is unused since the keyset pagination change
DROP INDEX recipient.recipients_domain_id_created_at_id_idx;
