DROP TABLE IF EXISTS recipient.suppressions;
