SET lock_timeout = '5s';
SET statement_timeout = '60s';

-- events.engagement_events is the time-partitioned successor of
-- events.email_events (expand step of an expand/contract change, flag
-- events_partitioned_storage). A partitioned table (or a TimescaleDB
-- hypertable) cannot have a unique index on id alone, so email_events, which
-- the previous release writes with ON CONFLICT (id) DO NOTHING, cannot be
-- converted in place: a new table takes a new name, and email_events is
-- dropped in a later contract step.
--
-- An event's id and time are fixed by its producer: created_at is when the
-- event happened, as its producer says (email_events.occurred_at), and a
-- retried event carries the same id and time, so the key (id, created_at),
-- which includes the partition key, stores it once. received_at is when
-- Herald stored it. is_machine marks opens and clicks made by privacy proxies
-- and link scanners.
--
-- The kind of table depends on the server, decided here once, when it is
-- created: where TimescaleDB can be used (installed in this database, or
-- available and preloaded) a plain table, which the storage setup of
-- `migrate up` makes a hypertable; otherwise a native table partitioned by
-- range of created_at, whose weekly partitions the storage setup and the
-- worker create ahead of time (events.create_engagement_partitions). The same
-- test is migrations.timescaleUsableSQL; keep the two alike.
DO $$
DECLARE
    timescale boolean;
    preloaded text;
BEGIN
    BEGIN
        preloaded := current_setting('shared_preload_libraries');
    EXCEPTION WHEN insufficient_privilege THEN
        preloaded := '';
    END;
    timescale := EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'timescaledb')
        OR (EXISTS (SELECT FROM pg_catalog.pg_available_extensions WHERE name = 'timescaledb')
            AND preloaded ~ '(^|[\s,])"?timescaledb"?([\s,]|$)');
    EXECUTE $ddl$
        CREATE TABLE events.engagement_events (
            id           uuid        NOT NULL,
            company_id   uuid        NOT NULL,
            workspace_id uuid        NOT NULL,
            domain_id    uuid        NOT NULL,
            type         text        NOT NULL,
            campaign_id  uuid,
            recipient_id uuid,
            created_at   timestamptz NOT NULL,
            received_at  timestamptz NOT NULL DEFAULT now(),
            is_machine   boolean     NOT NULL DEFAULT false,
            user_agent   text        NOT NULL DEFAULT '',
            ip           text        NOT NULL DEFAULT '',
            url          text        NOT NULL DEFAULT '',
            bounce_class text        NOT NULL DEFAULT '',
            CONSTRAINT engagement_events_pkey PRIMARY KEY (id, created_at),
            CONSTRAINT engagement_events_type_check
                CHECK (type IN ('sent', 'delivered', 'open', 'click', 'bounce', 'complaint', 'unsubscribe'))
        )$ddl$ || CASE WHEN timescale THEN '' ELSE ' PARTITION BY RANGE (created_at)' END;
END
$$;

-- Time-series of a domain; on the partitioned table every partition gets it.
-- herald:allow ZD006 reason: the table is created empty just above, in the DO block the linter cannot read
CREATE INDEX engagement_events_domain_id_created_at_idx
    ON events.engagement_events (domain_id, created_at);

-- Per-campaign counts by type.
-- herald:allow ZD006 reason: the table is created empty just above, in the DO block the linter cannot read
CREATE INDEX engagement_events_domain_id_campaign_id_type_idx
    ON events.engagement_events (domain_id, campaign_id, type);

