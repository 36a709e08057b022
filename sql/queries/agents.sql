-- name: get_agent^
SELECT u.id, u.email, u.name, u.role_id, r.name AS role, r.base_role, u.status, u.online_status,
       u.last_seen_at, u.created_at, u.updated_at
  FROM users u JOIN roles r ON r.tenant_id = u.tenant_id AND r.id = u.role_id
 WHERE u.tenant_id = :tenant_id AND u.id = :id AND u.deleted_at IS NULL;

-- name: list_agents
SELECT u.id, u.email, u.name, u.role_id, r.name AS role, r.base_role, u.status, u.online_status,
       u.last_seen_at, u.created_at, u.updated_at
  FROM users u JOIN roles r ON r.tenant_id = u.tenant_id AND r.id = u.role_id
 WHERE u.tenant_id = :tenant_id AND u.deleted_at IS NULL
   AND u.status = :status::text                                                                      --? status
   AND u.online_status = :online_status::text                                                        --? online_status
   AND u.role_id = :role_id::uuid                                                                    --? role_id
   AND (strpos(lower(u.name), lower(:q::text)) > 0 OR strpos(lower(u.email), lower(:q::text)) > 0)   --? q
   AND (u.created_at, u.id) < (:cursor_at, :cursor_id::uuid)                                         --? after_desc
   AND (u.created_at, u.id) > (:cursor_at, :cursor_id::uuid)                                         --? after_asc
 ORDER BY u.created_at DESC, u.id DESC                                                               --? desc
 ORDER BY u.created_at, u.id                                                                         --? asc
 LIMIT :limit
OFFSET :offset                                                                                       --? offset
;

-- name: count_agents$
SELECT count(*) FROM users u
 WHERE u.tenant_id = :tenant_id AND u.deleted_at IS NULL
   AND u.status = :status::text                                                                      --? status
   AND u.online_status = :online_status::text                                                        --? online_status
   AND u.role_id = :role_id::uuid                                                                    --? role_id
   AND (strpos(lower(u.name), lower(:q::text)) > 0 OR strpos(lower(u.email), lower(:q::text)) > 0)   --? q
;

-- name: email_taken$
SELECT EXISTS (SELECT 1 FROM users
                WHERE tenant_id = :tenant_id AND lower(email) = lower(:email) AND deleted_at IS NULL
                  AND id IS DISTINCT FROM :except_id::uuid);

-- name: insert_agent<!
INSERT INTO users (tenant_id, email, name, password_hash, role_id)
VALUES (:tenant_id, :email, :name, :password_hash, :role_id)
RETURNING id;

-- name: update_agent$
UPDATE users
   SET name = COALESCE(:name, name),
       email = COALESCE(:email, email),
       role_id = COALESCE(:role_id, role_id),
       status = COALESCE(:status, status),
       password_hash = COALESCE(:password_hash, password_hash),
       updated_at = now()
 WHERE tenant_id = :tenant_id AND id = :id AND deleted_at IS NULL
RETURNING id;

-- name: set_online_status$
UPDATE users SET online_status = :online_status, last_seen_at = now(), updated_at = now()
 WHERE tenant_id = :tenant_id AND id = :id AND deleted_at IS NULL
RETURNING id;

-- name: touch_last_seen!
UPDATE users SET last_seen_at = now() WHERE tenant_id = :tenant_id AND id = :id;

-- name: soft_delete_agent$
UPDATE users SET deleted_at = now(), status = 'suspended', online_status = 'offline', updated_at = now()
 WHERE tenant_id = :tenant_id AND id = :id AND deleted_at IS NULL
RETURNING id;

-- name: lock_active_admins
-- Locks every active agent of the built-in admin role: changes that could remove the
-- last one are serialised on these rows.
SELECT u.id FROM users u JOIN roles r ON r.tenant_id = u.tenant_id AND r.id = u.role_id
 WHERE u.tenant_id = :tenant_id AND u.deleted_at IS NULL AND u.status = 'active'
   AND r.is_builtin AND r.base_role = 'admin'
   FOR UPDATE OF u;

-- name: lock_active_agent_ids
-- The active agents among the ids, share-locked (in id order) so they cannot be suspended or
-- deleted before the caller's transaction ends.
SELECT id FROM users
 WHERE tenant_id = :tenant_id AND id = ANY(:ids::uuid[]) AND deleted_at IS NULL AND status = 'active'
 ORDER BY id
   FOR SHARE;
