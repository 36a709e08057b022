-- name: get_message^
SELECT id, conversation_id, channel, direction, type, text, content, provider_message_id, status, error_code,
       error_message, sender_type, sender_agent_id, sent_at, delivered_at, read_at, failed_at, created_at
  FROM messages WHERE tenant_id = :tenant_id AND id = :id;

-- name: list_messages
SELECT id, conversation_id, channel, direction, type, text, content, provider_message_id, status, error_code,
       error_message, sender_type, sender_agent_id, sent_at, delivered_at, read_at, failed_at, created_at
  FROM messages
 WHERE tenant_id = :tenant_id AND conversation_id = :conversation_id
   AND (created_at, id) < (:cursor_at, :cursor_id::uuid)                                             --? after_desc
   AND (created_at, id) > (:cursor_at, :cursor_id::uuid)                                             --? after_asc
 ORDER BY created_at DESC, id DESC                                                                   --? desc
 ORDER BY created_at, id                                                                             --? asc
 LIMIT :limit
OFFSET :offset                                                                                       --? offset
;

-- name: count_messages$
SELECT count(*) FROM messages WHERE tenant_id = :tenant_id AND conversation_id = :conversation_id;

-- name: find_by_provider_id^
SELECT id, conversation_id FROM messages
 WHERE tenant_id = :tenant_id AND channel = :channel AND provider_message_id = :provider_message_id;

-- name: ingest_inbound
-- Ingestion's hot path, one round trip per delivery: the function (migration 0004) does all of it.
SELECT item, message_id, conversation_id, contact_id, duplicate, conversation_created, event_ids
  FROM ingest_inbound(:tenant_id, :channel, :account_id, :external_id, :contact_name, :contact_phone,
                      :contact_email, :type, :text, :content, :provider_message_id, :at, :preview, :source);

-- name: insert_outbound$
INSERT INTO messages (tenant_id, conversation_id, channel, direction, type, text, content, status, sender_type,
                      sender_agent_id)
VALUES (:tenant_id, :conversation_id, :channel, 'outbound', :type, :text, :content, 'queued', :sender_type,
        :sender_agent_id)
RETURNING id;

-- name: claim_for_delivery^
-- A lease on the queued message a delivery job is about to send, committed before the provider is
-- called: while it runs, no other job (a duplicate, the sweeper's, a retry) takes the message; a
-- worker that died mid-send leaves a lease that runs out, and the next job sends it. With what the
-- send needs: the contact's address on the channel (its newest identity there, else the contact's
-- phone or email) and, for email, the latest email the contact sent in the conversation (threading).
WITH leased AS (
  UPDATE messages
     SET sending_until = clock_timestamp() + make_interval(secs => :lease_seconds), send_attempts = send_attempts + 1
   WHERE tenant_id = :tenant_id AND id = :id AND status = 'queued' AND direction = 'outbound'
     AND (sending_until IS NULL OR sending_until < clock_timestamp())
  RETURNING id, conversation_id, channel, type, text, content, send_attempts
)
SELECT l.id, l.conversation_id, l.channel, l.type, l.text, l.content, l.send_attempts, c.account_id, c.contact_id,
       coalesce((SELECT i.external_id FROM contact_identities i
                  WHERE i.tenant_id = c.tenant_id AND i.contact_id = c.contact_id AND i.channel = l.channel
                  ORDER BY i.created_at DESC LIMIT 1),
                CASE l.channel WHEN 'whatsapp' THEN ct.phone WHEN 'email' THEN ct.email END) AS recipient,
       CASE WHEN l.channel = 'email' THEN
         (SELECT m.content -> 'email' FROM messages m
           WHERE m.tenant_id = c.tenant_id AND m.conversation_id = c.id AND m.direction = 'inbound'
             AND m.channel = 'email' AND m.content ? 'email'
           ORDER BY m.created_at DESC, m.id DESC LIMIT 1)
       END AS answering
  FROM leased l
  JOIN conversations c ON c.tenant_id = :tenant_id AND c.id = l.conversation_id
  JOIN contacts ct ON ct.tenant_id = c.tenant_id AND ct.id = c.contact_id;

-- name: mark_sent$
-- The provider took the message: it is sent, and its lease is over.
UPDATE messages
   SET status = 'sent', provider_message_id = :provider_message_id, sent_at = clock_timestamp(), sending_until = NULL,
       error_code = NULL, error_message = NULL
 WHERE tenant_id = :tenant_id AND id = :id AND status = 'queued'
RETURNING channel;

-- name: mark_failed!
UPDATE messages
   SET status = 'failed', error_code = :error_code, error_message = :error_message, failed_at = clock_timestamp(),
       sending_until = NULL
 WHERE tenant_id = :tenant_id AND id = :id AND status = 'queued';

