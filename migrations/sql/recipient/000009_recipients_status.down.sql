-- herald:no-transaction
DROP INDEX CONCURRENTLY IF EXISTS recipient.recipients_domain_id_status_created_at_id_idx;
