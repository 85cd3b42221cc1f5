SET lock_timeout = '5s';
SET statement_timeout = '60s';

-- Recipient counts per domain (in total and per status), so that listing a
-- domain of a million recipients answers its total without counting rows.
-- Each domain has 16 slots: a transaction adds its changes to one slot (chosen
-- by its transaction id), so concurrent writers of one domain rarely wait on
-- the same row, and a reader sums the slots.
--
-- A domain's counts start (a "baseline") the first time they are read: the
-- reader takes the domain's advisory lock exclusively, counts the domain's rows
-- and writes the slots. The triggers take the same lock shared before they
-- touch a domain's slots and change nothing while a domain has none, so a
-- write is either in the baseline's count or added to the slots afterwards,
-- never both and never neither.
CREATE TABLE recipient.domain_counts (
    company_id   uuid     NOT NULL,
    workspace_id uuid     NOT NULL,
    domain_id    uuid     NOT NULL,
    slot         bigint   NOT NULL,
    total        bigint   NOT NULL DEFAULT 0,
    subscribed   bigint   NOT NULL DEFAULT 0,
    unsubscribed bigint   NOT NULL DEFAULT 0,
    bounced      bigint   NOT NULL DEFAULT 0,
    complained   bigint   NOT NULL DEFAULT 0,
    CONSTRAINT domain_counts_pkey PRIMARY KEY (domain_id, slot),
    CONSTRAINT domain_counts_slot_check CHECK (slot BETWEEN 0 AND 15)
);

ALTER TABLE recipient.domain_counts ENABLE ROW LEVEL SECURITY;
ALTER TABLE recipient.domain_counts FORCE ROW LEVEL SECURITY;
CREATE POLICY domain_counts_tenant_isolation ON recipient.domain_counts
    USING (company_id = NULLIF(current_setting('app.company_id', true), '')::uuid
           AND workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::uuid
           AND domain_id = NULLIF(current_setting('app.domain_id', true), '')::uuid)
    WITH CHECK (company_id = NULLIF(current_setting('app.company_id', true), '')::uuid
                AND workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::uuid
                AND domain_id = NULLIF(current_setting('app.domain_id', true), '')::uuid);

GRANT SELECT, INSERT, UPDATE, DELETE ON recipient.domain_counts TO herald_recipient;

