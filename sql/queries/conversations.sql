-- The list and detail shape: a conversation with its contact's summary.
-- Visibility: supervisors and admins see all (see_all); agents see what is assigned to them,
-- what is unassigned and in no division, and everything in their divisions.

-- name: get_conversation^
SELECT c.id, c.channel, c.account_id, c.status, c.assigned_agent_id, c.division_id, c.tags, c.priority,
       c.handled_by, c.ai_agent_id, c.unread_count, c.message_count, c.last_message_at, c.last_message_preview,
       c.last_inbound_at, c.last_outbound_at, c.last_activity_at, c.status_changed_at, c.status_changed_by,
       c.resolved_at, c.created_at, c.updated_at,
       json_build_object('id', k.id, 'name', k.name, 'phone', k.phone, 'email', k.email) AS contact
  FROM conversations c JOIN contacts k ON k.tenant_id = c.tenant_id AND k.id = c.contact_id
 WHERE c.tenant_id = :tenant_id AND c.id = :id
   AND (:see_all OR c.assigned_agent_id = :viewer_id
        OR (c.assigned_agent_id IS NULL AND c.division_id IS NULL)
        OR c.division_id = ANY(:viewer_divisions::uuid[]));

-- name: list_conversations
-- The inbox page. A line ending in `--? key` applies only when `key` is given, and :limit is written
-- in as a number (see omnistream.db.OptionalLinesQuery): each combination of filters and page size
-- is a statement of its own that PostgreSQL plans once.
-- The sort flags (activity_desc, ...) pick the order; the after_* ones continue after a cursor.
SELECT c.id, c.channel, c.account_id, c.status, c.assigned_agent_id, c.division_id, c.tags, c.priority,
       c.handled_by, c.ai_agent_id, c.unread_count, c.message_count, c.last_message_at, c.last_message_preview,
       c.last_inbound_at, c.last_outbound_at, c.last_activity_at, c.status_changed_at, c.status_changed_by,
       c.resolved_at, c.created_at, c.updated_at,
       json_build_object('id', k.id, 'name', k.name, 'phone', k.phone, 'email', k.email) AS contact
  FROM conversations c JOIN contacts k ON k.tenant_id = c.tenant_id AND k.id = c.contact_id
 WHERE c.tenant_id = :tenant_id
   AND c.status = ANY(:statuses::text[])                                                     --? statuses
   AND c.channel = :channel                                                                  --? channel
   AND c.assigned_agent_id = :assigned_agent_id                                              --? assigned_agent_id
   AND c.assigned_agent_id IS NULL                                                           --? unassigned
   AND c.division_id = :division_id                                                          --? division_id
   AND c.tags @> ARRAY[:tag::text]                                                           --? tag
   AND c.contact_id = :contact_id                                                            --? contact_id
   AND c.created_at >= :created_from                                                         --? created_from
   AND c.created_at < :created_to                                                            --? created_to
   AND (strpos(lower(k.name), lower(:q)) > 0 OR strpos(lower(k.email), lower(:q)) > 0       --? q
        OR strpos(lower(k.phone), lower(:q)) > 0 OR strpos(lower(c.last_message_preview), lower(:q)) > 0) --? q
   AND (c.assigned_agent_id = :viewer_id OR (c.assigned_agent_id IS NULL AND c.division_id IS NULL) --? viewer_id
        OR c.division_id = ANY(:viewer_divisions::uuid[]))                                   --? viewer_id
   AND (c.last_activity_at, c.id) < (:cursor_at, :cursor_id::uuid)                           --? after_activity_desc
   AND (c.last_activity_at, c.id) > (:cursor_at, :cursor_id::uuid)                           --? after_activity_asc
   AND (c.created_at, c.id) < (:cursor_at, :cursor_id::uuid)                                 --? after_created_desc
   AND (c.created_at, c.id) > (:cursor_at, :cursor_id::uuid)                                 --? after_created_asc
 ORDER BY c.last_activity_at DESC, c.id DESC                                                 --? activity_desc
 ORDER BY c.last_activity_at, c.id                                                           --? activity_asc
 ORDER BY c.created_at DESC, c.id DESC                                                       --? created_desc
 ORDER BY c.created_at, c.id                                                                 --? created_asc
 LIMIT :limit
