SET lock_timeout = '5s';
SET statement_timeout = '60s';

INSERT INTO recipient.tags (id, name)
VALUES (gen_random_uuid(), 'never closed);
