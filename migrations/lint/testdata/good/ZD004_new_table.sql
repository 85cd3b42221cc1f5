SET lock_timeout = '5s';
SET statement_timeout = '60s';

-- Rules about existing tables leave a table created earlier in the file alone.
CREATE TABLE recipient.tags (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    domain_id  uuid        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE recipient.tags ADD COLUMN name text NOT NULL;
ALTER TABLE recipient.tags ALTER COLUMN name SET NOT NULL;
ALTER TABLE recipient.tags ADD CONSTRAINT tags_name_check CHECK (name <> '');
ALTER TABLE recipient.tags ADD CONSTRAINT tags_domain_id_name_key UNIQUE (domain_id, name);
CREATE INDEX tags_domain_id_created_at_idx ON recipient.tags (domain_id, created_at);
