-- name: insert_activity!
INSERT INTO activity_logs (tenant_id, actor_type, actor_id, actor_email, action, object_type, object_id,
                           ip, request_id, details)
VALUES (:tenant_id, :actor_type, :actor_id, :actor_email, :action, :object_type, :object_id,
        :ip::inet, :request_id, :details);

-- name: list_activity
SELECT id, actor_type, actor_id, actor_email, action, object_type, object_id, host(ip) AS ip,
       request_id, details, created_at
  FROM activity_logs
 WHERE tenant_id = :tenant_id
   AND actor_id = :actor_id::uuid                                                                    --? actor_id
   AND (action = :action::text OR starts_with(action, :action::text || '.'))                         --? action
   AND object_type = :object_type::text                                                              --? object_type
   AND object_id = :object_id::uuid                                                                  --? object_id
   AND created_at >= :created_from::timestamptz                                                      --? created_from
   AND created_at < :created_to::timestamptz                                                         --? created_to
   AND (created_at, id) < (:cursor_at, :cursor_id::uuid)                                             --? after_desc
   AND (created_at, id) > (:cursor_at, :cursor_id::uuid)                                             --? after_asc
 ORDER BY created_at DESC, id DESC                                                                   --? desc
 ORDER BY created_at, id                                                                             --? asc
 LIMIT :limit
OFFSET :offset                                                                                       --? offset
;

-- name: count_activity$
SELECT count(*) FROM activity_logs
 WHERE tenant_id = :tenant_id
   AND actor_id = :actor_id::uuid                                                                    --? actor_id
   AND (action = :action::text OR starts_with(action, :action::text || '.'))                         --? action
   AND object_type = :object_type::text                                                              --? object_type
   AND object_id = :object_id::uuid                                                                  --? object_id
   AND created_at >= :created_from::timestamptz                                                      --? created_from
   AND created_at < :created_to::timestamptz                                                         --? created_to
;
