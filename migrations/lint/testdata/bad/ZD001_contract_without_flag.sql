-- herald:contract
SET lock_timeout = '5s';
SET statement_timeout = '60s';

DROP VIEW recipient.active_recipients;
