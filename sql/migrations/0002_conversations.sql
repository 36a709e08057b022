-- Conversations core: contacts and their channel identities, divisions, conversations,
-- messages, notes, transfers, working hours, chat expiration and the automation outbox.

CREATE TABLE contacts (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  name text NOT NULL DEFAULT '',
  phone text,
  email text,
  tags text[] NOT NULL DEFAULT '{}',
  custom_attributes jsonb NOT NULL DEFAULT '{}',
  last_seen_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX contacts_tenant_created_idx ON contacts (tenant_id, created_at DESC, id DESC);
CREATE INDEX contacts_tenant_email_idx ON contacts (tenant_id, lower(email));
CREATE INDEX contacts_tenant_phone_idx ON contacts (tenant_id, phone);
CREATE INDEX contacts_tags_idx ON contacts USING gin (tags);
CALL enable_tenant_isolation('contacts');

-- One contact can be reached on several channels; each identity belongs to one contact.
CREATE TABLE contact_identities (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  channel text NOT NULL CHECK (channel IN ('whatsapp', 'messenger', 'instagram', 'email')),
  external_id text NOT NULL,
  contact_id uuid NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, channel, external_id)
);
CREATE INDEX contact_identities_contact_idx ON contact_identities (tenant_id, contact_id);
CALL enable_tenant_isolation('contact_identities');

CREATE TABLE divisions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  name text NOT NULL,
  description text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE UNIQUE INDEX divisions_tenant_name_key ON divisions (tenant_id, lower(name));
CALL enable_tenant_isolation('divisions');

CREATE TABLE division_agents (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  division_id uuid NOT NULL REFERENCES divisions (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (division_id, user_id)
);
CREATE INDEX division_agents_user_idx ON division_agents (tenant_id, user_id);
CALL enable_tenant_isolation('division_agents');

CREATE TABLE conversations (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  contact_id uuid NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
  channel text NOT NULL CHECK (channel IN ('whatsapp', 'messenger', 'instagram', 'email')),
  -- The integration account the conversation runs through (its table comes with integrations).
  account_id uuid,
  status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'pending', 'resolved', 'closed', 'expired')),
  assigned_agent_id uuid REFERENCES users (id),
  division_id uuid REFERENCES divisions (id) ON DELETE SET NULL,
  tags text[] NOT NULL DEFAULT '{}',
  priority text NOT NULL DEFAULT 'normal' CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
  handled_by text NOT NULL DEFAULT 'human' CHECK (handled_by IN ('human', 'ai')),
  ai_agent_id uuid,
  unread_count integer NOT NULL DEFAULT 0,
  message_count integer NOT NULL DEFAULT 0,
  last_message_at timestamptz,
  last_message_preview text,
  last_inbound_at timestamptz,
  last_outbound_at timestamptz,
  last_activity_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  status_changed_at timestamptz,
  status_changed_by uuid,
  resolved_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- At most one live conversation per contact, channel and account: concurrent deliveries of the
-- first message of a thread cannot open two.
CREATE UNIQUE INDEX conversations_live_thread_key ON conversations (tenant_id, contact_id, channel, account_id)
  NULLS NOT DISTINCT WHERE status IN ('open', 'pending', 'resolved');
CREATE INDEX conversations_activity_idx ON conversations (tenant_id, last_activity_at DESC, id DESC);
CREATE INDEX conversations_status_activity_idx ON conversations (tenant_id, status, last_activity_at DESC, id DESC);
CREATE INDEX conversations_assignee_activity_idx
  ON conversations (tenant_id, assigned_agent_id, last_activity_at DESC, id DESC);
CREATE INDEX conversations_created_idx ON conversations (tenant_id, created_at DESC, id DESC);
CREATE INDEX conversations_contact_idx ON conversations (tenant_id, contact_id, last_activity_at DESC);
CREATE INDEX conversations_division_idx ON conversations (tenant_id, division_id) WHERE division_id IS NOT NULL;
CREATE INDEX conversations_tags_idx ON conversations USING gin (tags);
CREATE INDEX conversations_expiry_idx ON conversations (tenant_id, channel, last_activity_at)
  WHERE status IN ('open', 'pending');
CALL enable_tenant_isolation('conversations');

-- When each agent last read each conversation.
CREATE TABLE conversation_reads (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  last_read_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (conversation_id, user_id)
);
CALL enable_tenant_isolation('conversation_reads');

CREATE TABLE messages (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
  channel text NOT NULL,
  direction text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
  type text NOT NULL CHECK (type IN ('text', 'image', 'audio', 'video', 'document', 'sticker', 'location',
                                     'contacts', 'template', 'interactive', 'reaction', 'system')),
  text text,
  content jsonb NOT NULL DEFAULT '{}',
  provider_message_id text,
  status text NOT NULL CHECK (status IN ('received', 'queued', 'sent', 'delivered', 'read', 'failed')),
  error_code text,
  error_message text,
  sender_type text NOT NULL CHECK (sender_type IN ('contact', 'agent', 'ai', 'automation', 'system')),
  sender_agent_id uuid REFERENCES users (id),
  sent_at timestamptz,
  delivered_at timestamptz,
  read_at timestamptz,
  failed_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  -- 'simple': no stemming, so every language of every tenant is searchable alike.
  search tsvector GENERATED ALWAYS AS (to_tsvector('simple', coalesce(text, ''))) STORED
);
-- A redelivered provider webhook never stores a second message.
CREATE UNIQUE INDEX messages_provider_id_key ON messages (tenant_id, channel, provider_message_id)
  WHERE provider_message_id IS NOT NULL;
