-- name: list_api_keys
SELECT id, name, prefix, scopes, expires_at, last_used_at, revoked_at, created_at
  FROM api_keys
 WHERE tenant_id = :tenant_id AND user_id = :user_id
   AND (:include_revoked OR revoked_at IS NULL)
 ORDER BY created_at DESC, id DESC;

-- name: insert_api_key<!
INSERT INTO api_keys (tenant_id, user_id, name, prefix, key_hash, scopes, expires_at)
VALUES (:tenant_id, :user_id, :name, :prefix, :key_hash, :scopes, :expires_at)
RETURNING id, name, prefix, scopes, expires_at, last_used_at, revoked_at, created_at;

-- name: revoke_api_key$
UPDATE api_keys SET revoked_at = now()
 WHERE tenant_id = :tenant_id AND id = :id AND user_id = :user_id AND revoked_at IS NULL
RETURNING id;

-- name: revoke_user_api_keys!
UPDATE api_keys SET revoked_at = now()
 WHERE tenant_id = :tenant_id AND user_id = :user_id AND revoked_at IS NULL;
