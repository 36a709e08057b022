-- Quick replies and each agent's favourites. `viewer_divisions` (NULL for supervisors and
-- admins, who see everything) keeps an agent to the replies of no division and of their own.

-- name: list_quick_replies
SELECT q.id, q.shortcut, q.title, q.content, q.media_id, q.division_id, q.usage_count, q.last_used_at,
       (f.quick_reply_id IS NOT NULL) AS is_favorite, q.created_by, q.created_at, q.updated_at
  FROM quick_replies q
  LEFT JOIN quick_reply_favorites f
         ON f.tenant_id = q.tenant_id AND f.quick_reply_id = q.id AND f.user_id = :viewer_id::uuid
 WHERE q.tenant_id = :tenant_id
   AND (q.division_id IS NULL OR q.division_id = ANY(:viewer_divisions::uuid[]))                      --? viewer_divisions
   AND q.division_id = :division_id                                                                  --? division_id
   AND (strpos(lower(q.shortcut), lower(:q::text)) > 0 OR strpos(lower(q.title), lower(:q::text)) > 0 --? q
        OR strpos(lower(q.content), lower(:q::text)) > 0)                                            --? q
   AND (q.created_at, q.id) < (:cursor_at, :cursor_id::uuid)                                         --? after_desc
   AND (q.created_at, q.id) > (:cursor_at, :cursor_id::uuid)                                         --? after_asc
 ORDER BY
       (f.quick_reply_id IS NOT NULL) DESC,                                                          --? favorites_first
       q.usage_count DESC,                                                                           --? usage_desc
       q.usage_count,                                                                                --? usage_asc
       q.created_at DESC, q.id DESC                                                                  --? desc
       q.created_at, q.id                                                                            --? asc
 LIMIT :limit
OFFSET :offset                                                                                       --? offset
;

-- name: count_quick_replies$
SELECT count(*)
  FROM quick_replies q
 WHERE q.tenant_id = :tenant_id
   AND (q.division_id IS NULL OR q.division_id = ANY(:viewer_divisions::uuid[]))                      --? viewer_divisions
   AND q.division_id = :division_id                                                                  --? division_id
   AND (strpos(lower(q.shortcut), lower(:q::text)) > 0 OR strpos(lower(q.title), lower(:q::text)) > 0 --? q
        OR strpos(lower(q.content), lower(:q::text)) > 0)                                            --? q
;

-- name: get_quick_reply^
SELECT q.id, q.shortcut, q.title, q.content, q.media_id, q.division_id, q.usage_count, q.last_used_at,
       EXISTS (SELECT 1 FROM quick_reply_favorites f
                WHERE f.tenant_id = q.tenant_id AND f.quick_reply_id = q.id AND f.user_id = :viewer_id::uuid)
         AS is_favorite,
       q.created_by, q.created_at, q.updated_at
  FROM quick_replies q
 WHERE q.tenant_id = :tenant_id AND q.id = :id
   AND (:viewer_divisions::uuid[] IS NULL OR q.division_id IS NULL OR q.division_id = ANY(:viewer_divisions::uuid[]));

-- name: lock_quick_reply^
-- Taken before a reply changes, so concurrent edits (and a delete) queue.
SELECT id, shortcut, title, content, media_id, division_id
  FROM quick_replies WHERE tenant_id = :tenant_id AND id = :id FOR UPDATE;

-- name: shortcut_taken$
SELECT EXISTS (SELECT 1 FROM quick_replies
                WHERE tenant_id = :tenant_id AND lower(shortcut) = lower(:shortcut)
                  AND id IS DISTINCT FROM :except_id::uuid);

-- name: insert_quick_reply<!
INSERT INTO quick_replies (tenant_id, shortcut, title, content, media_id, division_id, created_by, updated_by)
VALUES (:tenant_id, :shortcut, :title, :content, :media_id, :division_id, :user_id, :user_id)
RETURNING id;

-- name: update_quick_reply!
UPDATE quick_replies
   SET shortcut = :shortcut, title = :title, content = :content, media_id = :media_id,
       division_id = :division_id, updated_by = :user_id, updated_at = clock_timestamp()
 WHERE tenant_id = :tenant_id AND id = :id;

-- name: delete_quick_reply^
DELETE FROM quick_replies WHERE tenant_id = :tenant_id AND id = :id
RETURNING id, shortcut;

-- name: record_use^
-- One statement, so concurrent uses never lose a count.
UPDATE quick_replies
   SET usage_count = usage_count + 1, last_used_at = clock_timestamp()
 WHERE tenant_id = :tenant_id AND id = :id
   AND (:viewer_divisions::uuid[] IS NULL OR division_id IS NULL OR division_id = ANY(:viewer_divisions::uuid[]))
RETURNING id;

-- name: add_favorite<!
INSERT INTO quick_reply_favorites (tenant_id, user_id, quick_reply_id)
VALUES (:tenant_id, :user_id, :quick_reply_id)
    ON CONFLICT (tenant_id, user_id, quick_reply_id) DO NOTHING
RETURNING quick_reply_id;

-- name: remove_favorite<!
DELETE FROM quick_reply_favorites
 WHERE tenant_id = :tenant_id AND user_id = :user_id AND quick_reply_id = :quick_reply_id
RETURNING quick_reply_id;

-- name: export_batch
-- The export's rows in creation order, a batch after the keyset (created_at, id).
SELECT id, shortcut, title, content, division_id, media_id, created_at
  FROM quick_replies
 WHERE tenant_id = :tenant_id
   AND (:after_at::timestamptz IS NULL OR (created_at, id) > (:after_at, :after_id::uuid))
 ORDER BY created_at, id
 LIMIT :batch;

-- name: by_shortcuts
-- The replies an import names, locked so the import decides created or updated on settled rows.
SELECT id, shortcut, title, content, division_id, media_id
  FROM quick_replies
 WHERE tenant_id = :tenant_id AND lower(shortcut) = ANY(:shortcuts::text[])
   FOR UPDATE;

-- name: insert_many
INSERT INTO quick_replies (tenant_id, shortcut, title, content, division_id, media_id, created_by, updated_by)
SELECT :tenant_id, r.shortcut, r.title, r.content, r.division_id, r.media_id, :user_id, :user_id
  FROM unnest(:shortcuts::text[], :titles::text[], :contents::text[], :division_ids::uuid[], :media_ids::uuid[])
       AS r (shortcut, title, content, division_id, media_id)
RETURNING id, shortcut;

-- name: update_many
UPDATE quick_replies q
   SET shortcut = r.shortcut, title = r.title, content = r.content, division_id = r.division_id,
       media_id = r.media_id, updated_by = :user_id, updated_at = clock_timestamp()
  FROM unnest(:ids::uuid[], :shortcuts::text[], :titles::text[], :contents::text[], :division_ids::uuid[],
              :media_ids::uuid[]) AS r (id, shortcut, title, content, division_id, media_id)
 WHERE q.tenant_id = :tenant_id AND q.id = r.id
RETURNING q.id;
