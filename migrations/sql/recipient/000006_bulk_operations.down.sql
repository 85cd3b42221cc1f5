DROP TABLE IF EXISTS recipient.bulk_operations;
