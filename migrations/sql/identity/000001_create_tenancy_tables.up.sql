SET lock_timeout = '5s';
SET statement_timeout = '60s';

-- Company: the billing entity (plan limits, seats).
CREATE TABLE identity.companies (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Workspace: settings, custom field definitions and user roles of a company.
CREATE TABLE identity.workspaces (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id uuid        NOT NULL REFERENCES identity.companies (id),
    name       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX workspaces_company_id_idx ON identity.workspaces (company_id);

-- Domain: the data partition every hot-path query pivots on. A sending domain
-- belongs to exactly one workspace across all tenants.
CREATE TABLE identity.domains (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id   uuid        NOT NULL REFERENCES identity.companies (id),
    workspace_id uuid        NOT NULL REFERENCES identity.workspaces (id),
    name         text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT domains_name_key UNIQUE (name)
);

CREATE INDEX domains_workspace_id_idx ON identity.domains (workspace_id);
CREATE INDEX domains_company_id_idx ON identity.domains (company_id);
