SET lock_timeout = '5s';
SET statement_timeout = '60s';

ALTER TABLE recipient.recipients DROP COLUMN IF EXISTS last_import_id;
DROP TABLE IF EXISTS recipient.import_rejections;
DROP TABLE IF EXISTS recipient.import_chunks;
DROP TABLE IF EXISTS recipient.imports;
