-- herald:no-transaction
SET lock_timeout = '5s';
SET statement_timeout = 0;

CREATE INDEX CONCURRENTLY recipients_domain_id_status_idx ON recipient.recipients (domain_id, status);
CREATE INDEX CONCURRENTLY recipients_domain_id_email_idx ON recipient.recipients (domain_id, email);