-- name: release_lease!
-- A send to try again later: the next attempt may take the message at once; the last error is kept
-- (still queued) so that what is holding the message up can be seen.
UPDATE messages SET sending_until = NULL, error_code = :error_code, error_message = :error_message
 WHERE tenant_id = :tenant_id AND id = :id AND status = 'queued';

-- name: take_early_statuses
-- The receipts that arrived before the send's answer named the provider's id (apply_statuses kept
-- them), let go as they are handed back to be applied to the message just marked sent.
DELETE FROM early_message_statuses
 WHERE tenant_id = :tenant_id AND channel = :channel AND provider_message_id = :provider_message_id
RETURNING provider_message_id, status, occurred_at, error_code, error_message;

-- name: queued_messages_due
SELECT tenant_id, message_id FROM queued_messages_due(:older_than, :limit);

-- name: search_messages
SELECT m.id, m.conversation_id, m.channel, m.direction, m.type, m.text, m.content, m.provider_message_id, m.status,
       m.error_code, m.error_message, m.sender_type, m.sender_agent_id, m.sent_at, m.delivered_at, m.read_at,
       m.failed_at, m.created_at,
       ts_rank(m.search, query) AS rank,
       -- Escaped before highlighting, so the snippet is safe HTML whose only tags are <mark>.
       ts_headline('simple', replace(replace(replace(coalesce(m.text, ''), '&', '&amp;'), '<', '&lt;'), '>', '&gt;'),
                   query, 'StartSel=<mark>, StopSel=</mark>, MaxFragments=2, MaxWords=24, MinWords=8, ShortWord=0') AS snippet
  FROM messages m
  JOIN conversations c ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id,
       websearch_to_tsquery('simple', :q) query
 WHERE m.tenant_id = :tenant_id AND m.search @@ query
   AND m.channel = :channel::text                                                                    --? channel
   AND m.conversation_id = :conversation_id::uuid                                                    --? conversation_id
   AND m.direction = :direction::text                                                                --? direction
   AND m.created_at >= :created_from::timestamptz                                                    --? created_from
   AND m.created_at < :created_to::timestamptz                                                       --? created_to
   AND (c.assigned_agent_id = :viewer_id                                                             --? viewer_id
        OR (c.assigned_agent_id IS NULL AND c.division_id IS NULL)                                   --? viewer_id
        OR c.division_id = ANY(:viewer_divisions::uuid[]))                                           --? viewer_id
 ORDER BY rank DESC, m.created_at DESC, m.id DESC
 LIMIT :limit
OFFSET :offset                                                                                       --? offset
;

-- name: count_search$
SELECT count(*)
  FROM messages m
  JOIN conversations c ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id,
       websearch_to_tsquery('simple', :q) query
 WHERE m.tenant_id = :tenant_id AND m.search @@ query
   AND m.channel = :channel::text                                                                    --? channel
   AND m.conversation_id = :conversation_id::uuid                                                    --? conversation_id
   AND m.direction = :direction::text                                                                --? direction
   AND m.created_at >= :created_from::timestamptz                                                    --? created_from
   AND m.created_at < :created_to::timestamptz                                                       --? created_to
   AND (c.assigned_agent_id = :viewer_id                                                             --? viewer_id
        OR (c.assigned_agent_id IS NULL AND c.division_id IS NULL)                                   --? viewer_id
        OR c.division_id = ANY(:viewer_divisions::uuid[]))                                           --? viewer_id
;

-- name: has_media$
SELECT media_id IS NOT NULL FROM messages WHERE tenant_id = :tenant_id AND id = :id;

-- name: attach_media!
-- The customer's media, fetched into media storage, linked to its message (and named in its content).
UPDATE messages
   SET media_id = :media_id::uuid,
       content = jsonb_set(content, '{media}',
                           coalesce(content -> 'media', '{}') || jsonb_build_object('media_id', :media_id::uuid::text))
 WHERE tenant_id = :tenant_id AND id = :id;

-- name: lock_receipts!
-- Receipts and the send's answer for one provider id take turns (until the transaction ends): a
-- receipt either finds the message marked sent, or waits in early_message_statuses where marking
-- it sent then finds it, never falling between the two.
SELECT pg_advisory_xact_lock(hashtextextended(:tenant_id::uuid::text || ':' || provider_message_id, 0))
  FROM unnest(:provider_message_ids::text[]) AS provider_message_id
 ORDER BY provider_message_id;

