SET lock_timeout = '5s';
SET statement_timeout = '60s';

ALTER TABLE identity.workspaces ADD CONSTRAINT workspaces_name_key UNIQUE (company_id, name);
ALTER TABLE identity.companies ADD CONSTRAINT companies_name_key UNIQUE USING INDEX companies_name_idx;