-- The daily rollup: per tenant, campaign (NULL for events without one) and
-- UTC day, the number of events in all and of each type; opens and clicks
-- count machine events too, and *_machine says how many of them were. The
-- worker recounts the recent days from events.engagement_events.
CREATE TABLE events.email_events_daily (
    company_id     uuid        NOT NULL,
    workspace_id   uuid        NOT NULL,
    domain_id      uuid        NOT NULL,
    campaign_id    uuid,
    day            date        NOT NULL,
    total          bigint      NOT NULL DEFAULT 0,
    sent           bigint      NOT NULL DEFAULT 0,
    delivered      bigint      NOT NULL DEFAULT 0,
    opens          bigint      NOT NULL DEFAULT 0,
    opens_machine  bigint      NOT NULL DEFAULT 0,
    clicks         bigint      NOT NULL DEFAULT 0,
    clicks_machine bigint      NOT NULL DEFAULT 0,
    bounces        bigint      NOT NULL DEFAULT 0,
    complaints     bigint      NOT NULL DEFAULT 0,
    unsubscribes   bigint      NOT NULL DEFAULT 0,
    refreshed_at   timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX email_events_daily_domain_id_day_campaign_id_key
    ON events.email_events_daily (domain_id, day, campaign_id) NULLS NOT DISTINCT;

CREATE INDEX email_events_daily_domain_id_campaign_id_idx
    ON events.email_events_daily (domain_id, campaign_id);

-- Row-level security as on email_events. Policies on a partitioned table
-- apply to the queries through it; the partitions get the same policy of
-- their own (events.create_engagement_partitions), for queries that name one.
ALTER TABLE events.engagement_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE events.engagement_events FORCE ROW LEVEL SECURITY;
CREATE POLICY engagement_events_tenant_isolation ON events.engagement_events
    USING (company_id = NULLIF(current_setting('app.company_id', true), '')::uuid
           AND workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::uuid
           AND domain_id = NULLIF(current_setting('app.domain_id', true), '')::uuid)
    WITH CHECK (company_id = NULLIF(current_setting('app.company_id', true), '')::uuid
                AND workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::uuid
                AND domain_id = NULLIF(current_setting('app.domain_id', true), '')::uuid);

ALTER TABLE events.email_events_daily ENABLE ROW LEVEL SECURITY;
ALTER TABLE events.email_events_daily FORCE ROW LEVEL SECURITY;
CREATE POLICY email_events_daily_tenant_isolation ON events.email_events_daily
    USING (company_id = NULLIF(current_setting('app.company_id', true), '')::uuid
           AND workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::uuid
           AND domain_id = NULLIF(current_setting('app.domain_id', true), '')::uuid)
    WITH CHECK (company_id = NULLIF(current_setting('app.company_id', true), '')::uuid
                AND workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::uuid
                AND domain_id = NULLIF(current_setting('app.domain_id', true), '')::uuid);

-- The worker's maintenance jobs work across tenants, and only these policies
-- let them: the rollup reads every event and rewrites every tenant's recent
-- days; the backfill reads every legacy event (it writes the new table one
-- tenant at a time, under the tenant policy). They name herald_worker alone.
CREATE POLICY engagement_events_worker_read ON events.engagement_events
    FOR SELECT TO herald_worker USING (true);
CREATE POLICY email_events_worker_read ON events.email_events
    FOR SELECT TO herald_worker USING (true);
CREATE POLICY email_events_daily_worker_rollup ON events.email_events_daily
    TO herald_worker USING (true) WITH CHECK (true);

-- Weekly partitions (Monday 00:00 UTC to the next), named
-- engagement_events_pYYYYMMDD after their first day, covering p_from to p_to;
-- returns the names of those it created. SECURITY DEFINER: creating a
-- partition takes the parent's owner, and the service roles own nothing. The
-- worker creates them ahead of time; events-ingest calls it only when an
-- insert finds no partition for an event. Does nothing on a hypertable.
CREATE FUNCTION events.create_engagement_partitions(p_from timestamptz, p_to timestamptz)
RETURNS SETOF text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, events, pg_temp
SET "TimeZone" = 'UTC'
SET lock_timeout = '5s'
AS $$
DECLARE
    week timestamptz;
    part text;
    tenant text := $p$company_id = NULLIF(current_setting('app.company_id', true), '')::uuid
        AND workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::uuid
        AND domain_id = NULLIF(current_setting('app.domain_id', true), '')::uuid$p$;
BEGIN
    IF p_from IS NULL OR p_to IS NULL OR p_to < p_from THEN
        RAISE EXCEPTION 'create_engagement_partitions: need p_from <= p_to' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_to - p_from > interval '400 days' THEN
        RAISE EXCEPTION 'create_engagement_partitions: at most 400 days at once' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (SELECT c.relkind FROM pg_class AS c WHERE c.oid = 'events.engagement_events'::regclass) <> 'p' THEN
        RETURN;
    END IF;
    -- Two callers at once (the worker, an insert) must not race to create the same partition.
    PERFORM pg_advisory_xact_lock(hashtextextended('events.engagement_events partitions', 0));
    week := date_trunc('week', p_from);
    WHILE week <= p_to LOOP
        part := 'engagement_events_p' || to_char(week, 'YYYYMMDD');
        IF to_regclass('events.' || quote_ident(part)) IS NULL THEN
            -- Created apart, then attached: ATTACH PARTITION takes only a SHARE UPDATE
            -- EXCLUSIVE lock on the parent, where CREATE TABLE ... PARTITION OF would take an
            -- ACCESS EXCLUSIVE one and stop the inserts meanwhile. The table is empty, so
            -- attaching it (and building its copies of the parent's indexes) is instant.
            EXECUTE format('CREATE TABLE events.%I (LIKE events.engagement_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
            EXECUTE format('ALTER TABLE events.%I ENABLE ROW LEVEL SECURITY', part);
            EXECUTE format('ALTER TABLE events.%I FORCE ROW LEVEL SECURITY', part);
            EXECUTE format('CREATE POLICY %I ON events.%I USING (%s) WITH CHECK (%s)',
                part || '_tenant_isolation', part, tenant, tenant);
            EXECUTE format('ALTER TABLE events.engagement_events ATTACH PARTITION events.%I FOR VALUES FROM (%L) TO (%L)',
                part, week, week + interval '7 days');
            RETURN NEXT part;
        END IF;
        week := week + interval '7 days';
    END LOOP;
END
$$;

-- Retention: drops every weekly partition whose last instant is before
-- p_before (the worker passes now() - 90 days), detaching it first; returns
-- the names of those it dropped. SECURITY DEFINER for the same reason as
-- above; a function runs inside a transaction, so the detach cannot be
-- CONCURRENTLY: it waits at most lock_timeout for the parent's lock, and the
-- next run retries. Does nothing on a hypertable.
CREATE FUNCTION events.drop_engagement_partitions(p_before timestamptz)
RETURNS SETOF text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, events, pg_temp
SET "TimeZone" = 'UTC'
SET lock_timeout = '2s'
AS $$
DECLARE
    part text;
BEGIN
    IF p_before IS NULL THEN
        RAISE EXCEPTION 'drop_engagement_partitions: need p_before' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('events.engagement_events partitions', 0));
    FOR part IN
        SELECT c.relname
        FROM pg_inherits AS i
        JOIN pg_class AS c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'events.engagement_events'::regclass
          AND c.relname ~ '^engagement_events_p[0-9]{8}$'
          AND to_date(substr(c.relname, 20), 'YYYYMMDD') + 7 <= (p_before AT TIME ZONE 'UTC')::date
        ORDER BY c.relname
    LOOP
        EXECUTE format('ALTER TABLE events.engagement_events DETACH PARTITION events.%I', part);
        EXECUTE format('DROP TABLE events.%I', part);
        RETURN NEXT part;
    END LOOP;
END
$$;

REVOKE ALL ON FUNCTION events.create_engagement_partitions(timestamptz, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION events.drop_engagement_partitions(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION events.create_engagement_partitions(timestamptz, timestamptz) TO herald_events, herald_worker;
GRANT EXECUTE ON FUNCTION events.drop_engagement_partitions(timestamptz) TO herald_worker;

-- herald_events has both tables through the default privileges of the
-- schema (000002). The worker: read the legacy events (backfill), read and
-- write the new ones (rollup, backfill), rewrite the rollup; never UPDATE an
-- event nor DELETE one (retention drops whole partitions, as the owner).
GRANT USAGE ON SCHEMA events TO herald_worker;
GRANT SELECT ON events.email_events TO herald_worker;
GRANT SELECT, INSERT ON events.engagement_events TO herald_worker;
GRANT SELECT, INSERT, DELETE ON events.email_events_daily TO herald_worker;
