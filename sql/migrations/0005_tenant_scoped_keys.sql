-- Tenant-scoped keys: tenant_id leads the primary key of every tenant-owned table and is part of
-- every unique key and of every foreign key between tenant tables. A schema distributed by
-- tenant_id (Citus) needs exactly this; and the database itself now refuses a row that points at
-- another tenant's object, whatever the code forgot. `tenants` is the one table every tenant
-- shares (a reference table when distributed); its key stays `id`.

-- 1. Foreign keys between tenant tables point at the id-only keys: drop them first.
ALTER TABLE users DROP CONSTRAINT users_role_id_fkey;
ALTER TABLE sessions DROP CONSTRAINT sessions_user_id_fkey;
ALTER TABLE api_keys DROP CONSTRAINT api_keys_user_id_fkey;
ALTER TABLE contact_identities DROP CONSTRAINT contact_identities_contact_id_fkey;
ALTER TABLE division_agents DROP CONSTRAINT division_agents_division_id_fkey,
                            DROP CONSTRAINT division_agents_user_id_fkey;
ALTER TABLE conversations DROP CONSTRAINT conversations_contact_id_fkey,
                          DROP CONSTRAINT conversations_assigned_agent_id_fkey,
                          DROP CONSTRAINT conversations_division_id_fkey;
ALTER TABLE conversation_reads DROP CONSTRAINT conversation_reads_conversation_id_fkey,
                               DROP CONSTRAINT conversation_reads_user_id_fkey;
ALTER TABLE messages DROP CONSTRAINT messages_conversation_id_fkey,
                     DROP CONSTRAINT messages_sender_agent_id_fkey;
ALTER TABLE notes DROP CONSTRAINT notes_conversation_id_fkey,
                  DROP CONSTRAINT notes_author_id_fkey;
ALTER TABLE transfers DROP CONSTRAINT transfers_conversation_id_fkey,
                      DROP CONSTRAINT transfers_from_agent_id_fkey,
                      DROP CONSTRAINT transfers_to_agent_id_fkey,
                      DROP CONSTRAINT transfers_from_division_id_fkey,
                      DROP CONSTRAINT transfers_to_division_id_fkey,
                      DROP CONSTRAINT transfers_transferred_by_fkey;
ALTER TABLE working_schedules DROP CONSTRAINT working_schedules_division_id_fkey,
                              DROP CONSTRAINT working_schedules_updated_by_fkey;
ALTER TABLE chat_expiration_rules DROP CONSTRAINT chat_expiration_rules_updated_by_fkey;
ALTER TABLE automation_events DROP CONSTRAINT automation_events_conversation_id_fkey;

-- 2. Primary keys led by tenant_id.
ALTER TABLE roles DROP CONSTRAINT roles_pkey, ADD PRIMARY KEY (tenant_id, id);
ALTER TABLE users DROP CONSTRAINT users_pkey, ADD PRIMARY KEY (tenant_id, id);
ALTER TABLE sessions DROP CONSTRAINT sessions_pkey, ADD PRIMARY KEY (tenant_id, id);
ALTER TABLE api_keys DROP CONSTRAINT api_keys_pkey, ADD PRIMARY KEY (tenant_id, id);
ALTER TABLE activity_logs DROP CONSTRAINT activity_logs_pkey, ADD PRIMARY KEY (tenant_id, id);
ALTER TABLE contacts DROP CONSTRAINT contacts_pkey, ADD PRIMARY KEY (tenant_id, id);
ALTER TABLE divisions DROP CONSTRAINT divisions_pkey, ADD PRIMARY KEY (tenant_id, id);
ALTER TABLE division_agents DROP CONSTRAINT division_agents_pkey, ADD PRIMARY KEY (tenant_id, division_id, user_id);
ALTER TABLE conversations DROP CONSTRAINT conversations_pkey, ADD PRIMARY KEY (tenant_id, id);
ALTER TABLE conversation_reads DROP CONSTRAINT conversation_reads_pkey,
                               ADD PRIMARY KEY (tenant_id, conversation_id, user_id);
ALTER TABLE messages DROP CONSTRAINT messages_pkey, ADD PRIMARY KEY (tenant_id, id);
ALTER TABLE notes DROP CONSTRAINT notes_pkey, ADD PRIMARY KEY (tenant_id, id);
ALTER TABLE transfers DROP CONSTRAINT transfers_pkey, ADD PRIMARY KEY (tenant_id, id);
ALTER TABLE automation_events DROP CONSTRAINT automation_events_pkey, ADD PRIMARY KEY (tenant_id, id);
-- A schedule is found by (tenant, division) through its unique index; the row gets an id of its own.
ALTER TABLE working_schedules ADD COLUMN id uuid NOT NULL DEFAULT gen_random_uuid(),
                              ADD PRIMARY KEY (tenant_id, id);