CREATE INDEX messages_conversation_idx ON messages (tenant_id, conversation_id, created_at DESC, id DESC);
CREATE INDEX messages_search_idx ON messages USING gin (search);
CREATE INDEX messages_queued_idx ON messages (created_at) WHERE status = 'queued';
CALL enable_tenant_isolation('messages');

CREATE TABLE notes (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
  author_id uuid NOT NULL REFERENCES users (id),
  body text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX notes_conversation_idx ON notes (tenant_id, conversation_id, created_at DESC, id DESC);
CALL enable_tenant_isolation('notes');

CREATE TABLE transfers (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
  from_agent_id uuid REFERENCES users (id),
  to_agent_id uuid REFERENCES users (id),
  from_division_id uuid REFERENCES divisions (id) ON DELETE SET NULL,
  to_division_id uuid REFERENCES divisions (id) ON DELETE SET NULL,
  reason text NOT NULL DEFAULT '',
  transferred_by uuid REFERENCES users (id),
  created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX transfers_conversation_idx ON transfers (tenant_id, conversation_id, created_at DESC, id DESC);
CALL enable_tenant_isolation('transfers');

-- A weekly schedule with dated exceptions: the tenant's (division_id NULL) or a division's override.
CREATE TABLE working_schedules (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  division_id uuid REFERENCES divisions (id) ON DELETE CASCADE,
  periods jsonb NOT NULL DEFAULT '[]',
  holidays jsonb NOT NULL DEFAULT '[]',
  updated_at timestamptz NOT NULL DEFAULT now(),
  updated_by uuid REFERENCES users (id)
);
CREATE UNIQUE INDEX working_schedules_key ON working_schedules (tenant_id, division_id) NULLS NOT DISTINCT;
CALL enable_tenant_isolation('working_schedules');

CREATE TABLE chat_expiration_rules (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  channel text NOT NULL CHECK (channel IN ('whatsapp', 'messenger', 'instagram', 'email')),
  enabled boolean NOT NULL DEFAULT true,
  inactivity_minutes integer NOT NULL CHECK (inactivity_minutes BETWEEN 1 AND 525600),
  statuses text[] NOT NULL DEFAULT '{open,pending}',
  updated_at timestamptz NOT NULL DEFAULT now(),
  updated_by uuid REFERENCES users (id),
  PRIMARY KEY (tenant_id, channel)
);
CALL enable_tenant_isolation('chat_expiration_rules');

-- The transactional outbox of automation: written with the change that causes it.
CREATE TABLE automation_events (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  event_type text NOT NULL,
  conversation_id uuid NOT NULL,
  contact_id uuid,
  payload jsonb NOT NULL,
  payload_hash text NOT NULL,
  source text NOT NULL,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'processing', 'done', 'failed')),
  attempts integer NOT NULL DEFAULT 0,
  available_at timestamptz NOT NULL DEFAULT now(),
  processed_at timestamptz,
  error text,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX automation_events_due_idx ON automation_events (available_at) WHERE status IN ('pending', 'processing');
CREATE INDEX automation_events_tenant_created_idx ON automation_events (tenant_id, created_at DESC, id DESC);
CREATE INDEX automation_events_conversation_idx ON automation_events (tenant_id, conversation_id, created_at DESC);
CREATE INDEX automation_events_hash_idx ON automation_events (tenant_id, payload_hash);
CALL enable_tenant_isolation('automation_events');

-- The public working-hours page knows the tenant by slug only.
CREATE FUNCTION tenant_id_by_slug(p_slug text) RETURNS uuid
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $$ SELECT id FROM tenants WHERE lower(slug) = lower(p_slug) AND status = 'active' $$;

-- Tenants with enabled expiration rules, for the worker's periodic sweep.
CREATE FUNCTION tenants_with_expiration_rules() RETURNS SETOF uuid
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $$ SELECT DISTINCT tenant_id FROM chat_expiration_rules WHERE enabled $$;

GRANT EXECUTE ON FUNCTION tenant_id_by_slug(text), tenants_with_expiration_rules() TO omnistream_app;

-- Outbound messages still queued a while after they were written: their delivery job was lost
-- (Redis restarted, a worker died) and the sweeper enqueues them again.
CREATE FUNCTION queued_messages_due(p_older_than interval, p_limit integer)
  RETURNS TABLE (tenant_id uuid, message_id uuid)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $$
    SELECT tenant_id, id FROM messages
     WHERE status = 'queued' AND direction = 'outbound' AND created_at < now() - p_older_than
     ORDER BY created_at LIMIT p_limit
  $$;
GRANT EXECUTE ON FUNCTION queued_messages_due(interval, integer) TO omnistream_app;