-- The trigger functions add one statement's changes (+1 per inserted row, -1
-- per deleted row, both for a status change) to the slot of the current
-- transaction, per domain that has a baseline. They run only as triggers:
-- nobody may call them (a trigger fires whatever its function's privileges).
CREATE FUNCTION recipient.count_inserted_recipients() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    d record;
BEGIN
    FOR d IN
        SELECT domain_id,
               sum(n) AS total,
               coalesce(sum(n) FILTER (WHERE status = 'subscribed'), 0) AS subscribed,
               coalesce(sum(n) FILTER (WHERE status = 'unsubscribed'), 0) AS unsubscribed,
               coalesce(sum(n) FILTER (WHERE status = 'bounced'), 0) AS bounced,
               coalesce(sum(n) FILTER (WHERE status = 'complained'), 0) AS complained
        FROM (SELECT domain_id, status, 1 AS n FROM new_rows) AS changes
        GROUP BY domain_id
        ORDER BY domain_id
    LOOP
        CONTINUE WHEN d.total = 0 AND d.subscribed = 0 AND d.unsubscribed = 0
            AND d.bounced = 0 AND d.complained = 0;
        PERFORM pg_advisory_xact_lock_shared(
            hashtextextended('recipient.domain_counts:' || d.domain_id::text, 0));
        UPDATE recipient.domain_counts
        SET total = total + d.total,
            subscribed = subscribed + d.subscribed,
            unsubscribed = unsubscribed + d.unsubscribed,
            bounced = bounced + d.bounced,
            complained = complained + d.complained
        WHERE domain_id = d.domain_id
          AND slot = (pg_current_xact_id()::text::bigint % 16);
    END LOOP;
    RETURN NULL;
END
$$;

CREATE FUNCTION recipient.count_deleted_recipients() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    d record;
BEGIN
    FOR d IN
        SELECT domain_id,
               sum(n) AS total,
               coalesce(sum(n) FILTER (WHERE status = 'subscribed'), 0) AS subscribed,
               coalesce(sum(n) FILTER (WHERE status = 'unsubscribed'), 0) AS unsubscribed,
               coalesce(sum(n) FILTER (WHERE status = 'bounced'), 0) AS bounced,
               coalesce(sum(n) FILTER (WHERE status = 'complained'), 0) AS complained
        FROM (SELECT domain_id, status, -1 AS n FROM old_rows) AS changes
        GROUP BY domain_id
        ORDER BY domain_id
    LOOP
        CONTINUE WHEN d.total = 0 AND d.subscribed = 0 AND d.unsubscribed = 0
            AND d.bounced = 0 AND d.complained = 0;
        PERFORM pg_advisory_xact_lock_shared(
            hashtextextended('recipient.domain_counts:' || d.domain_id::text, 0));
        UPDATE recipient.domain_counts
        SET total = total + d.total,
            subscribed = subscribed + d.subscribed,
            unsubscribed = unsubscribed + d.unsubscribed,
            bounced = bounced + d.bounced,
            complained = complained + d.complained
        WHERE domain_id = d.domain_id
          AND slot = (pg_current_xact_id()::text::bigint % 16);
    END LOOP;
    RETURN NULL;
END
$$;

CREATE FUNCTION recipient.count_updated_recipients() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    d record;
BEGIN
    FOR d IN
        SELECT domain_id,
               sum(n) AS total,
               coalesce(sum(n) FILTER (WHERE status = 'subscribed'), 0) AS subscribed,
               coalesce(sum(n) FILTER (WHERE status = 'unsubscribed'), 0) AS unsubscribed,
               coalesce(sum(n) FILTER (WHERE status = 'bounced'), 0) AS bounced,
               coalesce(sum(n) FILTER (WHERE status = 'complained'), 0) AS complained
        FROM (SELECT o.domain_id, o.status, -1 AS n
              FROM old_rows o JOIN new_rows nw ON nw.id = o.id
              WHERE nw.status <> o.status
              UNION ALL
              SELECT nw.domain_id, nw.status, 1 AS n
              FROM old_rows o JOIN new_rows nw ON nw.id = o.id
              WHERE nw.status <> o.status) AS changes
        GROUP BY domain_id
        ORDER BY domain_id
    LOOP
        CONTINUE WHEN d.total = 0 AND d.subscribed = 0 AND d.unsubscribed = 0
            AND d.bounced = 0 AND d.complained = 0;
        PERFORM pg_advisory_xact_lock_shared(
            hashtextextended('recipient.domain_counts:' || d.domain_id::text, 0));
        UPDATE recipient.domain_counts
        SET total = total + d.total,
            subscribed = subscribed + d.subscribed,
            unsubscribed = unsubscribed + d.unsubscribed,
            bounced = bounced + d.bounced,
            complained = complained + d.complained
        WHERE domain_id = d.domain_id
          AND slot = (pg_current_xact_id()::text::bigint % 16);
    END LOOP;
    RETURN NULL;
END
$$;

REVOKE EXECUTE ON FUNCTION recipient.count_inserted_recipients() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION recipient.count_deleted_recipients() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION recipient.count_updated_recipients() FROM PUBLIC;

CREATE TRIGGER recipients_count_insert
    AFTER INSERT ON recipient.recipients
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION recipient.count_inserted_recipients();
CREATE TRIGGER recipients_count_delete
    AFTER DELETE ON recipient.recipients
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION recipient.count_deleted_recipients();
CREATE TRIGGER recipients_count_update
    AFTER UPDATE ON recipient.recipients
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION recipient.count_updated_recipients();
