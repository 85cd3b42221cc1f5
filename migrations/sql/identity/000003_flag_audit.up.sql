SET lock_timeout = '5s';
SET statement_timeout = '60s';

-- Every change of a feature flag made through the API, written in the same
-- transaction that makes the change. company_id is NULL for a global change,
-- workspace_id is set for a workspace change only. old_value and new_value are
-- NULL when the flag was, or becomes, unset at that scope.
CREATE TABLE identity.flag_audit (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id    uuid        REFERENCES identity.companies (id),
    workspace_id  uuid        REFERENCES identity.workspaces (id) ON DELETE CASCADE,
    flag          text        NOT NULL,
    scope         text        NOT NULL,
    old_value     boolean,
    new_value     boolean,
    actor_user_id uuid,
    actor         text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT flag_audit_scope_check CHECK (scope IN ('global', 'company', 'workspace')),
    CONSTRAINT flag_audit_scope_ids_check CHECK (
        (scope = 'global' AND company_id IS NULL AND workspace_id IS NULL)
        OR (scope = 'company' AND company_id IS NOT NULL AND workspace_id IS NULL)
        OR (scope = 'workspace' AND company_id IS NOT NULL AND workspace_id IS NOT NULL)
    )
);

CREATE INDEX flag_audit_company_id_created_at_idx ON identity.flag_audit (company_id, created_at);
CREATE INDEX flag_audit_workspace_id_idx ON identity.flag_audit (workspace_id);

-- A company's rows are visible in a transaction scoped to that company; the
-- global rows (no company) only in a transaction that set
-- app.platform_operator, which the gateway does after checking that the caller
-- is in identity.platform_operators. With neither set, nothing is visible.
ALTER TABLE identity.flag_audit ENABLE ROW LEVEL SECURITY;
ALTER TABLE identity.flag_audit FORCE ROW LEVEL SECURITY;
CREATE POLICY flag_audit_company_isolation ON identity.flag_audit
    USING (
        company_id = NULLIF(current_setting('app.company_id', true), '')::uuid
        OR (company_id IS NULL AND current_setting('app.platform_operator', true) = 'on')
    )
    WITH CHECK (
        company_id = NULLIF(current_setting('app.company_id', true), '')::uuid
        OR (company_id IS NULL AND current_setting('app.platform_operator', true) = 'on')
    );

-- The audit is append-only: the default privileges of the schema granted
-- UPDATE and DELETE too.
REVOKE UPDATE, DELETE ON identity.flag_audit FROM herald_gateway;
