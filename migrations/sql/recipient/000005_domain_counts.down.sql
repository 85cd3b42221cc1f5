DROP TRIGGER IF EXISTS recipients_count_update ON recipient.recipients;
DROP TRIGGER IF EXISTS recipients_count_delete ON recipient.recipients;
DROP TRIGGER IF EXISTS recipients_count_insert ON recipient.recipients;
DROP FUNCTION IF EXISTS recipient.count_updated_recipients();
DROP FUNCTION IF EXISTS recipient.count_deleted_recipients();
DROP FUNCTION IF EXISTS recipient.count_inserted_recipients();
DROP TABLE IF EXISTS recipient.domain_counts;
