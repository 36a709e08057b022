-- name: login_candidates
-- Every live account with this email, across tenants (runs before the tenant is known).
SELECT * FROM auth_login_candidates(:email);

-- name: session_principal^
SELECT * FROM auth_session_principal(:tenant_id, :session_id);

-- name: api_key_principal^
SELECT * FROM auth_api_key_principal(:tenant_id, :prefix, :key_hash);

-- name: insert_session!
INSERT INTO sessions (id, tenant_id, user_id, ip, user_agent, expires_at)
VALUES (:id, :tenant_id, :user_id, :ip::inet, :user_agent, :expires_at);

-- name: extend_session$
UPDATE sessions SET expires_at = :expires_at
 WHERE tenant_id = :tenant_id AND id = :id AND revoked_at IS NULL
RETURNING id;

-- name: revoke_session!
UPDATE sessions SET revoked_at = now()
 WHERE tenant_id = :tenant_id AND id = :id AND revoked_at IS NULL;

-- name: revoke_user_sessions!
UPDATE sessions SET revoked_at = now()
 WHERE tenant_id = :tenant_id AND user_id = :user_id AND revoked_at IS NULL;

-- name: purge_ended_sessions$
SELECT purge_ended_sessions();
