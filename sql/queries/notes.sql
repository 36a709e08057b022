-- name: get_note^
SELECT n.id, n.conversation_id, n.author_type, n.author_id, COALESCE(u.name, 'Automation') AS author_name, n.body,
       n.created_at, n.updated_at
  FROM notes n LEFT JOIN users u ON u.tenant_id = n.tenant_id AND u.id = n.author_id
 WHERE n.tenant_id = :tenant_id AND n.id = :id;

-- name: list_notes
SELECT n.id, n.conversation_id, n.author_type, n.author_id, COALESCE(u.name, 'Automation') AS author_name, n.body,
       n.created_at, n.updated_at
  FROM notes n LEFT JOIN users u ON u.tenant_id = n.tenant_id AND u.id = n.author_id
 WHERE n.tenant_id = :tenant_id AND n.conversation_id = :conversation_id
   AND (n.created_at, n.id) < (:cursor_at, :cursor_id::uuid)                                         --? after_desc
   AND (n.created_at, n.id) > (:cursor_at, :cursor_id::uuid)                                         --? after_asc
 ORDER BY n.created_at DESC, n.id DESC                                                               --? desc
 ORDER BY n.created_at, n.id                                                                         --? asc
 LIMIT :limit
OFFSET :offset                                                                                       --? offset
;

-- name: count_notes$
SELECT count(*) FROM notes WHERE tenant_id = :tenant_id AND conversation_id = :conversation_id;

-- name: insert_note<!
INSERT INTO notes (tenant_id, conversation_id, author_type, author_id, body)
VALUES (:tenant_id, :conversation_id, CASE WHEN :author_id::uuid IS NULL THEN 'automation' ELSE 'agent' END, :author_id,
        :body)
RETURNING id;

-- name: update_note!
UPDATE notes SET body = :body, updated_at = clock_timestamp() WHERE tenant_id = :tenant_id AND id = :id;

-- name: delete_note!
DELETE FROM notes WHERE tenant_id = :tenant_id AND id = :id;
