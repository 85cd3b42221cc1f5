-- herald:no-transaction
DROP INDEX CONCURRENTLY IF EXISTS recipient.recipients_attributes_gin_idx;