-- 3. Unique keys that lacked the tenant. An API key's prefix is unique within its tenant: the key
-- itself names its tenant (osk_<tenant>_<prefix>_<secret>), so the lookup is by both.
DROP INDEX api_keys_prefix_key;
CREATE UNIQUE INDEX api_keys_prefix_key ON api_keys (tenant_id, prefix);

-- 4. Foreign keys between tenant tables, each carrying the tenant. ON DELETE SET NULL clears only
-- the reference, never the tenant column.
ALTER TABLE users ADD FOREIGN KEY (tenant_id, role_id) REFERENCES roles (tenant_id, id);
ALTER TABLE sessions ADD FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id);
ALTER TABLE api_keys ADD FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id);
ALTER TABLE contact_identities
  ADD FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id) ON DELETE CASCADE;
ALTER TABLE division_agents
  ADD FOREIGN KEY (tenant_id, division_id) REFERENCES divisions (tenant_id, id) ON DELETE CASCADE,
  ADD FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE;
ALTER TABLE conversations
  ADD FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id) ON DELETE CASCADE,
  ADD FOREIGN KEY (tenant_id, assigned_agent_id) REFERENCES users (tenant_id, id),
  ADD FOREIGN KEY (tenant_id, division_id) REFERENCES divisions (tenant_id, id) ON DELETE SET NULL (division_id);
ALTER TABLE conversation_reads
  ADD FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id) ON DELETE CASCADE,
  ADD FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE;
ALTER TABLE messages
  ADD FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id) ON DELETE CASCADE,
  ADD FOREIGN KEY (tenant_id, sender_agent_id) REFERENCES users (tenant_id, id);
ALTER TABLE notes
  ADD FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id) ON DELETE CASCADE,
  ADD FOREIGN KEY (tenant_id, author_id) REFERENCES users (tenant_id, id);
ALTER TABLE transfers
  ADD FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id) ON DELETE CASCADE,
  ADD FOREIGN KEY (tenant_id, from_agent_id) REFERENCES users (tenant_id, id),
  ADD FOREIGN KEY (tenant_id, to_agent_id) REFERENCES users (tenant_id, id),
  ADD FOREIGN KEY (tenant_id, from_division_id) REFERENCES divisions (tenant_id, id) ON DELETE SET NULL (from_division_id),
  ADD FOREIGN KEY (tenant_id, to_division_id) REFERENCES divisions (tenant_id, id) ON DELETE SET NULL (to_division_id),
  ADD FOREIGN KEY (tenant_id, transferred_by) REFERENCES users (tenant_id, id);
ALTER TABLE working_schedules
  ADD FOREIGN KEY (tenant_id, division_id) REFERENCES divisions (tenant_id, id) ON DELETE CASCADE,
  ADD FOREIGN KEY (tenant_id, updated_by) REFERENCES users (tenant_id, id);
ALTER TABLE chat_expiration_rules ADD FOREIGN KEY (tenant_id, updated_by) REFERENCES users (tenant_id, id);
ALTER TABLE automation_events
  ADD FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id) ON DELETE CASCADE;

-- 5. Lookups made before the tenant is known, where the caller knows it after all: a session's
-- JWT carries its tenant (tid) and an API key names its tenant, so each lookup is one tenant's.
DROP FUNCTION auth_session_principal(uuid);
CREATE FUNCTION auth_session_principal(p_tenant_id uuid, p_session_id uuid)
  RETURNS TABLE (user_id uuid, tenant_id uuid, email text, name text, user_status text,
                 tenant_status text, role_id uuid, role_name text, base_role text,
                 role_is_builtin boolean, role_permissions text[], expires_at timestamptz)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $$
    SELECT u.id, u.tenant_id, u.email, u.name, u.status, t.status, r.id, r.name, r.base_role,
           r.is_builtin, r.permissions, s.expires_at
      FROM sessions s
      JOIN users u ON u.tenant_id = s.tenant_id AND u.id = s.user_id AND u.deleted_at IS NULL
      JOIN tenants t ON t.id = s.tenant_id
      JOIN roles r ON r.tenant_id = u.tenant_id AND r.id = u.role_id
     WHERE s.tenant_id = p_tenant_id AND s.id = p_session_id AND s.revoked_at IS NULL AND s.expires_at > now()
  $$;

DROP FUNCTION auth_api_key_principal(text, text);
CREATE FUNCTION auth_api_key_principal(p_tenant_id uuid, p_prefix text, p_key_hash text)
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
        JOIN users u ON u.tenant_id = k.tenant_id AND u.id = k.user_id AND u.deleted_at IS NULL
        JOIN tenants t ON t.id = k.tenant_id
        JOIN roles r ON r.tenant_id = u.tenant_id AND r.id = u.role_id
       WHERE k.tenant_id = p_tenant_id AND k.prefix = p_prefix AND k.key_hash = p_key_hash
         AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now());
    -- Recorded at most once a minute so a busy key does not write on every request.
    UPDATE api_keys k SET last_used_at = now()
     WHERE k.tenant_id = p_tenant_id AND k.prefix = p_prefix AND k.key_hash = p_key_hash
       AND (k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute');
  END $$;
