-- name: get_contact^
SELECT c.id, c.name, c.phone, c.email, c.tags, c.custom_attributes, c.last_seen_at, c.created_at, c.updated_at,
       (SELECT coalesce(json_agg(json_build_object('channel', i.channel, 'external_id', i.external_id)
                                 ORDER BY i.created_at), '[]')
          FROM contact_identities i WHERE i.tenant_id = c.tenant_id AND i.contact_id = c.id) AS identities
  FROM contacts c
 WHERE c.tenant_id = :tenant_id AND c.id = :id;

-- name: list_contacts
SELECT c.id, c.name, c.phone, c.email, c.tags, c.custom_attributes, c.last_seen_at, c.created_at, c.updated_at,
       (SELECT coalesce(json_agg(json_build_object('channel', i.channel, 'external_id', i.external_id)
                                 ORDER BY i.created_at), '[]')
          FROM contact_identities i WHERE i.tenant_id = c.tenant_id AND i.contact_id = c.id) AS identities
  FROM contacts c
 WHERE c.tenant_id = :tenant_id
   AND (strpos(lower(c.name), lower(:q::text)) > 0 OR strpos(lower(c.email), lower(:q::text)) > 0    --? q
        OR strpos(lower(c.phone), lower(:q::text)) > 0)                                              --? q
   AND c.tags @> ARRAY[:tag::text]::text[]                                                           --? tag
   AND EXISTS (SELECT 1 FROM contact_identities i                                                    --? channel
                WHERE i.tenant_id = c.tenant_id AND i.contact_id = c.id AND i.channel = :channel::text) --? channel
   AND c.created_at >= :created_from::timestamptz                                                    --? created_from
   AND c.created_at < :created_to::timestamptz                                                       --? created_to
   AND (c.created_at, c.id) < (:cursor_at, :cursor_id::uuid)                                         --? after_desc
   AND (c.created_at, c.id) > (:cursor_at, :cursor_id::uuid)                                         --? after_asc
 ORDER BY c.created_at DESC, c.id DESC                                                               --? desc
 ORDER BY c.created_at, c.id                                                                         --? asc
 LIMIT :limit
OFFSET :offset                                                                                       --? offset
;

-- name: count_contacts$
SELECT count(*) FROM contacts c
 WHERE c.tenant_id = :tenant_id
   AND (strpos(lower(c.name), lower(:q::text)) > 0 OR strpos(lower(c.email), lower(:q::text)) > 0    --? q
        OR strpos(lower(c.phone), lower(:q::text)) > 0)                                              --? q
   AND c.tags @> ARRAY[:tag::text]::text[]                                                           --? tag
   AND EXISTS (SELECT 1 FROM contact_identities i                                                    --? channel
                WHERE i.tenant_id = c.tenant_id AND i.contact_id = c.id AND i.channel = :channel::text) --? channel
   AND c.created_at >= :created_from::timestamptz                                                    --? created_from
   AND c.created_at < :created_to::timestamptz                                                       --? created_to
;

-- name: update_contact$
UPDATE contacts
   SET name = COALESCE(:name, name),
       phone = CASE WHEN :set_phone THEN :phone ELSE phone END,
       email = CASE WHEN :set_email THEN :email ELSE email END,
       tags = COALESCE(:tags, tags),
       custom_attributes = jsonb_strip_nulls(custom_attributes || COALESCE(:custom_attributes::jsonb, '{}')),
       updated_at = clock_timestamp()
 WHERE tenant_id = :tenant_id AND id = :id
RETURNING id;
