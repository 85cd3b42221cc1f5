/* Timeouts may come after comments, in any order, with TO or =, and as SET
   LOCAL in a file that runs as one transaction. */

SET LOCAL statement_timeout TO '1min';
SHOW lock_timeout;
SET SESSION lock_timeout = 5000;

CREATE TABLE campaign.templates (id uuid PRIMARY KEY);
