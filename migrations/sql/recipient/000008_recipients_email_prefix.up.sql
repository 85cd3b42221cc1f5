-- herald:no-transaction
SET lock_timeout = '5s';
SET statement_timeout = 0;

-- Email prefix search within a domain (email LIKE 'ada%'), whatever the
-- database's collation.
CREATE INDEX CONCURRENTLY recipients_domain_id_email_pattern_idx
    ON recipient.recipients (domain_id, email text_pattern_ops);
