SET lock_timeout = '5s';
SET statement_timeout = '60s';

CREATE TABLE campaign.templates (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign_id uuid        NOT NULL,
    version     integer     NOT NULL DEFAULT 1,
    name        text        NOT NULL CHECK (length(name) <= 200),
    code        varchar     NOT NULL DEFAULT '',
    kind        "char"      NOT NULL DEFAULT 'h',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamp with time zone NOT NULL DEFAULT now()
);
