SET lock_timeout = '5s';
SET statement_timeout = '60s';

-- Progress of the batched backfills the worker runs (libs/backfill): one row
-- per backfill, updated in the same transaction as each batch, so that a
-- backfill resumes after a crash from the last batch that committed and never
-- changes a row twice. last_cursor is the backfill's own position (opaque
-- here), empty before the first batch.
CREATE TABLE maintenance.backfills (
    name        text        PRIMARY KEY,
    last_cursor text        NOT NULL DEFAULT '',
    rows_done   bigint      NOT NULL DEFAULT 0,
    batches     bigint      NOT NULL DEFAULT 0,
    done        boolean     NOT NULL DEFAULT false,
    started_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    CONSTRAINT backfills_name_check CHECK (name ~ '^[a-z][a-z0-9_]*$' AND length(name) <= 100)
);

-- The worker runs the backfills and serves their progress; nobody deletes a
-- row (a finished backfill stays done). No other role reads this schema.
GRANT USAGE ON SCHEMA maintenance TO herald_worker;
GRANT SELECT, INSERT, UPDATE ON maintenance.backfills TO herald_worker;
