SET lock_timeout = '5s';
SET statement_timeout = '60s';

-- Content columns default to empty so that a draft can be saved before it is
-- complete; the service checks them before the campaign leaves draft.
CREATE TABLE campaign.campaigns (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id   uuid        NOT NULL,
    workspace_id uuid        NOT NULL,
    domain_id    uuid        NOT NULL,
    name         text        NOT NULL,
    subject      text        NOT NULL DEFAULT '',
    from_email   text        NOT NULL DEFAULT '',
    html_body    text        NOT NULL DEFAULT '',
    text_body    text        NOT NULL DEFAULT '',
    state        text        NOT NULL DEFAULT 'draft',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT campaigns_state_check
        CHECK (state IN ('draft', 'scheduled', 'sending', 'sent', 'paused', 'cancelled'))
);

-- Keyset pagination of a domain's campaigns: (created_at, id) after a cursor.
CREATE INDEX campaigns_domain_id_created_at_id_idx
    ON campaign.campaigns (domain_id, created_at, id);
