SET lock_timeout = '5s';
SET statement_timeout = '60s';

ALTER TABLE identity.domains
    ADD CONSTRAINT domains_workspace_id_fkey
        FOREIGN KEY (workspace_id) REFERENCES identity.workspaces (id) NOT VALID,
    ADD CONSTRAINT domains_name_check CHECK (name <> '') NOT VALID;
