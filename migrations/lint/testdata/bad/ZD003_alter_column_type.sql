SET lock_timeout = '5s';
SET statement_timeout = '60s';

ALTER TABLE campaign.campaigns ALTER COLUMN name TYPE varchar(200);
ALTER TABLE campaign.campaigns ALTER subject SET DATA TYPE text;
