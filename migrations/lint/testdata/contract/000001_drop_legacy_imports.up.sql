-- herald:contract flag=legacy_import_pipeline
-- The old import pipeline wrote recipient.legacy_imports; the flag that kept
-- it alive is gone, so nothing reads or writes the table any more.
SET lock_timeout = '5s';
SET statement_timeout = '60s';

DROP TABLE recipient.legacy_imports;
ALTER TABLE recipient.recipients DROP COLUMN IF EXISTS legacy_import_id;
