SET lock_timeout = '5s';
SET statement_timeout = '60s';

-- Addresses erased from a domain at their owner's request. Only a keyed hash
-- (HMAC-SHA256 under a server secret, see docs/recipients.md) of the
-- normalised address is kept, never the address itself: enough to refuse the
-- same address later, useless to anyone who reads the table without the key.
-- key_id names the secret the hash was made with, so the key can rotate.
CREATE TABLE recipient.suppressions (
    company_id   uuid        NOT NULL,
    workspace_id uuid        NOT NULL,
    domain_id    uuid        NOT NULL,
    email_hash   bytea       NOT NULL,
    key_id       text        NOT NULL,
    reason       text        NOT NULL DEFAULT 'erased',
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT suppressions_pkey PRIMARY KEY (domain_id, email_hash),
    CONSTRAINT suppressions_email_hash_check CHECK (length(email_hash) = 32)
);

ALTER TABLE recipient.suppressions ENABLE ROW LEVEL SECURITY;
ALTER TABLE recipient.suppressions FORCE ROW LEVEL SECURITY;
CREATE POLICY suppressions_tenant_isolation ON recipient.suppressions
    USING (company_id = NULLIF(current_setting('app.company_id', true), '')::uuid
           AND workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::uuid
           AND domain_id = NULLIF(current_setting('app.domain_id', true), '')::uuid)
    WITH CHECK (company_id = NULLIF(current_setting('app.company_id', true), '')::uuid
                AND workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::uuid
                AND domain_id = NULLIF(current_setting('app.domain_id', true), '')::uuid);

GRANT SELECT, INSERT, UPDATE, DELETE ON recipient.suppressions TO herald_recipient;
