SET lock_timeout = '5s';
SET statement_timeout = '60s';

-- The id comes from the producer of the event, so that ingesting the same
-- event twice is a no-op (ON CONFLICT (id) DO NOTHING).
CREATE TABLE events.email_events (
    id           uuid        PRIMARY KEY,
    company_id   uuid        NOT NULL,
    workspace_id uuid        NOT NULL,
    domain_id    uuid        NOT NULL,
    type         text        NOT NULL,
    campaign_id  uuid,
    recipient_id uuid,
    occurred_at  timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    user_agent   text        NOT NULL DEFAULT '',
    ip           text        NOT NULL DEFAULT '',
    url          text        NOT NULL DEFAULT '',
    bounce_class text        NOT NULL DEFAULT '',
    CONSTRAINT email_events_type_check
        CHECK (type IN ('sent', 'delivered', 'open', 'click', 'bounce', 'complaint', 'unsubscribe'))
);

-- Time-series and stats queries of a domain.
CREATE INDEX email_events_domain_id_occurred_at_idx
    ON events.email_events (domain_id, occurred_at);

-- Per-campaign counts by type.
CREATE INDEX email_events_campaign_id_type_idx
    ON events.email_events (campaign_id, type);
