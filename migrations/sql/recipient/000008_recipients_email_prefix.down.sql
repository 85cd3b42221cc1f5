-- herald:no-transaction
DROP INDEX CONCURRENTLY IF EXISTS recipient.recipients_domain_id_email_pattern_idx;
