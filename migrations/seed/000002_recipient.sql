-- A few recipients in the development domain, one of each status.

-- recipient.recipients is held to the tenant policy even for its owner (FORCE
-- ROW LEVEL SECURITY): scope this transaction to the development domain.
SELECT set_config('app.company_id', '00000000-0000-4000-8000-00000000c0de', true),
       set_config('app.workspace_id', '00000000-0000-4000-8000-0000000000a1', true),
       set_config('app.domain_id', '00000000-0000-4000-8000-0000000000b1', true);

INSERT INTO recipient.recipients (id, company_id, workspace_id, domain_id, email, status, attributes)
VALUES
    ('00000000-0000-4000-8000-000000000e01', '00000000-0000-4000-8000-00000000c0de',
     '00000000-0000-4000-8000-0000000000a1', '00000000-0000-4000-8000-0000000000b1',
     'ada@example.com', 'subscribed', '{"first_name": "Ada"}'),
    ('00000000-0000-4000-8000-000000000e02', '00000000-0000-4000-8000-00000000c0de',
     '00000000-0000-4000-8000-0000000000a1', '00000000-0000-4000-8000-0000000000b1',
     'grace@example.com', 'subscribed', '{"first_name": "Grace"}'),
    ('00000000-0000-4000-8000-000000000e03', '00000000-0000-4000-8000-00000000c0de',
     '00000000-0000-4000-8000-0000000000a1', '00000000-0000-4000-8000-0000000000b1',
     'linus@example.com', 'unsubscribed', '{}'),
    ('00000000-0000-4000-8000-000000000e04', '00000000-0000-4000-8000-00000000c0de',
     '00000000-0000-4000-8000-0000000000a1', '00000000-0000-4000-8000-0000000000b1',
     'bounce@example.com', 'bounced', '{}')
ON CONFLICT DO NOTHING;
