-- Divisions (teams of agents) and their members. A member whose agent was deleted keeps
-- its row until the user row goes, but is never shown or counted.

-- name: get_division^
SELECT d.id, d.name, d.description, d.created_at, d.updated_at,
       (SELECT count(*) FROM division_agents da JOIN users u ON u.tenant_id = da.tenant_id AND u.id = da.user_id
         WHERE da.tenant_id = d.tenant_id AND da.division_id = d.id AND u.deleted_at IS NULL) AS agent_count
  FROM divisions d
 WHERE d.tenant_id = :tenant_id AND d.id = :id;

-- name: list_divisions
SELECT d.id, d.name, d.description, d.created_at, d.updated_at,
       (SELECT count(*) FROM division_agents da JOIN users u ON u.tenant_id = da.tenant_id AND u.id = da.user_id
         WHERE da.tenant_id = d.tenant_id AND da.division_id = d.id AND u.deleted_at IS NULL) AS agent_count
  FROM divisions d
 WHERE d.tenant_id = :tenant_id
   AND (strpos(lower(d.name), lower(:q::text)) > 0 OR strpos(lower(d.description), lower(:q::text)) > 0) --? q
   AND (d.created_at, d.id) < (:cursor_at, :cursor_id::uuid)                                         --? after_desc
   AND (d.created_at, d.id) > (:cursor_at, :cursor_id::uuid)                                         --? after_asc
 ORDER BY d.created_at DESC, d.id DESC                                                               --? desc
 ORDER BY d.created_at, d.id                                                                         --? asc
 LIMIT :limit
OFFSET :offset                                                                                       --? offset
;

-- name: count_divisions$
SELECT count(*) FROM divisions d
 WHERE d.tenant_id = :tenant_id
   AND (strpos(lower(d.name), lower(:q::text)) > 0 OR strpos(lower(d.description), lower(:q::text)) > 0) --? q
;

-- name: division_name_taken$
SELECT EXISTS (SELECT 1 FROM divisions
                WHERE tenant_id = :tenant_id AND lower(name) = lower(:name)
                  AND id IS DISTINCT FROM :except_id::uuid);

-- name: insert_division<!
INSERT INTO divisions (tenant_id, name, description)
VALUES (:tenant_id, :name, :description)
RETURNING id;

-- name: update_division$
UPDATE divisions
   SET name = COALESCE(:name, name),
       description = COALESCE(:description, description),
       updated_at = clock_timestamp()
 WHERE tenant_id = :tenant_id AND id = :id
RETURNING id;

-- name: lock_division^
-- Taken before the members of a division change, so concurrent changes (and a delete) queue.
SELECT id, name FROM divisions WHERE tenant_id = :tenant_id AND id = :id FOR UPDATE;

-- name: touch_division!
UPDATE divisions SET updated_at = clock_timestamp() WHERE tenant_id = :tenant_id AND id = :id;

-- name: delete_division^
DELETE FROM divisions WHERE tenant_id = :tenant_id AND id = :id
RETURNING id, name;

-- name: add_division_agents
-- The members actually added: agents already in the division are left as they are.
INSERT INTO division_agents (tenant_id, division_id, user_id)
SELECT :tenant_id, :division_id, user_id FROM unnest(:user_ids::uuid[]) AS ids (user_id)
    ON CONFLICT (tenant_id, division_id, user_id) DO NOTHING
RETURNING user_id;

-- name: remove_division_agents
DELETE FROM division_agents
 WHERE tenant_id = :tenant_id AND division_id = :division_id AND user_id = ANY(:user_ids::uuid[])
RETURNING user_id;

-- name: division_members
-- Every member, by name: the agents shown with a single division.
SELECT u.id, u.name, u.email, r.name AS role, u.status, u.online_status, da.created_at AS added_at
  FROM division_agents da
  JOIN users u ON u.tenant_id = da.tenant_id AND u.id = da.user_id
  JOIN roles r ON r.tenant_id = u.tenant_id AND r.id = u.role_id
 WHERE da.tenant_id = :tenant_id AND da.division_id = :division_id AND u.deleted_at IS NULL
 ORDER BY lower(u.name), u.id;

-- name: list_division_agents
SELECT u.id, u.name, u.email, r.name AS role, u.status, u.online_status, da.created_at AS added_at
  FROM division_agents da
  JOIN users u ON u.tenant_id = da.tenant_id AND u.id = da.user_id
  JOIN roles r ON r.tenant_id = u.tenant_id AND r.id = u.role_id
 WHERE da.tenant_id = :tenant_id AND da.division_id = :division_id AND u.deleted_at IS NULL
   AND (strpos(lower(u.name), lower(:q::text)) > 0 OR strpos(lower(u.email), lower(:q::text)) > 0)   --? q
   AND (da.created_at, u.id) < (:cursor_at, :cursor_id::uuid)                                        --? after_desc
   AND (da.created_at, u.id) > (:cursor_at, :cursor_id::uuid)                                        --? after_asc
 ORDER BY da.created_at DESC, u.id DESC                                                              --? desc
 ORDER BY da.created_at, u.id                                                                        --? asc
 LIMIT :limit
OFFSET :offset                                                                                       --? offset
;

-- name: count_division_agents$
SELECT count(*)
  FROM division_agents da JOIN users u ON u.tenant_id = da.tenant_id AND u.id = da.user_id
 WHERE da.tenant_id = :tenant_id AND da.division_id = :division_id AND u.deleted_at IS NULL
   AND (strpos(lower(u.name), lower(:q::text)) > 0 OR strpos(lower(u.email), lower(:q::text)) > 0)   --? q
;

-- name: agent_division_ids
SELECT da.division_id
  FROM division_agents da JOIN users u ON u.tenant_id = da.tenant_id AND u.id = da.user_id
 WHERE da.tenant_id = :tenant_id AND da.user_id = :user_id AND u.deleted_at IS NULL
 ORDER BY da.division_id;

-- name: division_exists$
SELECT EXISTS (SELECT 1 FROM divisions WHERE tenant_id = :tenant_id AND id = :id);

-- name: is_division_member$
SELECT EXISTS (SELECT 1
                 FROM division_agents da JOIN users u ON u.tenant_id = da.tenant_id AND u.id = da.user_id
                WHERE da.tenant_id = :tenant_id AND da.division_id = :division_id AND da.user_id = :user_id
                  AND u.deleted_at IS NULL);
