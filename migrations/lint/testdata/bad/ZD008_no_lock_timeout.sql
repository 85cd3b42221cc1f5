SET statement_timeout = '60s';

-- Comments do not count as statements.
CREATE TABLE campaign.templates (id uuid PRIMARY KEY, body text NOT NULL DEFAULT '');
