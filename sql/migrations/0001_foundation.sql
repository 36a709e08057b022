-- Foundation: tenants, agents (users), roles, sessions, API keys, activity logs,
-- and the row-level security every tenant-owned table uses.

DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'omnistream_app') THEN
    CREATE ROLE omnistream_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
  END IF;
END $$;

-- The tenant of the current transaction, set by the app with set_config('app.tenant_id', ..., true).
-- Unset means no tenant: every policy then hides every row.
CREATE FUNCTION current_tenant_id() RETURNS uuid
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid $$;

-- Every tenant-owned table calls this once: RLS on, one policy for reads and writes.
CREATE PROCEDURE enable_tenant_isolation(target regclass)
  LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', target);
  EXECUTE format(
    'CREATE POLICY tenant_isolation ON %s USING (tenant_id = current_tenant_id()) '
    'WITH CHECK (tenant_id = current_tenant_id())', target);
END $$;

CREATE TABLE tenants (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL,
  slug text NOT NULL,
  timezone text NOT NULL DEFAULT 'UTC',
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX tenants_slug_key ON tenants (lower(slug));
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenants USING (id = current_tenant_id()) WITH CHECK (id = current_tenant_id());

CREATE TABLE roles (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  name text NOT NULL,
  description text NOT NULL DEFAULT '',
  base_role text NOT NULL CHECK (base_role IN ('agent', 'supervisor', 'admin')),
  is_builtin boolean NOT NULL DEFAULT false,
  -- Built-in roles take their permissions from the code, so new permissions reach them on upgrade.
  permissions text[] NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX roles_tenant_name_key ON roles (tenant_id, lower(name));
CALL enable_tenant_isolation('roles');

CREATE TABLE users (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  email text NOT NULL,
  name text NOT NULL,
  password_hash text NOT NULL,
  role_id uuid NOT NULL REFERENCES roles (id),
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
  online_status text NOT NULL DEFAULT 'offline' CHECK (online_status IN ('online', 'away', 'offline')),
  last_seen_at timestamptz,
  deleted_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
-- A deleted agent keeps its row (history points at it) but frees its email.
CREATE UNIQUE INDEX users_tenant_email_key ON users (tenant_id, lower(email)) WHERE deleted_at IS NULL;
CREATE INDEX users_email_idx ON users (lower(email)) WHERE deleted_at IS NULL;
CREATE INDEX users_tenant_created_idx ON users (tenant_id, created_at, id);
CREATE INDEX users_role_idx ON users (tenant_id, role_id) WHERE deleted_at IS NULL;
CALL enable_tenant_isolation('users');

CREATE TABLE sessions (
  id uuid PRIMARY KEY,
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES users (id),
  ip inet,
  user_agent text,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  revoked_at timestamptz
);
CREATE INDEX sessions_user_idx ON sessions (tenant_id, user_id) WHERE revoked_at IS NULL;
CALL enable_tenant_isolation('sessions');

CREATE TABLE api_keys (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES users (id),
  name text NOT NULL,
  prefix text NOT NULL,
  key_hash text NOT NULL,
  -- NULL: all of the owner's permissions; otherwise at most these (and never more than the owner has).
  scopes text[],
  expires_at timestamptz,
  last_used_at timestamptz,
  revoked_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX api_keys_prefix_key ON api_keys (prefix);
CREATE INDEX api_keys_user_idx ON api_keys (tenant_id, user_id, created_at);
CALL enable_tenant_isolation('api_keys');

CREATE TABLE activity_logs (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  actor_type text NOT NULL CHECK (actor_type IN ('user', 'api_key', 'system')),
  actor_id uuid,
  actor_email text,
  action text NOT NULL,
  object_type text NOT NULL,
  object_id uuid,
  ip inet,
  request_id text,
  details jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX activity_logs_tenant_created_idx ON activity_logs (tenant_id, created_at DESC, id DESC);
CREATE INDEX activity_logs_actor_idx ON activity_logs (tenant_id, actor_id, created_at DESC);
CREATE INDEX activity_logs_object_idx ON activity_logs (tenant_id, object_type, object_id);
CALL enable_tenant_isolation('activity_logs');

-- Lookups that must run before the tenant is known. SECURITY DEFINER runs them as the
-- schema owner, past the policies; each returns only what authentication needs.

CREATE FUNCTION auth_login_candidates(p_email text)
  RETURNS TABLE (user_id uuid, tenant_id uuid, tenant_slug text, tenant_status text,
                 user_status text, password_hash text)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $$
    SELECT u.id, t.id, t.slug, t.status, u.status, u.password_hash
      FROM users u JOIN tenants t ON t.id = u.tenant_id
     WHERE lower(u.email) = lower(p_email) AND u.deleted_at IS NULL
  $$;

CREATE FUNCTION auth_session_principal(p_session_id uuid)
  RETURNS TABLE (user_id uuid, tenant_id uuid, email text, name text, user_status text,
                 tenant_status text, role_id uuid, role_name text, base_role text,
                 role_is_builtin boolean, role_permissions text[], expires_at timestamptz)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $$
    SELECT u.id, u.tenant_id, u.email, u.name, u.status, t.status, r.id, r.name, r.base_role,
           r.is_builtin, r.permissions, s.expires_at
      FROM sessions s
      JOIN users u ON u.id = s.user_id AND u.deleted_at IS NULL
      JOIN tenants t ON t.id = u.tenant_id
      JOIN roles r ON r.id = u.role_id
     WHERE s.id = p_session_id AND s.revoked_at IS NULL AND s.expires_at > now()
  $$;

CREATE FUNCTION auth_api_key_principal(p_prefix text, p_key_hash text)
  RETURNS TABLE (api_key_id uuid, scopes text[], user_id uuid, tenant_id uuid, email text, name text,
                 user_status text, tenant_status text, role_id uuid, role_name text, base_role text,
                 role_is_builtin boolean, role_permissions text[])
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
  AS $$
  BEGIN
    RETURN QUERY
      SELECT k.id, k.scopes, u.id, u.tenant_id, u.email, u.name, u.status, t.status, r.id, r.name,
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

CREATE FUNCTION tenant_slug_taken(p_slug text) RETURNS boolean
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $$ SELECT EXISTS (SELECT 1 FROM tenants WHERE lower(slug) = lower(p_slug)) $$;

GRANT USAGE ON SCHEMA public TO omnistream_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO omnistream_app;
REVOKE ALL ON schema_migrations FROM omnistream_app;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO omnistream_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO omnistream_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO omnistream_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO omnistream_app;

-- Housekeeping across tenants for the worker: sessions that ended a week ago are dropped.
CREATE FUNCTION purge_ended_sessions() RETURNS integer
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
  AS $$
    WITH gone AS (
      DELETE FROM sessions
       WHERE expires_at < now() - interval '7 days' OR revoked_at < now() - interval '7 days'
      RETURNING 1)
    SELECT count(*)::integer FROM gone
  $$;
GRANT EXECUTE ON FUNCTION purge_ended_sessions() TO omnistream_app;
