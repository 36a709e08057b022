-- The key lookup also returns when the key expires, so a cached identity never outlives it.
DROP FUNCTION auth_api_key_principal(text, text);
CREATE FUNCTION auth_api_key_principal(p_prefix text, p_key_hash text)
  RETURNS TABLE (api_key_id uuid, scopes text[], expires_at timestamptz, user_id uuid, tenant_id uuid, email text,
                 name text, user_status text, tenant_status text, role_id uuid, role_name text, base_role text,
                 role_is_builtin boolean, role_permissions text[])
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
  AS $$
  BEGIN
    RETURN QUERY
      SELECT k.id, k.scopes, k.expires_at, u.id, u.tenant_id, u.email, u.name, u.status, t.status, r.id, r.name,
             r.base_role, r.is_builtin, r.permissions
        FROM api_keys k
        JOIN users u ON u.id = k.user_id AND u.deleted_at IS NULL
        JOIN tenants t ON t.id = u.tenant_id
        JOIN roles r ON r.id = u.role_id
       WHERE k.prefix = p_prefix AND k.key_hash = p_key_hash AND k.revoked_at IS NULL
         AND (k.expires_at IS NULL OR k.expires_at > now());
    -- Recorded at most once a minute so a busy key does not write on every request.
    UPDATE api_keys SET last_used_at = now()
     WHERE prefix = p_prefix AND key_hash = p_key_hash
       AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute');
  END $$;
GRANT EXECUTE ON FUNCTION auth_api_key_principal(text, text) TO omnistream_app;
