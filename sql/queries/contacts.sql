-- name: get_contact^
SELECT c.id, c.name, c.phone, c.email, c.tags, c.custom_attributes, c.last_seen_at, c.created_at, c.updated_at,
       (SELECT coalesce(json_agg(json_build_object('channel', i.channel, 'external_id', i.external_id)
                                 ORDER BY i.created_at), '[]')
          FROM contact_identities i WHERE i.tenant_id = c.tenant_id AND i.contact_id = c.id) AS identities
  FROM contacts c
 WHERE c.tenant_id = :tenant_id AND c.id = :id;

-- name: list_contacts_desc
SELECT c.id, c.name, c.phone, c.email, c.tags, c.custom_attributes, c.last_seen_at, c.created_at, c.updated_at,
       (SELECT coalesce(json_agg(json_build_object('channel', i.channel, 'external_id', i.external_id)
                                 ORDER BY i.created_at), '[]')
          FROM contact_identities i WHERE i.tenant_id = c.tenant_id AND i.contact_id = c.id) AS identities
  FROM contacts c
 WHERE c.tenant_id = :tenant_id
   AND (:q::text IS NULL OR strpos(lower(c.name), lower(:q)) > 0 OR strpos(lower(c.email), lower(:q)) > 0
        OR strpos(lower(c.phone), lower(:q)) > 0)
   AND (:tag::text IS NULL OR c.tags @> ARRAY[:tag]::text[])
   AND (:channel::text IS NULL OR EXISTS (SELECT 1 FROM contact_identities i
                                           WHERE i.tenant_id = c.tenant_id AND i.contact_id = c.id
                                             AND i.channel = :channel))
   AND (:created_from::timestamptz IS NULL OR c.created_at >= :created_from)
   AND (:created_to::timestamptz IS NULL OR c.created_at < :created_to)
   AND (:cursor_at::timestamptz IS NULL OR (c.created_at, c.id) < (:cursor_at, :cursor_id::uuid))
 ORDER BY c.created_at DESC, c.id DESC
 LIMIT :limit OFFSET :offset;

-- name: list_contacts_asc
SELECT c.id, c.name, c.phone, c.email, c.tags, c.custom_attributes, c.last_seen_at, c.created_at, c.updated_at,
       (SELECT coalesce(json_agg(json_build_object('channel', i.channel, 'external_id', i.external_id)
                                 ORDER BY i.created_at), '[]')
          FROM contact_identities i WHERE i.tenant_id = c.tenant_id AND i.contact_id = c.id) AS identities
  FROM contacts c
 WHERE c.tenant_id = :tenant_id
   AND (:q::text IS NULL OR strpos(lower(c.name), lower(:q)) > 0 OR strpos(lower(c.email), lower(:q)) > 0
        OR strpos(lower(c.phone), lower(:q)) > 0)
   AND (:tag::text IS NULL OR c.tags @> ARRAY[:tag]::text[])
   AND (:channel::text IS NULL OR EXISTS (SELECT 1 FROM contact_identities i
                                           WHERE i.tenant_id = c.tenant_id AND i.contact_id = c.id
                                             AND i.channel = :channel))
   AND (:created_from::timestamptz IS NULL OR c.created_at >= :created_from)
   AND (:created_to::timestamptz IS NULL OR c.created_at < :created_to)
   AND (:cursor_at::timestamptz IS NULL OR (c.created_at, c.id) > (:cursor_at, :cursor_id::uuid))
 ORDER BY c.created_at, c.id
 LIMIT :limit OFFSET :offset;

-- name: count_contacts$
SELECT count(*) FROM contacts c
 WHERE c.tenant_id = :tenant_id
   AND (:q::text IS NULL OR strpos(lower(c.name), lower(:q)) > 0 OR strpos(lower(c.email), lower(:q)) > 0
        OR strpos(lower(c.phone), lower(:q)) > 0)
   AND (:tag::text IS NULL OR c.tags @> ARRAY[:tag]::text[])
   AND (:channel::text IS NULL OR EXISTS (SELECT 1 FROM contact_identities i
                                           WHERE i.tenant_id = c.tenant_id AND i.contact_id = c.id
                                             AND i.channel = :channel))
   AND (:created_from::timestamptz IS NULL OR c.created_at >= :created_from)
   AND (:created_to::timestamptz IS NULL OR c.created_at < :created_to);

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

-- name: delete_contact!
DELETE FROM contacts WHERE tenant_id = :tenant_id AND id = :id;
