SET lock_timeout = '5s';
SET statement_timeout = '60s';

-- Custom field definitions of a workspace: the typed attributes its recipients
-- may carry. A retired field (retired_at set) accepts no more values but keeps
-- its key, so stored values stay readable and the key is never reused with
-- another meaning.
CREATE TABLE recipient.field_definitions (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id    uuid        NOT NULL,
    workspace_id  uuid        NOT NULL,
    key           text        NOT NULL,
    label         text        NOT NULL,
    type          text        NOT NULL,
    required      boolean     NOT NULL DEFAULT false,
    -- NULL when the field has no default.
    default_value jsonb,
    options       text[]      NOT NULL DEFAULT '{}',
    retired_at    timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT field_definitions_type_check
        CHECK (type IN ('text', 'number', 'boolean', 'date', 'enum')),
    CONSTRAINT field_definitions_key_check
        CHECK (key ~ '^[a-z][a-z0-9]*(_[a-z0-9]+)*$' AND length(key) <= 64),
    CONSTRAINT field_definitions_workspace_id_key_key UNIQUE (workspace_id, key)
);

-- Definitions belong to a workspace, not a domain: the policy checks the
-- company and the workspace only.
ALTER TABLE recipient.field_definitions ENABLE ROW LEVEL SECURITY;
ALTER TABLE recipient.field_definitions FORCE ROW LEVEL SECURITY;
CREATE POLICY field_definitions_tenant_isolation ON recipient.field_definitions
    USING (company_id = NULLIF(current_setting('app.company_id', true), '')::uuid
           AND workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::uuid)
    WITH CHECK (company_id = NULLIF(current_setting('app.company_id', true), '')::uuid
                AND workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::uuid);

GRANT SELECT, INSERT, UPDATE, DELETE ON recipient.field_definitions TO herald_recipient;
