SET lock_timeout = '5s';
SET statement_timeout = '60s';

-- Plan limits of a company, enforced by the gateway.
ALTER TABLE identity.companies ADD COLUMN plan text NOT NULL DEFAULT 'free';
ALTER TABLE identity.companies ADD COLUMN max_seats integer NOT NULL DEFAULT 5;
ALTER TABLE identity.companies ADD COLUMN max_domains integer NOT NULL DEFAULT 3;
ALTER TABLE identity.companies ADD COLUMN monthly_send_limit bigint NOT NULL DEFAULT 10000;

-- A person who signs in. The email is unique across every company and stored
-- lower-cased; password_hash stays NULL until an invited user accepts.
CREATE TABLE identity.users (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id    uuid        NOT NULL REFERENCES identity.companies (id),
    email         text        NOT NULL,
    name          text        NOT NULL DEFAULT '',
    password_hash text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_email_lower_check CHECK (email = lower(email))
);

CREATE INDEX users_company_id_idx ON identity.users (company_id);

-- A user's role: owner of the whole company (no workspace), or admin, editor
-- or viewer of one workspace.
CREATE TABLE identity.memberships (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id   uuid        NOT NULL REFERENCES identity.companies (id),
    workspace_id uuid        REFERENCES identity.workspaces (id) ON DELETE CASCADE,
    user_id      uuid        NOT NULL REFERENCES identity.users (id) ON DELETE CASCADE,
    role         text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT memberships_role_check
        CHECK (role IN ('owner', 'admin', 'editor', 'viewer')),
    CONSTRAINT memberships_owner_check
        CHECK ((role = 'owner') = (workspace_id IS NULL)),
    CONSTRAINT memberships_user_id_workspace_id_key
        UNIQUE NULLS NOT DISTINCT (user_id, workspace_id)
);

CREATE INDEX memberships_company_id_idx ON identity.memberships (company_id);
CREATE INDEX memberships_workspace_id_idx ON identity.memberships (workspace_id);

-- An invitation of a user to a role; only the hash of its token is kept.
CREATE TABLE identity.invitations (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id   uuid        NOT NULL REFERENCES identity.companies (id),
    workspace_id uuid        REFERENCES identity.workspaces (id) ON DELETE CASCADE,
    user_id      uuid        NOT NULL REFERENCES identity.users (id) ON DELETE CASCADE,
    role         text        NOT NULL,
    token_hash   text        NOT NULL,
    created_by   uuid,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    accepted_at  timestamptz,
    CONSTRAINT invitations_role_check
        CHECK (role IN ('owner', 'admin', 'editor', 'viewer')),
    CONSTRAINT invitations_owner_check
        CHECK ((role = 'owner') = (workspace_id IS NULL)),
    CONSTRAINT invitations_token_hash_key UNIQUE (token_hash)
);

CREATE INDEX invitations_company_id_idx ON identity.invitations (company_id);
CREATE INDEX invitations_workspace_id_idx ON identity.invitations (workspace_id);
CREATE INDEX invitations_user_id_idx ON identity.invitations (user_id);

-- An API key of a workspace. prefix is the public part the key is found by;
-- only a hash of the secret is kept.
CREATE TABLE identity.api_keys (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id   uuid        NOT NULL REFERENCES identity.companies (id),
    workspace_id uuid        NOT NULL REFERENCES identity.workspaces (id) ON DELETE CASCADE,
    name         text        NOT NULL,
    prefix       text        NOT NULL,
    secret_hash  text        NOT NULL,
    role         text        NOT NULL,
    created_by   uuid,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz,
    CONSTRAINT api_keys_role_check CHECK (role IN ('admin', 'editor', 'viewer')),
    CONSTRAINT api_keys_prefix_key UNIQUE (prefix)
);

CREATE INDEX api_keys_company_id_idx ON identity.api_keys (company_id);
CREATE INDEX api_keys_workspace_id_idx ON identity.api_keys (workspace_id);

-- Rotating refresh tokens: a token is used once; reusing one revokes its
-- whole family.
CREATE TABLE identity.refresh_tokens (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id uuid        NOT NULL REFERENCES identity.companies (id),
    user_id    uuid        NOT NULL REFERENCES identity.users (id) ON DELETE CASCADE,
    family_id  uuid        NOT NULL,
    token_hash text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    revoked_at timestamptz,
    CONSTRAINT refresh_tokens_token_hash_key UNIQUE (token_hash)
);

CREATE INDEX refresh_tokens_family_id_idx ON identity.refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_id_idx ON identity.refresh_tokens (user_id);

-- Users who operate the platform itself, across companies.
CREATE TABLE identity.platform_operators (
    user_id    uuid        PRIMARY KEY REFERENCES identity.users (id) ON DELETE CASCADE,
    granted_at timestamptz NOT NULL DEFAULT now(),
    granted_by text        NOT NULL
);

