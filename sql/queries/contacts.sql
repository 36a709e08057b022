-- name: get_contact^
SELECT c.id, c.name, c.phone, c.email, c.tags, c.custom_attributes, c.opted_out, c.opted_out_at, c.last_seen_at,
       c.created_at, c.updated_at,
       (SELECT coalesce(json_agg(json_build_object('channel', i.channel, 'external_id', i.external_id)
                                 ORDER BY i.created_at), '[]')
          FROM contact_identities i WHERE i.tenant_id = c.tenant_id AND i.contact_id = c.id) AS identities
  FROM contacts c
 WHERE c.tenant_id = :tenant_id AND c.id = :id;

-- name: list_contacts
SELECT c.id, c.name, c.phone, c.email, c.tags, c.custom_attributes, c.opted_out, c.opted_out_at, c.last_seen_at,
       c.created_at, c.updated_at,
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
       opted_out = COALESCE(:opted_out, opted_out),
       opted_out_at = CASE WHEN :opted_out IS NULL OR :opted_out = opted_out THEN opted_out_at
                           WHEN :opted_out THEN clock_timestamp() END,
       updated_at = clock_timestamp()
 WHERE tenant_id = :tenant_id AND id = :id
RETURNING id;

-- name: reachable_contacts
-- Contacts a campaign can reach on the channel (an identity there, or for WhatsApp a phone and for
-- email an address), by ids given or by their tags (all of them), in creation order after `after`.
SELECT c.id, c.created_at
  FROM contacts c
 WHERE c.tenant_id = :tenant_id
   AND c.id = ANY(:ids::uuid[])                                                                      --? ids
   AND c.tags @> :tags::text[]                                                                       --? tags
   AND EXISTS (SELECT 1 FROM contact_identities w                                                    --? written_on
                WHERE w.tenant_id = c.tenant_id AND w.contact_id = c.id AND w.channel = :written_on::text) --? written_on
   -- The address on the contact first: it is free to read, the identity costs a lookup.
   AND ((:channel = 'whatsapp' AND c.phone IS NOT NULL) OR (:channel = 'email' AND c.email IS NOT NULL)
        OR EXISTS (SELECT 1 FROM contact_identities i
                    WHERE i.tenant_id = c.tenant_id AND i.contact_id = c.id AND i.channel = :channel))
   AND (c.created_at, c.id) > (:cursor_at, :cursor_id::uuid)                                         --? after_asc
 ORDER BY c.created_at, c.id
 LIMIT :limit
;

-- name: existing_contact_ids
SELECT id FROM contacts WHERE tenant_id = :tenant_id AND id = ANY(:ids::uuid[]);

-- name: opted_out_contact_ids
SELECT id FROM contacts WHERE tenant_id = :tenant_id AND id = ANY(:ids::uuid[]) AND opted_out;

-- name: identified_contacts
SELECT external_id, contact_id FROM contact_identities
 WHERE tenant_id = :tenant_id AND channel = :channel AND external_id = ANY(:external_ids::text[]);

-- name: insert_contacts
-- WhatsApp contacts first met by their number (a campaign's list): the phone is the number's digits,
-- as WhatsApp names it. The caller then gives each its identity.
INSERT INTO contacts (tenant_id, name, phone)
SELECT :tenant_id, r.name, r.phone FROM unnest(:names::text[], :phones::text[]) AS r (name, phone)
RETURNING id, phone;

-- name: insert_identities
INSERT INTO contact_identities (tenant_id, channel, external_id, contact_id)
SELECT :tenant_id, :channel, r.external_id, r.contact_id
  FROM unnest(:external_ids::text[], :contact_ids::uuid[]) AS r (external_id, contact_id)
    ON CONFLICT DO NOTHING
RETURNING external_id, contact_id;

-- name: delete_contacts!
DELETE FROM contacts WHERE tenant_id = :tenant_id AND id = ANY(:ids::uuid[]);
