-- Messages agents scheduled for later, and the worker's claim of the due ones.

-- name: insert_scheduled_message<!
INSERT INTO scheduled_messages (tenant_id, conversation_id, body, send_at, created_by)
VALUES (:tenant_id, :conversation_id, :body, :send_at, :created_by)
RETURNING id;

-- name: get_scheduled_message^
SELECT id, conversation_id, body, send_at, status, message_id, failure_reason, created_by, cancelled_by,
       processed_at, created_at
  FROM scheduled_messages
 WHERE tenant_id = :tenant_id AND id = :id;

-- name: list_scheduled_messages
SELECT id, conversation_id, body, send_at, status, message_id, failure_reason, created_by, cancelled_by,
       processed_at, created_at
  FROM scheduled_messages
 WHERE tenant_id = :tenant_id AND conversation_id = :conversation_id
   AND status = :status                                                     --? status
   AND (send_at, id) < (:cursor_at, :cursor_id::uuid)                       --? after_desc
   AND (send_at, id) > (:cursor_at, :cursor_id::uuid)                       --? after_asc
 ORDER BY
       send_at DESC, id DESC                                                --? desc
       send_at, id                                                          --? asc
 LIMIT :limit
OFFSET :offset                                                              --? offset
;

-- name: count_scheduled_messages$
SELECT count(*)
  FROM scheduled_messages
 WHERE tenant_id = :tenant_id AND conversation_id = :conversation_id
   AND status = :status                                                     --? status
;

-- name: lock_scheduled_message^
-- Cancelling waits for a send in progress (which holds the row), then sees what it left.
SELECT id, conversation_id, status
  FROM scheduled_messages
 WHERE tenant_id = :tenant_id AND id = :id
   FOR UPDATE;

-- name: cancel_scheduled_message!
UPDATE scheduled_messages
   SET status = 'cancelled', cancelled_by = :user_id, processed_at = :now
 WHERE tenant_id = :tenant_id AND id = :id AND status = 'pending';

-- name: tenants_with_due
SELECT tenants_with_due_scheduled_messages(:now) AS tenant_id;

-- name: claim_due^
-- The next due message of the tenant, held until the send's transaction ends; one a cancel (or
-- another worker) holds is left to it.
SELECT id, conversation_id, body, created_by
  FROM scheduled_messages
 WHERE tenant_id = :tenant_id AND status = 'pending' AND send_at <= :now
 ORDER BY send_at, id
 LIMIT 1
   FOR UPDATE SKIP LOCKED;

-- name: mark_sent!
UPDATE scheduled_messages
   SET status = 'sent', message_id = :message_id, processed_at = :now
 WHERE tenant_id = :tenant_id AND id = :id;

-- name: mark_failed!
UPDATE scheduled_messages
   SET status = 'failed', failure_reason = :reason, processed_at = :now
 WHERE tenant_id = :tenant_id AND id = :id;
