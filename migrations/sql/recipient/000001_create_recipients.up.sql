SET lock_timeout = '5s';
SET statement_timeout = '60s';

-- Tenant ids are not foreign keys: identity is owned by another service and
-- each service's role is granted its own schema only.
CREATE TABLE recipient.recipients (
    id                uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id        uuid        NOT NULL,
    workspace_id      uuid        NOT NULL,
    domain_id         uuid        NOT NULL,
    email             text        NOT NULL,
    status            text        NOT NULL DEFAULT 'subscribed',
    status_reason     text        NOT NULL DEFAULT '',
    status_changed_at timestamptz,
    -- The engagement event that last changed status, so that replaying the
    -- same event is a no-op.
    last_event_id     uuid,
    attributes        jsonb       NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT recipients_status_check
        CHECK (status IN ('subscribed', 'unsubscribed', 'bounced', 'complained')),
    CONSTRAINT recipients_attributes_check
        CHECK (jsonb_typeof(attributes) = 'object'),
    CONSTRAINT recipients_domain_id_email_key UNIQUE (domain_id, email)
);

-- Keyset pagination of a domain's recipients: (created_at, id) after a cursor.
CREATE INDEX recipients_domain_id_created_at_id_idx
    ON recipient.recipients (domain_id, created_at, id);
