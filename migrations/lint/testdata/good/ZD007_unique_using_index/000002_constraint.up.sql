SET lock_timeout = '5s';
SET statement_timeout = '60s';

ALTER TABLE identity.workspaces
    ADD CONSTRAINT workspaces_company_id_name_key UNIQUE USING INDEX workspaces_company_id_name_idx;
