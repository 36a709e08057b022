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

-- name: open_thread_for_identity^
-- Ingestion's first statement: the contact behind a channel identity (created on first
-- sight) and that contact's live conversation on the channel and account (opened if there
-- is none), in one round trip. A concurrent first sight of the identity or first message of
-- the thread loses its insert to a unique index and returns no contact or no conversation;
-- the caller discards what it made and asks again, finding the winner's rows.
WITH existing AS (
  SELECT contact_id FROM contact_identities
   WHERE tenant_id = :tenant_id AND channel = :channel AND external_id = :external_id
), touched AS (
  UPDATE contacts
     SET last_seen_at = GREATEST(last_seen_at, :at),
         name = CASE WHEN name = '' THEN COALESCE(:name, '') ELSE name END
   WHERE tenant_id = :tenant_id AND id = (SELECT contact_id FROM existing)
  RETURNING id
), new_contact AS (
  INSERT INTO contacts (tenant_id, name, phone, email, last_seen_at)
  SELECT :tenant_id, COALESCE(:name, ''), :phone, :email, :at
   WHERE NOT EXISTS (SELECT 1 FROM existing)
  RETURNING id
), new_identity AS (
  INSERT INTO contact_identities (tenant_id, channel, external_id, contact_id)
  SELECT :tenant_id, :channel, :external_id, id FROM new_contact
  ON CONFLICT DO NOTHING
  RETURNING contact_id
), contact AS (
  SELECT contact_id FROM existing UNION ALL SELECT contact_id FROM new_identity
), live AS (
  SELECT c.id, c.status, c.assigned_agent_id, c.division_id, c.tags, c.priority, c.handled_by FROM conversations c
   WHERE c.tenant_id = :tenant_id AND c.contact_id = (SELECT contact_id FROM contact) AND c.channel = :channel
     AND c.account_id IS NOT DISTINCT FROM :account_id::uuid AND c.status IN ('open', 'pending', 'resolved')
   FOR UPDATE
), opened AS (
  INSERT INTO conversations (tenant_id, contact_id, channel, account_id, last_activity_at, created_at)
  SELECT :tenant_id, contact_id, :channel, :account_id::uuid, :at, :at FROM contact
   WHERE NOT EXISTS (SELECT 1 FROM live)
  ON CONFLICT DO NOTHING
  RETURNING id, status, assigned_agent_id, division_id, tags, priority, handled_by
), thread AS (
  SELECT * FROM live UNION ALL SELECT * FROM opened
)
SELECT (SELECT contact_id FROM contact) AS contact_id,
       EXISTS (SELECT 1 FROM new_identity) AS contact_created,
       (SELECT id FROM new_contact) AS attempted_contact_id,
       thread.id AS conversation_id, thread.status, thread.assigned_agent_id, thread.division_id, thread.tags,
       thread.priority, thread.handled_by,
       EXISTS (SELECT 1 FROM opened) AS conversation_created
  FROM (SELECT 1) one LEFT JOIN thread ON true;

-- name: store_inbound$
-- The message, the conversation's counters and the automation events in one statement:
-- ingestion's hot path. The conversation row is locked by the statement before, so the events'
-- snapshot, made by the caller, is what this statement leaves behind. Nothing is written and
-- NULL comes back when the provider's id is already stored (a redelivered webhook).
WITH stored AS (
  INSERT INTO messages (id, tenant_id, conversation_id, channel, direction, type, text, content,
                        provider_message_id, status, sender_type, sent_at)
  VALUES (:id, :tenant_id, :conversation_id, :channel, 'inbound', :type, :text, :content, :provider_message_id,
          'received', 'contact', :at)
  ON CONFLICT (tenant_id, channel, provider_message_id) WHERE provider_message_id IS NOT NULL DO NOTHING
  RETURNING id
), counted AS (
  UPDATE conversations
     SET message_count = message_count + 1,
         unread_count = unread_count + 1,
         last_message_at = GREATEST(last_message_at, :at),
         last_inbound_at = GREATEST(last_inbound_at, :at),
         last_activity_at = GREATEST(last_activity_at, :at),
         last_message_preview = CASE WHEN last_message_at IS NULL OR :at >= last_message_at
                                     THEN :preview ELSE last_message_preview END,
         status = CASE WHEN status = 'resolved' THEN 'open' ELSE status END,
         status_changed_at = CASE WHEN status = 'resolved' THEN clock_timestamp() ELSE status_changed_at END,
         status_changed_by = CASE WHEN status = 'resolved' THEN NULL ELSE status_changed_by END,
         updated_at = clock_timestamp()
   WHERE tenant_id = :tenant_id AND id = :conversation_id AND EXISTS (SELECT 1 FROM stored)
  RETURNING id
), events AS (
  INSERT INTO automation_events (id, tenant_id, event_type, conversation_id, contact_id, payload, payload_hash,
                                 source)
  SELECT e.id, :tenant_id, e.event_type, e.conversation_id, e.contact_id, e.payload, e.payload_hash, e.source
    FROM unnest(:event_ids::uuid[], :event_types::text[], :event_conversation_ids::uuid[],
                :event_contact_ids::uuid[], :event_payloads::jsonb[], :event_hashes::text[],
                :event_sources::text[]) AS e(id, event_type, conversation_id, contact_id, payload, payload_hash,
                                             source)
   WHERE EXISTS (SELECT 1 FROM stored)
)
SELECT id FROM stored;

-- name: insert_outbound$
INSERT INTO messages (tenant_id, conversation_id, channel, direction, type, text, content, status, sender_type,
                      sender_agent_id)
VALUES (:tenant_id, :conversation_id, :channel, 'outbound', :type, :text, :content, 'queued', :sender_type,
        :sender_agent_id)
RETURNING id;

-- name: claim_for_delivery^
-- The queued message a delivery job is about to send; a message already past queued is left alone.
SELECT m.id, m.conversation_id, m.channel, m.type, m.text, m.content, c.account_id, c.contact_id
  FROM messages m JOIN conversations c ON c.id = m.conversation_id AND c.tenant_id = m.tenant_id
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
  JOIN conversations c ON c.id = m.conversation_id AND c.tenant_id = m.tenant_id,
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
  JOIN conversations c ON c.id = m.conversation_id AND c.tenant_id = m.tenant_id,
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
