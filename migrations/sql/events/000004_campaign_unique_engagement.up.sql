SET lock_timeout = '5s';
SET statement_timeout = '60s';

-- Unique opens and clicks of a campaign: how many of its recipients opened
-- (clicked) at least once, in all and by a human. The daily rollup cannot say:
-- a recipient who opens on two days is one unique opener, not two.
--
-- events.campaign_recipient_engagement holds, per campaign and recipient, the
-- time of the first open and click, in all and by a human (an event not
-- marked is_machine). The worker's rollup keeps it from the events of its
-- recount window: a first time only ever moves earlier (least()), so a run
-- that repeats changes nothing and an event arriving late is counted. It
-- outlives the events' retention, so unique counts stay.
CREATE TABLE events.campaign_recipient_engagement (
    company_id           uuid        NOT NULL,
    workspace_id         uuid        NOT NULL,
    domain_id            uuid        NOT NULL,
    campaign_id          uuid        NOT NULL,
    recipient_id         uuid        NOT NULL,
    first_open_at        timestamptz,
    first_human_open_at  timestamptz,
    first_click_at       timestamptz,
    first_human_click_at timestamptz,
    CONSTRAINT campaign_recipient_engagement_pkey PRIMARY KEY (domain_id, campaign_id, recipient_id)
);

-- events.campaign_engagement_uniques holds the counts of the table above per
-- campaign, recounted by the rollup for the campaigns with opens or clicks in
-- its window, so that reading a campaign's stats is one row however many
-- recipients it has.
CREATE TABLE events.campaign_engagement_uniques (
    company_id          uuid        NOT NULL,
    workspace_id        uuid        NOT NULL,
    domain_id           uuid        NOT NULL,
    campaign_id         uuid        NOT NULL,
    unique_opens        bigint      NOT NULL DEFAULT 0,
    unique_human_opens  bigint      NOT NULL DEFAULT 0,
    unique_clicks       bigint      NOT NULL DEFAULT 0,
    unique_human_clicks bigint      NOT NULL DEFAULT 0,
    refreshed_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT campaign_engagement_uniques_pkey PRIMARY KEY (domain_id, campaign_id)
);

ALTER TABLE events.campaign_recipient_engagement ENABLE ROW LEVEL SECURITY;
ALTER TABLE events.campaign_recipient_engagement FORCE ROW LEVEL SECURITY;
CREATE POLICY campaign_recipient_engagement_tenant_isolation ON events.campaign_recipient_engagement
    USING (company_id = NULLIF(current_setting('app.company_id', true), '')::uuid
           AND workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::uuid
           AND domain_id = NULLIF(current_setting('app.domain_id', true), '')::uuid)
    WITH CHECK (company_id = NULLIF(current_setting('app.company_id', true), '')::uuid
                AND workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::uuid
                AND domain_id = NULLIF(current_setting('app.domain_id', true), '')::uuid);

ALTER TABLE events.campaign_engagement_uniques ENABLE ROW LEVEL SECURITY;
ALTER TABLE events.campaign_engagement_uniques FORCE ROW LEVEL SECURITY;
CREATE POLICY campaign_engagement_uniques_tenant_isolation ON events.campaign_engagement_uniques
    USING (company_id = NULLIF(current_setting('app.company_id', true), '')::uuid
           AND workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::uuid
           AND domain_id = NULLIF(current_setting('app.domain_id', true), '')::uuid)
    WITH CHECK (company_id = NULLIF(current_setting('app.company_id', true), '')::uuid
                AND workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::uuid
                AND domain_id = NULLIF(current_setting('app.domain_id', true), '')::uuid);

-- The rollup works across tenants, as for events.email_events_daily; it never
-- deletes a first time, only moves it earlier.
CREATE POLICY campaign_recipient_engagement_worker_rollup ON events.campaign_recipient_engagement
    TO herald_worker USING (true) WITH CHECK (true);
CREATE POLICY campaign_engagement_uniques_worker_rollup ON events.campaign_engagement_uniques
    TO herald_worker USING (true) WITH CHECK (true);

GRANT SELECT, INSERT, UPDATE ON events.campaign_recipient_engagement TO herald_worker;
GRANT SELECT, INSERT, UPDATE ON events.campaign_engagement_uniques TO herald_worker;