OFFSET :offset                                                                               --? offset
;

-- name: count_conversations$
-- The same filters as list_conversations; the contact is joined only when the text query needs it.
SELECT count(*)
  FROM conversations c
 WHERE c.tenant_id = :tenant_id
   AND c.status = ANY(:statuses::text[])                                                     --? statuses
   AND c.channel = :channel                                                                  --? channel
   AND c.assigned_agent_id = :assigned_agent_id                                              --? assigned_agent_id
   AND c.assigned_agent_id IS NULL                                                           --? unassigned
   AND c.division_id = :division_id                                                          --? division_id
   AND c.tags @> ARRAY[:tag::text]                                                           --? tag
   AND c.contact_id = :contact_id                                                            --? contact_id
   AND c.created_at >= :created_from                                                         --? created_from
   AND c.created_at < :created_to                                                            --? created_to
   AND (strpos(lower(c.last_message_preview), lower(:q)) > 0                                 --? q
        OR EXISTS (SELECT 1 FROM contacts k                                                  --? q
                    WHERE k.tenant_id = c.tenant_id AND k.id = c.contact_id                  --? q
                      AND (strpos(lower(k.name), lower(:q)) > 0 OR strpos(lower(k.email), lower(:q)) > 0 --? q
                           OR strpos(lower(k.phone), lower(:q)) > 0)))                       --? q
   AND (c.assigned_agent_id = :viewer_id OR (c.assigned_agent_id IS NULL AND c.division_id IS NULL) --? viewer_id
        OR c.division_id = ANY(:viewer_divisions::uuid[]))                                   --? viewer_id
;

-- name: lock_conversation^
-- The row a change is about to modify, locked so concurrent changes apply one after another.
SELECT id, contact_id, channel, account_id, status, assigned_agent_id, division_id, tags, priority, handled_by,
       ai_agent_id, last_inbound_at
  FROM conversations
 WHERE tenant_id = :tenant_id AND id = :id
   FOR UPDATE;

-- name: set_assignment!
UPDATE conversations
   SET assigned_agent_id = :assigned_agent_id, division_id = :division_id, updated_at = clock_timestamp()
 WHERE tenant_id = :tenant_id AND id = :id;

-- name: set_status!
UPDATE conversations
   SET status = :status,
       status_changed_at = clock_timestamp(),
       status_changed_by = :changed_by,
       resolved_at = CASE WHEN :status = 'resolved' THEN clock_timestamp() ELSE resolved_at END,
       unread_count = CASE WHEN :status IN ('resolved', 'closed') THEN 0 ELSE unread_count END,
       updated_at = clock_timestamp()
 WHERE tenant_id = :tenant_id AND id = :id;

-- name: set_tags!
UPDATE conversations SET tags = :tags, updated_at = clock_timestamp()
 WHERE tenant_id = :tenant_id AND id = :id;

-- name: take_over!
UPDATE conversations
   SET assigned_agent_id = :agent_id, handled_by = 'human', ai_agent_id = NULL, updated_at = clock_timestamp()
 WHERE tenant_id = :tenant_id AND id = :id;

-- name: mark_read!
WITH reset AS (
  UPDATE conversations SET unread_count = 0
   WHERE tenant_id = :tenant_id AND id = :id AND unread_count <> 0
)
INSERT INTO conversation_reads (tenant_id, conversation_id, user_id, last_read_at)
VALUES (:tenant_id, :id, :user_id, clock_timestamp())
ON CONFLICT (tenant_id, conversation_id, user_id) DO UPDATE SET last_read_at = EXCLUDED.last_read_at;