-- Row-level security: the tables of a company's workspaces are seen only
-- inside a transaction scoped to that company (app.company_id, set by
-- libs/tenancy); with no company set a query sees no row. FORCE holds the
-- tables' owner to the policies too. users, refresh_tokens,
-- platform_operators and companies are the gateway's authentication tables,
-- read before any company is known: they carry no workspace and no policy.
ALTER TABLE identity.workspaces ENABLE ROW LEVEL SECURITY;
ALTER TABLE identity.workspaces FORCE ROW LEVEL SECURITY;
CREATE POLICY workspaces_company_isolation ON identity.workspaces
    USING (company_id = NULLIF(current_setting('app.company_id', true), '')::uuid)
    WITH CHECK (company_id = NULLIF(current_setting('app.company_id', true), '')::uuid);

ALTER TABLE identity.domains ENABLE ROW LEVEL SECURITY;
ALTER TABLE identity.domains FORCE ROW LEVEL SECURITY;
CREATE POLICY domains_company_isolation ON identity.domains
    USING (company_id = NULLIF(current_setting('app.company_id', true), '')::uuid)
    WITH CHECK (company_id = NULLIF(current_setting('app.company_id', true), '')::uuid);

ALTER TABLE identity.memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE identity.memberships FORCE ROW LEVEL SECURITY;
CREATE POLICY memberships_company_isolation ON identity.memberships
    USING (company_id = NULLIF(current_setting('app.company_id', true), '')::uuid)
    WITH CHECK (company_id = NULLIF(current_setting('app.company_id', true), '')::uuid);

ALTER TABLE identity.invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE identity.invitations FORCE ROW LEVEL SECURITY;
CREATE POLICY invitations_company_isolation ON identity.invitations
    USING (company_id = NULLIF(current_setting('app.company_id', true), '')::uuid)
    WITH CHECK (company_id = NULLIF(current_setting('app.company_id', true), '')::uuid);

ALTER TABLE identity.api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE identity.api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY api_keys_company_isolation ON identity.api_keys
    USING (company_id = NULLIF(current_setting('app.company_id', true), '')::uuid)
    WITH CHECK (company_id = NULLIF(current_setting('app.company_id', true), '')::uuid);

-- The look-ups below run as the owner of the tables (SECURITY DEFINER), whom
-- FORCE holds to the company policy like anyone else: these read-only
-- policies let the owner, and no one else, read every row. A superuser owner
-- bypasses row-level security anyway.
CREATE POLICY invitations_owner_lookup ON identity.invitations
    FOR SELECT
    USING (current_user = (SELECT pg_catalog.pg_get_userbyid(c.relowner)
                           FROM pg_catalog.pg_class AS c
                           WHERE c.oid = 'identity.invitations'::regclass));
CREATE POLICY api_keys_owner_lookup ON identity.api_keys
    FOR SELECT
    USING (current_user = (SELECT pg_catalog.pg_get_userbyid(c.relowner)
                           FROM pg_catalog.pg_class AS c
                           WHERE c.oid = 'identity.api_keys'::regclass));

-- The look-ups the gateway makes before it knows the company: an API key by
-- its public prefix, an invitation by the hash of its token. They return the
-- row whatever its state (revoked, expired, accepted): the gateway decides.
CREATE FUNCTION identity.api_key_by_prefix(p text)
    RETURNS SETOF identity.api_keys
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, identity, pg_temp
    ROWS 1
AS $$
    SELECT * FROM identity.api_keys WHERE prefix = p
$$;

CREATE FUNCTION identity.invitation_by_token_hash(h text)
    RETURNS SETOF identity.invitations
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, identity, pg_temp
    ROWS 1
AS $$
    SELECT * FROM identity.invitations WHERE token_hash = h
$$;

REVOKE ALL ON FUNCTION identity.api_key_by_prefix(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION identity.invitation_by_token_hash(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION identity.api_key_by_prefix(text) TO herald_gateway;
GRANT EXECUTE ON FUNCTION identity.invitation_by_token_hash(text) TO herald_gateway;

-- The gateway owns schema identity: its tables (not the migration history)
-- and those later migrations add.
GRANT USAGE ON SCHEMA identity TO herald_gateway;
GRANT SELECT, INSERT, UPDATE, DELETE ON
    identity.companies, identity.workspaces, identity.domains, identity.users,
    identity.memberships, identity.invitations, identity.api_keys,
    identity.refresh_tokens, identity.platform_operators
    TO herald_gateway;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA identity TO herald_gateway;
ALTER DEFAULT PRIVILEGES IN SCHEMA identity
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO herald_gateway;
ALTER DEFAULT PRIVILEGES IN SCHEMA identity
    GRANT USAGE, SELECT ON SEQUENCES TO herald_gateway;
