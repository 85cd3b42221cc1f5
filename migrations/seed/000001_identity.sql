-- Development company, workspace, domain and user. Every insert is a no-op when
-- its row exists, so seeding again changes nothing.
--
-- The user has no password (password_hash NULL) and so cannot sign in: no
-- credential ever lives in the repository. Sign up with an address of your own,
-- or give this user a password by accepting an invitation to it.

INSERT INTO identity.companies (id, name)
VALUES ('00000000-0000-4000-8000-00000000c0de', 'Herald Development')
ON CONFLICT DO NOTHING;

INSERT INTO identity.users (id, company_id, email, name, password_hash)
VALUES ('00000000-0000-4000-8000-0000000000d1', '00000000-0000-4000-8000-00000000c0de',
        'dev@herald.localhost', 'Development User', NULL)
ON CONFLICT DO NOTHING;

-- workspaces, domains and memberships are held to the company policy even for
-- their owner (FORCE ROW LEVEL SECURITY): scope this transaction to the company.
SELECT set_config('app.company_id', '00000000-0000-4000-8000-00000000c0de', true);

INSERT INTO identity.workspaces (id, company_id, name)
VALUES ('00000000-0000-4000-8000-0000000000a1', '00000000-0000-4000-8000-00000000c0de', 'Development')
ON CONFLICT DO NOTHING;

INSERT INTO identity.domains (id, company_id, workspace_id, name)
VALUES ('00000000-0000-4000-8000-0000000000b1', '00000000-0000-4000-8000-00000000c0de',
        '00000000-0000-4000-8000-0000000000a1', 'mail.herald.localhost')
ON CONFLICT DO NOTHING;

-- Only when the user above is this company's: the address may have been taken
-- by a sign-up before the first seeding.
INSERT INTO identity.memberships (company_id, workspace_id, user_id, role)
SELECT u.company_id, NULL, u.id, 'owner'
FROM identity.users AS u
WHERE u.id = '00000000-0000-4000-8000-0000000000d1'
  AND u.company_id = '00000000-0000-4000-8000-00000000c0de'
ON CONFLICT DO NOTHING;