-- name: record_outbound!
UPDATE conversations
   SET message_count = message_count + 1,
       last_message_at = :at,
       last_outbound_at = :at,
       last_activity_at = :at,
       last_message_preview = :preview,
       updated_at = clock_timestamp()
 WHERE tenant_id = :tenant_id AND id = :id;

-- name: expire_stale
-- Conversations on a channel idle for longer than the rule allows become expired; like resolving,
-- that leaves nothing unread.
UPDATE conversations c
   SET status = 'expired', status_changed_at = clock_timestamp(), status_changed_by = :changed_by,
       unread_count = 0, updated_at = clock_timestamp()
  FROM (SELECT id, status AS previous_status FROM conversations
         WHERE tenant_id = :tenant_id AND channel = :channel AND status = ANY(:statuses::text[])
           AND last_activity_at < :idle_before
         ORDER BY last_activity_at
         LIMIT :limit
           FOR UPDATE SKIP LOCKED) stale
 WHERE c.tenant_id = :tenant_id AND c.id = stale.id
RETURNING c.id, c.contact_id, c.channel, c.account_id, c.status, c.assigned_agent_id, c.division_id, c.tags,
          c.priority, c.handled_by, stale.previous_status;

-- name: event_snapshot^
SELECT id, contact_id, channel, account_id, status, assigned_agent_id, division_id, tags, priority, handled_by
  FROM conversations WHERE tenant_id = :tenant_id AND id = :id;

-- name: set_priority!
UPDATE conversations SET priority = :priority, updated_at = clock_timestamp()
 WHERE tenant_id = :tenant_id AND id = :id;

-- name: lock_division_assignments$
-- Until the transaction ends, one automatic assignment at a time in the division, across workers:
-- the next one reads the loads and the last round-robin choice after this one committed.
SELECT pg_advisory_xact_lock(hashtextextended(:tenant_id::uuid::text || '/' || :division_id::uuid::text, 0))::text;

-- name: online_agents_by_load
-- The online, active agents of a division and how many live conversations each holds, the least
-- busy first (ties by id): whom automation's assignment strategies choose from.
SELECT u.id, count(c.id) AS load
  FROM division_agents da
  JOIN users u ON u.tenant_id = da.tenant_id AND u.id = da.user_id
  LEFT JOIN conversations c ON c.tenant_id = u.tenant_id AND c.assigned_agent_id = u.id AND c.status IN ('open', 'pending')
 WHERE da.tenant_id = :tenant_id AND da.division_id = :division_id
   AND u.deleted_at IS NULL AND u.status = 'active' AND u.online_status = 'online'
 GROUP BY u.id
 ORDER BY load, u.id;

-- name: open_threads!
-- A live conversation on the account for each contact that has none (a campaign's first message
-- to them); one a concurrent writer opened meanwhile is kept (the unique live-thread index).
INSERT INTO conversations (tenant_id, contact_id, channel, account_id, last_activity_at, created_at)
SELECT :tenant_id, c.contact_id, :channel, :account_id, :now, :now
  FROM unnest(:contact_ids::uuid[]) AS c (contact_id)
    ON CONFLICT DO NOTHING;

-- name: lock_threads
-- The live conversations of the contacts on the account, locked (in id order, so two batches
-- never wait on each other in a circle) as lock_conversation locks one.
SELECT id, contact_id, channel, account_id, status, assigned_agent_id, division_id, tags, priority, handled_by,
       ai_agent_id, last_inbound_at
  FROM conversations
 WHERE tenant_id = :tenant_id AND contact_id = ANY(:contact_ids::uuid[]) AND channel = :channel
   AND account_id = :account_id AND status IN ('open', 'pending', 'resolved')
 ORDER BY id
   FOR UPDATE;

-- name: record_outbound_many!
UPDATE conversations c
   SET message_count = c.message_count + 1, last_message_at = :at, last_outbound_at = :at, last_activity_at = :at,
       last_message_preview = r.preview, updated_at = clock_timestamp()
  FROM unnest(:ids::uuid[], :previews::text[]) AS r (id, preview)
 WHERE c.tenant_id = :tenant_id AND c.id = r.id;
