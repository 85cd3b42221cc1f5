-- A draft campaign in the development domain.

-- campaign.campaigns is held to the tenant policy even for its owner (FORCE
-- ROW LEVEL SECURITY): scope this transaction to the development domain.
SELECT set_config('app.company_id', '00000000-0000-4000-8000-00000000c0de', true),
       set_config('app.workspace_id', '00000000-0000-4000-8000-0000000000a1', true),
       set_config('app.domain_id', '00000000-0000-4000-8000-0000000000b1', true);

INSERT INTO campaign.campaigns (id, company_id, workspace_id, domain_id, name, subject, from_email, text_body)
VALUES ('00000000-0000-4000-8000-000000000f01', '00000000-0000-4000-8000-00000000c0de',
        '00000000-0000-4000-8000-0000000000a1', '00000000-0000-4000-8000-0000000000b1',
        'Welcome', 'Welcome to Herald, {{first_name}}', 'hello@mail.herald.localhost',
        'Hello {{first_name}}, this is a development campaign.')
ON CONFLICT DO NOTHING;
