SET lock_timeout = '5s';
SET statement_timeout = '10min';

ALTER TABLE identity.domains VALIDATE CONSTRAINT domains_workspace_id_fkey;
ALTER TABLE identity.domains VALIDATE CONSTRAINT domains_name_check;
