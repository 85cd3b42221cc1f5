SET lock_timeout = '5s';
SET statement_timeout = '60s';

-- CSV imports of a domain: the file is stored whole (import_chunks) before the
-- import row and its River job are created in one transaction; the worker then
-- applies it in batches, each committing the counters and the position it
-- reached (byte offset, line, batch sequence) so that an interrupted import
-- resumes exactly where the last batch ended.
CREATE TABLE recipient.imports (
    id                 uuid        PRIMARY KEY,
    company_id         uuid        NOT NULL,
    workspace_id       uuid        NOT NULL,
    domain_id          uuid        NOT NULL,
    state              text        NOT NULL DEFAULT 'pending',
    -- The mapping as the client gave it ("<CSV header>:<target>") and as
    -- resolved against the header: [{"index": 0, "target": "email"}, ...].
    column_map         text[]      NOT NULL,
    columns            jsonb       NOT NULL,
    column_count       integer     NOT NULL,
    total_bytes        bigint      NOT NULL,
    -- Committed position: where the next batch starts.
    committed_offset   bigint      NOT NULL,
    committed_line     bigint      NOT NULL,
    committed_sequence bigint      NOT NULL DEFAULT 0,
    rows_done          bigint      NOT NULL DEFAULT 0,
    inserted           bigint      NOT NULL DEFAULT 0,
    updated            bigint      NOT NULL DEFAULT 0,
    rejected           bigint      NOT NULL DEFAULT 0,
    duplicates         bigint      NOT NULL DEFAULT 0,
    error              text        NOT NULL DEFAULT '',
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT imports_state_check
        CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
    CONSTRAINT imports_columns_check CHECK (jsonb_typeof(columns) = 'array')
);

CREATE INDEX imports_domain_id_created_at_idx
    ON recipient.imports (domain_id, created_at);

-- The uploaded file, in order, in pieces of 1 MiB. Stored uncompressed out of
-- line (EXTERNAL): compressing a file on its way in costs more than it saves,
-- and the pieces are deleted once the import ends.
CREATE TABLE recipient.import_chunks (
    import_id    uuid    NOT NULL,
    seq          bigint  NOT NULL,
    company_id   uuid    NOT NULL,
    workspace_id uuid    NOT NULL,
    domain_id    uuid    NOT NULL,
    start_offset bigint  NOT NULL,
    data         bytea   NOT NULL,
    PRIMARY KEY (import_id, seq)
);
ALTER TABLE recipient.import_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

-- Rows an import rejected: where, why, and the row as it was read.
CREATE TABLE recipient.import_rejections (
    import_id    uuid   NOT NULL,
    line         bigint NOT NULL,
    company_id   uuid   NOT NULL,
    workspace_id uuid   NOT NULL,
    domain_id    uuid   NOT NULL,
    reason       text   NOT NULL,
    raw          text   NOT NULL,
    PRIMARY KEY (import_id, line)
);

-- The import that last wrote a recipient: a row written earlier by the same
-- import is a duplicate within the file, not an update.
ALTER TABLE recipient.recipients ADD COLUMN last_import_id uuid;

ALTER TABLE recipient.imports ENABLE ROW LEVEL SECURITY;
ALTER TABLE recipient.imports FORCE ROW LEVEL SECURITY;
CREATE POLICY imports_tenant_isolation ON recipient.imports
    USING (company_id = NULLIF(current_setting('app.company_id', true), '')::uuid
           AND workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::uuid
           AND domain_id = NULLIF(current_setting('app.domain_id', true), '')::uuid)
    WITH CHECK (company_id = NULLIF(current_setting('app.company_id', true), '')::uuid
                AND workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::uuid
                AND domain_id = NULLIF(current_setting('app.domain_id', true), '')::uuid);

ALTER TABLE recipient.import_chunks ENABLE ROW LEVEL SECURITY;
ALTER TABLE recipient.import_chunks FORCE ROW LEVEL SECURITY;
CREATE POLICY import_chunks_tenant_isolation ON recipient.import_chunks
    USING (company_id = NULLIF(current_setting('app.company_id', true), '')::uuid
           AND workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::uuid
           AND domain_id = NULLIF(current_setting('app.domain_id', true), '')::uuid)
    WITH CHECK (company_id = NULLIF(current_setting('app.company_id', true), '')::uuid
                AND workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::uuid
                AND domain_id = NULLIF(current_setting('app.domain_id', true), '')::uuid);

ALTER TABLE recipient.import_rejections ENABLE ROW LEVEL SECURITY;
ALTER TABLE recipient.import_rejections FORCE ROW LEVEL SECURITY;
CREATE POLICY import_rejections_tenant_isolation ON recipient.import_rejections
    USING (company_id = NULLIF(current_setting('app.company_id', true), '')::uuid
           AND workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::uuid
           AND domain_id = NULLIF(current_setting('app.domain_id', true), '')::uuid)
    WITH CHECK (company_id = NULLIF(current_setting('app.company_id', true), '')::uuid
                AND workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::uuid
                AND domain_id = NULLIF(current_setting('app.domain_id', true), '')::uuid);

GRANT SELECT, INSERT, UPDATE, DELETE
    ON recipient.imports, recipient.import_chunks, recipient.import_rejections
    TO herald_recipient;
