-- WhatsApp message templates of the tenant's business accounts, as created here or synced from Meta.

-- name: get_template^
SELECT id, business_account_id, provider_template_id, name, language, category, status, rejected_reason,
       components, header_media_url, quality_score, created_at, updated_at, synced_at
  FROM wa_templates
 WHERE tenant_id = :tenant_id AND id = :id;

-- name: list_templates
SELECT id, business_account_id, provider_template_id, name, language, category, status, rejected_reason,
       components, header_media_url, quality_score, created_at, updated_at, synced_at
  FROM wa_templates
 WHERE tenant_id = :tenant_id
   AND status = :status                                                                              --? status
   AND category = :category                                                                          --? category
   AND language = :language                                                                          --? language
   AND business_account_id = :business_account_id                                                    --? business_account_id
   AND strpos(name, lower(:q::text)) > 0                                                             --? q
   AND (created_at, id) < (:cursor_at, :cursor_id::uuid)                                             --? after_desc
   AND (created_at, id) > (:cursor_at, :cursor_id::uuid)                                             --? after_asc
 ORDER BY created_at DESC, id DESC                                                                   --? desc
 ORDER BY created_at, id                                                                             --? asc
 LIMIT :limit
OFFSET :offset                                                                                       --? offset
;

-- name: count_templates$
SELECT count(*) FROM wa_templates
 WHERE tenant_id = :tenant_id
   AND status = :status                                                                              --? status
   AND category = :category                                                                          --? category
   AND language = :language                                                                          --? language
   AND business_account_id = :business_account_id                                                    --? business_account_id
   AND strpos(name, lower(:q::text)) > 0                                                             --? q
;

-- name: template_exists$
SELECT EXISTS (SELECT 1 FROM wa_templates
                WHERE tenant_id = :tenant_id AND business_account_id = :business_account_id
                  AND name = :name AND language = :language);

-- name: insert_template<!
INSERT INTO wa_templates (tenant_id, business_account_id, provider_template_id, name, language, category, status,
                          components, created_by, synced_at)
VALUES (:tenant_id, :business_account_id, :provider_template_id, :name, :language, :category, :status,
        :components, :created_by, clock_timestamp())
RETURNING id;

-- name: upsert_synced_template^
-- Meta's view of a template wins; a row comes back only when something changed (`created` says
-- whether it is new), so the unchanged are those that return nothing.
INSERT INTO wa_templates AS t (tenant_id, business_account_id, provider_template_id, name, language, category,
                               status, rejected_reason, components, quality_score, synced_at)
VALUES (:tenant_id, :business_account_id, :provider_template_id, :name, :language, :category, :status,
        :rejected_reason, :components, :quality_score, clock_timestamp())
    ON CONFLICT (tenant_id, business_account_id, name, language) DO UPDATE
   SET provider_template_id = EXCLUDED.provider_template_id,
       category = EXCLUDED.category,
       status = EXCLUDED.status,
       rejected_reason = EXCLUDED.rejected_reason,
       components = EXCLUDED.components,
       quality_score = EXCLUDED.quality_score,
       synced_at = EXCLUDED.synced_at,
       updated_at = clock_timestamp()
 WHERE (t.provider_template_id, t.category, t.status, t.rejected_reason, t.components, t.quality_score)
       IS DISTINCT FROM (EXCLUDED.provider_template_id, EXCLUDED.category, EXCLUDED.status,
                         EXCLUDED.rejected_reason, EXCLUDED.components, EXCLUDED.quality_score)
RETURNING (xmax = 0) AS created;

-- name: delete_template^
DELETE FROM wa_templates WHERE tenant_id = :tenant_id AND id = :id
RETURNING id, name, language;

-- name: set_header_media_url^
UPDATE wa_templates
   SET header_media_url = :header_media_url, updated_at = clock_timestamp()
 WHERE tenant_id = :tenant_id AND id = :id
RETURNING id;

-- name: template_for_send^
-- The template a message names; an approved one first when several business accounts have it.
SELECT id, business_account_id, provider_template_id, name, language, category, status, rejected_reason,
       components, header_media_url, quality_score, created_at, updated_at, synced_at
  FROM wa_templates
 WHERE tenant_id = :tenant_id AND name = :name AND language = :language
 ORDER BY (status = 'APPROVED') DESC, updated_at DESC
 LIMIT 1;

-- name: apply_review
-- Meta's news about a template (its review, its quality, its category), by Meta's id or by name and
-- language: what the news names changes, the rest stays.
UPDATE wa_templates
   SET status = coalesce(:status::text, status),
       rejected_reason = CASE WHEN :status::text IS NULL THEN rejected_reason
                              WHEN :status::text = 'REJECTED' THEN :reason::text END,
       quality_score = coalesce(:quality_score::text, quality_score),
       category = coalesce(:category::text, category),
       provider_template_id = coalesce(provider_template_id, :provider_template_id::text),
       updated_at = clock_timestamp()
 WHERE tenant_id = :tenant_id AND business_account_id = :business_account_id
   AND (provider_template_id = :provider_template_id::text OR (name = :name::text AND language = :language::text))
RETURNING id;
