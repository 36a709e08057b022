-- name: insert_transfer<!
INSERT INTO transfers (tenant_id, conversation_id, from_agent_id, to_agent_id, from_division_id, to_division_id,
                       reason, transferred_by)
VALUES (:tenant_id, :conversation_id, :from_agent_id, :to_agent_id, :from_division_id, :to_division_id,
        :reason, :transferred_by)
RETURNING id;

-- name: get_transfer^
SELECT id, conversation_id, from_agent_id, to_agent_id, from_division_id, to_division_id, reason, transferred_by,
       created_at
  FROM transfers WHERE tenant_id = :tenant_id AND id = :id;

-- name: list_transfers
SELECT id, conversation_id, from_agent_id, to_agent_id, from_division_id, to_division_id, reason, transferred_by,
       created_at
  FROM transfers
 WHERE tenant_id = :tenant_id AND conversation_id = :conversation_id
   AND (created_at, id) < (:cursor_at, :cursor_id::uuid)                                             --? after_desc
   AND (created_at, id) > (:cursor_at, :cursor_id::uuid)                                             --? after_asc
 ORDER BY created_at DESC, id DESC                                                                   --? desc
 ORDER BY created_at, id                                                                             --? asc
 LIMIT :limit
OFFSET :offset                                                                                       --? offset
;

-- name: count_transfers$
SELECT count(*) FROM transfers WHERE tenant_id = :tenant_id AND conversation_id = :conversation_id;
