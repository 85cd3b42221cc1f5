-- herald:no-transaction
SET lock_timeout = '5s';
SET statement_timeout = 0;

-- Equality filters on custom fields (attributes @> '{"plan": "pro"}'). The
-- domain is not part of a GIN index; the planner combines it with the
-- domain's btree indexes.
CREATE INDEX CONCURRENTLY recipients_attributes_gin_idx
    ON recipient.recipients USING gin (attributes jsonb_path_ops);
