-- name: insert_activity!
INSERT INTO activity_logs (tenant_id, actor_type, actor_id, actor_email, action, object_type, object_id,
                           ip, request_id, details)
VALUES (:tenant_id, :actor_type, :actor_id, :actor_email, :action, :object_type, :object_id,
        :ip::inet, :request_id, :details);

-- name: list_activity_desc
SELECT id, actor_type, actor_id, actor_email, action, object_type, object_id, host(ip) AS ip,
       request_id, details, created_at
  FROM activity_logs
 WHERE tenant_id = :tenant_id
   AND (:actor_id::uuid IS NULL OR actor_id = :actor_id)
   AND (:action::text IS NULL OR action = :action OR starts_with(action, :action || '.'))
   AND (:object_type::text IS NULL OR object_type = :object_type)
   AND (:object_id::uuid IS NULL OR object_id = :object_id)
   AND (:created_from::timestamptz IS NULL OR created_at >= :created_from)
   AND (:created_to::timestamptz IS NULL OR created_at < :created_to)
   AND (:cursor_at::timestamptz IS NULL OR (created_at, id) < (:cursor_at, :cursor_id::uuid))
 ORDER BY created_at DESC, id DESC
 LIMIT :limit OFFSET :offset;

-- name: list_activity_asc
SELECT id, actor_type, actor_id, actor_email, action, object_type, object_id, host(ip) AS ip,
       request_id, details, created_at
  FROM activity_logs
 WHERE tenant_id = :tenant_id
   AND (:actor_id::uuid IS NULL OR actor_id = :actor_id)
   AND (:action::text IS NULL OR action = :action OR starts_with(action, :action || '.'))
   AND (:object_type::text IS NULL OR object_type = :object_type)
   AND (:object_id::uuid IS NULL OR object_id = :object_id)
   AND (:created_from::timestamptz IS NULL OR created_at >= :created_from)
   AND (:created_to::timestamptz IS NULL OR created_at < :created_to)
   AND (:cursor_at::timestamptz IS NULL OR (created_at, id) > (:cursor_at, :cursor_id::uuid))
 ORDER BY created_at, id
 LIMIT :limit OFFSET :offset;

-- name: count_activity$
SELECT count(*) FROM activity_logs
 WHERE tenant_id = :tenant_id
   AND (:actor_id::uuid IS NULL OR actor_id = :actor_id)
   AND (:action::text IS NULL OR action = :action OR starts_with(action, :action || '.'))
   AND (:object_type::text IS NULL OR object_type = :object_type)
   AND (:object_id::uuid IS NULL OR object_id = :object_id)
   AND (:created_from::timestamptz IS NULL OR created_at >= :created_from)
   AND (:created_to::timestamptz IS NULL OR created_at < :created_to);
