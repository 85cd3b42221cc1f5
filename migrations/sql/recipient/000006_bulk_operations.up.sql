SET lock_timeout = '5s';
SET statement_timeout = '60s';

-- Bulk operations: one change (a status, attributes, or deletion) applied to
-- every recipient of a domain that matches a list filter, in batches by the
-- worker. The keyset position of the last committed batch (cursor_created_at,
-- cursor_id) is written in the same transaction as the batch's changes, so a
-- batch that is retried after a crash never applies twice. Recipients created
-- after bound_at are left alone.
CREATE TABLE recipient.bulk_operations (
    id                uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id        uuid        NOT NULL,
    workspace_id      uuid        NOT NULL,
    domain_id         uuid        NOT NULL,
    action            text        NOT NULL,
    filter            jsonb       NOT NULL DEFAULT '{}',
    params            jsonb       NOT NULL DEFAULT '{}',
    state             text        NOT NULL DEFAULT 'pending',
    matched           bigint      NOT NULL DEFAULT 0,
    done              bigint      NOT NULL DEFAULT 0,
    bound_at          timestamptz NOT NULL DEFAULT now(),
    cursor_created_at timestamptz,
    cursor_id         uuid,
    error             text        NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    finished_at       timestamptz,
    CONSTRAINT bulk_operations_action_check
        CHECK (action IN ('update_status', 'update_attributes', 'delete')),
    CONSTRAINT bulk_operations_state_check
        CHECK (state IN ('pending', 'running', 'succeeded', 'failed')),
    CONSTRAINT bulk_operations_cursor_check
        CHECK ((cursor_created_at IS NULL) = (cursor_id IS NULL))
);

CREATE INDEX bulk_operations_domain_id_created_at_id_idx
    ON recipient.bulk_operations (domain_id, created_at, id);

ALTER TABLE recipient.bulk_operations ENABLE ROW LEVEL SECURITY;
ALTER TABLE recipient.bulk_operations FORCE ROW LEVEL SECURITY;
CREATE POLICY bulk_operations_tenant_isolation ON recipient.bulk_operations
    USING (company_id = NULLIF(current_setting('app.company_id', true), '')::uuid
           AND workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::uuid
           AND domain_id = NULLIF(current_setting('app.domain_id', true), '')::uuid)
    WITH CHECK (company_id = NULLIF(current_setting('app.company_id', true), '')::uuid
                AND workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::uuid
                AND domain_id = NULLIF(current_setting('app.domain_id', true), '')::uuid);

GRANT SELECT, INSERT, UPDATE, DELETE ON recipient.bulk_operations TO herald_recipient;
