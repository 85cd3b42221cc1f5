-- herald:no-transaction
SET lock_timeout = '5s';
SET statement_timeout = 0;

CREATE UNIQUE INDEX CONCURRENTLY workspaces_company_id_name_idx ON identity.workspaces (company_id, name);
