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
-- The queued message a delivery job is about to send; a message already past queued is left alone.
SELECT m.id, m.conversation_id, m.channel, m.type, m.text, m.content, c.account_id, c.contact_id
  FROM messages m JOIN conversations c ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id
 WHERE m.tenant_id = :tenant_id AND m.id = :id AND m.status = 'queued'
   FOR UPDATE OF m SKIP LOCKED;

-- name: mark_sent!
UPDATE messages SET status = 'sent', provider_message_id = :provider_message_id, sent_at = clock_timestamp()
 WHERE tenant_id = :tenant_id AND id = :id AND status = 'queued';

-- name: mark_failed!
UPDATE messages
   SET status = 'failed', error_code = :error_code, error_message = :error_message, failed_at = clock_timestamp()
 WHERE tenant_id = :tenant_id AND id = :id AND status = 'queued';

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
