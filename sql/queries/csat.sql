-- CSAT surveys: sent to the customer with a secret link, answered once through it. A survey still
-- `sent` past its expiry reads as expired.

-- name: close_expired!
-- An unanswered survey whose link ran out no longer keeps the conversation from a new one.
UPDATE csat_surveys SET status = 'expired'
 WHERE tenant_id = :tenant_id AND conversation_id = :conversation_id AND status = 'sent' AND expires_at <= :now;

-- name: open_survey_exists$
SELECT EXISTS (SELECT 1 FROM csat_surveys
                WHERE tenant_id = :tenant_id AND conversation_id = :conversation_id AND status = 'sent');

-- name: survey_for_event_exists$
SELECT EXISTS (SELECT 1 FROM csat_surveys WHERE tenant_id = :tenant_id AND source_event_id = :event_id);

-- name: insert_survey<!
INSERT INTO csat_surveys (tenant_id, conversation_id, token_hash, channel, agent_id, division_id, message_id,
                          created_by, source_event_id, sent_at, expires_at)
VALUES (:tenant_id, :conversation_id, :token_hash, :channel, :agent_id, :division_id, :message_id,
        :created_by, :source_event_id, :sent_at, :expires_at)
RETURNING id;

-- name: latest_survey^
SELECT id, conversation_id,
       CASE WHEN status = 'sent' AND expires_at <= :now THEN 'expired' ELSE status END AS status,
       channel, agent_id, division_id, message_id, rating, comment, created_by, sent_at, expires_at, submitted_at
  FROM csat_surveys
 WHERE tenant_id = :tenant_id AND conversation_id = :conversation_id
 ORDER BY sent_at DESC, id DESC
 LIMIT 1;

-- name: tenant_by_token_hash$
SELECT csat_tenant_by_token_hash(:token_hash);

-- name: lock_by_token_hash^
-- Held until the answer is stored: a second answer sent at the same moment finds it answered.
SELECT id, conversation_id, status, expires_at, agent_id, division_id, channel
  FROM csat_surveys
 WHERE tenant_id = :tenant_id AND token_hash = :token_hash
   FOR UPDATE;

-- name: submit!
UPDATE csat_surveys
   SET status = 'submitted', rating = :rating, comment = :comment, submitted_at = :now
 WHERE tenant_id = :tenant_id AND id = :id;

-- name: send_on_resolve$
SELECT coalesce((SELECT send_on_resolve FROM csat_settings WHERE tenant_id = :tenant_id), false);

-- name: set_send_on_resolve!
INSERT INTO csat_settings (tenant_id, send_on_resolve, updated_by, updated_at)
VALUES (:tenant_id, :send_on_resolve, :user_id, :now)
    ON CONFLICT (tenant_id) DO UPDATE
   SET send_on_resolve = EXCLUDED.send_on_resolve, updated_by = EXCLUDED.updated_by, updated_at = EXCLUDED.updated_at;

-- name: analytics
-- One row for all surveys sent in the range (dimension 'all') and one per agent, division and
-- channel, in one pass (grouping sets). Expired surveys count as sent and unanswered.
SELECT CASE GROUPING(agent_id, division_id, channel)
         WHEN 3 THEN 'agent' WHEN 5 THEN 'division' WHEN 6 THEN 'channel' ELSE 'all' END AS dimension,
       agent_id, division_id, channel,
       count(*) AS surveys_sent,
       count(rating) AS responses,
       coalesce(round(count(rating)::numeric / nullif(count(*), 0), 4), 0)::float8 AS response_rate,
       round(avg(rating), 2)::float8 AS average_rating,
       count(*) FILTER (WHERE rating = 1) AS rated_1,
       count(*) FILTER (WHERE rating = 2) AS rated_2,
       count(*) FILTER (WHERE rating = 3) AS rated_3,
       count(*) FILTER (WHERE rating = 4) AS rated_4,
       count(*) FILTER (WHERE rating = 5) AS rated_5
  FROM csat_surveys
 WHERE tenant_id = :tenant_id
   AND (:created_from::timestamptz IS NULL OR sent_at >= :created_from)
   AND (:created_to::timestamptz IS NULL OR sent_at <= :created_to)
 GROUP BY GROUPING SETS ((), (agent_id), (division_id), (channel))
 ORDER BY dimension, surveys_sent DESC, agent_id, division_id, channel;