-- name: apply_statuses^
-- A provider's receipts, in one round trip: each outbound message named moves forward to the
-- furthest status the batch holds for it, never back (read is never made delivered; a failure
-- after delivery is news of nothing); each receipt's moment is kept once. Receipts for provider
-- ids no message has yet (the send's answer is still on its way) wait in early_message_statuses
-- until the send is recorded.
WITH receipt AS (
  SELECT r.*, array_position(ARRAY['queued', 'sent', 'failed', 'delivered', 'read'], r.status) AS rank
    FROM unnest(:provider_message_ids::text[], :statuses::text[], :occurred_at::timestamptz[], :error_codes::text[],
                :error_messages::text[]) AS r(provider_message_id, status, occurred_at, error_code, error_message)
), furthest AS (
  SELECT DISTINCT ON (provider_message_id) provider_message_id, status, rank, error_code, error_message,
         min(occurred_at) FILTER (WHERE status = 'sent') OVER w AS sent_at,
         min(occurred_at) FILTER (WHERE status IN ('delivered', 'read')) OVER w AS delivered_at,
         min(occurred_at) FILTER (WHERE status = 'read') OVER w AS read_at,
         min(occurred_at) FILTER (WHERE status = 'failed') OVER w AS failed_at
    FROM receipt
  WINDOW w AS (PARTITION BY provider_message_id)
   ORDER BY provider_message_id, rank DESC
), moved AS (
  UPDATE messages m
     SET status = CASE WHEN f.rank > array_position(ARRAY['queued', 'sent', 'failed', 'delivered', 'read'], m.status)
                       THEN f.status ELSE m.status END,
         sent_at = coalesce(m.sent_at, f.sent_at, f.delivered_at),
         delivered_at = coalesce(m.delivered_at, f.delivered_at),
         read_at = coalesce(m.read_at, f.read_at),
         failed_at = CASE WHEN f.status = 'failed' AND m.status IN ('queued', 'sent') THEN f.failed_at
                          ELSE m.failed_at END,
         error_code = CASE WHEN f.status = 'failed' AND m.status IN ('queued', 'sent') THEN f.error_code
                           ELSE m.error_code END,
         error_message = CASE WHEN f.status = 'failed' AND m.status IN ('queued', 'sent') THEN f.error_message
                              ELSE m.error_message END
    FROM furthest f
   WHERE m.tenant_id = :tenant_id AND m.channel = :channel AND m.provider_message_id = f.provider_message_id
     AND m.direction = 'outbound'
  RETURNING m.provider_message_id
), waiting AS (
  INSERT INTO early_message_statuses (tenant_id, channel, provider_message_id, status, occurred_at, error_code,
                                      error_message)
  SELECT :tenant_id, :channel, r.provider_message_id, r.status, r.occurred_at, r.error_code, r.error_message
    FROM receipt r
   WHERE NOT EXISTS (SELECT 1 FROM moved WHERE moved.provider_message_id = r.provider_message_id)
  ON CONFLICT DO NOTHING
  RETURNING provider_message_id
)
SELECT (SELECT count(*) FROM moved) AS moved, (SELECT count(*) FROM waiting) AS waiting;

-- name: purge_early_statuses$
SELECT purge_early_message_statuses(:older_than);

-- name: email_thread_identity$
-- The email identity of the contact whose conversation holds the latest of the messages an email
-- answers (by Message-ID): a reply joins that thread even when sent from another address.
SELECT i.external_id
  FROM messages m
  JOIN conversations c ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id
  JOIN contact_identities i ON i.tenant_id = c.tenant_id AND i.contact_id = c.contact_id AND i.channel = 'email'
 WHERE m.tenant_id = :tenant_id AND m.channel = 'email' AND m.provider_message_id = ANY(:message_ids::text[])
 ORDER BY m.created_at DESC, i.created_at
 LIMIT 1;

-- name: insert_outbound_many
-- Outbound messages queued in many conversations at once (one each), sent by automation.
INSERT INTO messages (tenant_id, conversation_id, channel, direction, type, text, content, status, sender_type)
SELECT :tenant_id, r.conversation_id, :channel, 'outbound', r.type, r.text, r.content, 'queued', 'automation'
  FROM unnest(:conversation_ids::uuid[], :types::text[], :texts::text[], :contents::jsonb[])
       AS r (conversation_id, type, text, content)
RETURNING id, conversation_id;

-- name: withdraw_queued
-- Queued messages taken back before any send of theirs began (a send under way keeps its lease and
-- goes): they fail with the reason given and the delivery worker passes them over.
UPDATE messages
   SET status = 'failed', error_code = 'withdrawn', error_message = :reason, failed_at = clock_timestamp()
 WHERE tenant_id = :tenant_id AND id = ANY(:ids::uuid[]) AND status = 'queued' AND direction = 'outbound'
   AND (sending_until IS NULL OR sending_until < clock_timestamp())
RETURNING id;
