SET lock_timeout = '5s';
SET statement_timeout = '60s';

REVOKE ALL ON events.campaign_engagement_uniques FROM herald_worker;
REVOKE ALL ON events.campaign_recipient_engagement FROM herald_worker;
DROP TABLE IF EXISTS events.campaign_engagement_uniques;
DROP TABLE IF EXISTS events.campaign_recipient_engagement;
