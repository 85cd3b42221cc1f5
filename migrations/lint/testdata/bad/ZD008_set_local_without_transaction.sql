-- herald:no-transaction
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = 0;

CREATE INDEX CONCURRENTLY campaigns_state_idx ON campaign.campaigns (state);
