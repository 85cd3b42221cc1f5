SET lock_timeout = '5s';
SET statement_timeout = '60s';

-- The tenant policies of the two event tables read the tenant once per
-- statement instead of once per row. Written as before, each row an insert
-- writes (and each row a query reads) evaluates the three settings anew:
-- current_setting, NULLIF and a text-to-uuid cast, three times; at batches of
-- thousands of events that was a tenth to a fifth of PostgreSQL's time on the
-- insert. Each expression inside a scalar sub-select is an initplan, computed
-- once when the statement starts, and the rows compare against its value. The
-- settings cannot change during a statement, so the policies admit exactly
-- the rows they admitted before; the previous release sets the same settings.
--
-- ALTER POLICY takes the table's ACCESS EXCLUSIVE lock for a catalog change
-- only: it waits at most lock_timeout for the running batches (each a short
-- transaction) and holds the lock for an instant. On a partitioned table the
-- parent's policy is the one inserts and queries through the parent use; the
-- partitions keep their own, for queries that name one.
ALTER POLICY email_events_tenant_isolation ON events.email_events
    USING (company_id = (SELECT NULLIF(current_setting('app.company_id', true), '')::uuid)
           AND workspace_id = (SELECT NULLIF(current_setting('app.workspace_id', true), '')::uuid)
           AND domain_id = (SELECT NULLIF(current_setting('app.domain_id', true), '')::uuid))
    WITH CHECK (company_id = (SELECT NULLIF(current_setting('app.company_id', true), '')::uuid)
                AND workspace_id = (SELECT NULLIF(current_setting('app.workspace_id', true), '')::uuid)
                AND domain_id = (SELECT NULLIF(current_setting('app.domain_id', true), '')::uuid));

ALTER POLICY engagement_events_tenant_isolation ON events.engagement_events
    USING (company_id = (SELECT NULLIF(current_setting('app.company_id', true), '')::uuid)
           AND workspace_id = (SELECT NULLIF(current_setting('app.workspace_id', true), '')::uuid)
           AND domain_id = (SELECT NULLIF(current_setting('app.domain_id', true), '')::uuid))
    WITH CHECK (company_id = (SELECT NULLIF(current_setting('app.company_id', true), '')::uuid)
                AND workspace_id = (SELECT NULLIF(current_setting('app.workspace_id', true), '')::uuid)
                AND domain_id = (SELECT NULLIF(current_setting('app.domain_id', true), '')::uuid));
