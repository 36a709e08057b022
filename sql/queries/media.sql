-- Media files: uploads and customers' inbound media, stored on the local media folder or in an
-- S3-compatible bucket; the row says where (storage, bucket, storage_key).

-- name: insert_media_file<!
INSERT INTO media_files (tenant_id, id, storage, storage_key, bucket, filename, mime_type, size_bytes, sha256,
                         source, uploaded_by)
VALUES (:tenant_id, :id, :storage, :storage_key, :bucket, :filename, :mime_type, :size_bytes, :sha256,
        :source, :uploaded_by)
RETURNING id;

-- name: get_media_file^
SELECT id, storage, storage_key, bucket, filename, mime_type, size_bytes, sha256, source, created_at
  FROM media_files
 WHERE tenant_id = :tenant_id AND id = :id;

-- name: existing_ids
-- Which of these ids name a media file of the tenant.
SELECT id FROM media_files WHERE tenant_id = :tenant_id AND id = ANY(:ids::uuid[]);
