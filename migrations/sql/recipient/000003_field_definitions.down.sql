DROP TABLE IF EXISTS recipient.field_definitions;
