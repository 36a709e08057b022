-- name: insert_role<!
INSERT INTO roles (tenant_id, name, description, base_role, is_builtin, permissions)
VALUES (:tenant_id, :name, :description, :base_role, :is_builtin, :permissions)
RETURNING id;

-- name: list_roles
SELECT r.id, r.name, r.description, r.base_role, r.is_builtin, r.permissions, r.created_at, r.updated_at,
       (SELECT count(*) FROM users u
         WHERE u.tenant_id = r.tenant_id AND u.role_id = r.id AND u.deleted_at IS NULL) AS agent_count
  FROM roles r
 WHERE r.tenant_id = :tenant_id
 ORDER BY r.is_builtin DESC, r.created_at, r.id;

-- name: get_role^
SELECT r.id, r.name, r.description, r.base_role, r.is_builtin, r.permissions, r.created_at, r.updated_at,
       (SELECT count(*) FROM users u
         WHERE u.tenant_id = r.tenant_id AND u.role_id = r.id AND u.deleted_at IS NULL) AS agent_count
  FROM roles r
 WHERE r.tenant_id = :tenant_id AND r.id = :id;

-- name: get_builtin_role_id$
SELECT id FROM roles WHERE tenant_id = :tenant_id AND is_builtin AND base_role = :base_role;

-- name: role_name_taken$
SELECT EXISTS (SELECT 1 FROM roles
                WHERE tenant_id = :tenant_id AND lower(name) = lower(:name)
                  AND id IS DISTINCT FROM :except_id::uuid);

-- name: update_role!
UPDATE roles
   SET name = :name, description = :description, base_role = :base_role,
       permissions = :permissions, updated_at = now()
 WHERE tenant_id = :tenant_id AND id = :id AND NOT is_builtin;

-- name: release_role_of_deleted_agents!
-- Deleted agents keep their rows for history; they fall back to the built-in agent role so
-- that a role only they still name can be deleted.
UPDATE users
   SET role_id = (SELECT id FROM roles WHERE tenant_id = :tenant_id AND is_builtin AND base_role = 'agent')
 WHERE tenant_id = :tenant_id AND role_id = :id AND deleted_at IS NOT NULL;

-- name: delete_role!
DELETE FROM roles WHERE tenant_id = :tenant_id AND id = :id AND NOT is_builtin;

-- name: lock_role^
-- Taken before a role is deleted or an agent moved onto it, so the two cannot cross.
SELECT id, is_builtin, base_role FROM roles WHERE tenant_id = :tenant_id AND id = :id FOR UPDATE;
