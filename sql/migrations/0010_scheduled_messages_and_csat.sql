-- Scheduled messages (an agent's message queued for a later time) and CSAT surveys (a rating
-- link sent to the customer, answered once by its secret token).

CREATE TABLE scheduled_messages (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  conversation_id uuid NOT NULL,
  -- The message as the agent would have sent it (the body of POST .../messages).
  body jsonb NOT NULL,
  send_at timestamptz NOT NULL,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'cancelled', 'failed')),
  message_id uuid,
  failure_reason text,
  created_by uuid NOT NULL,
  cancelled_by uuid,
  processed_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (tenant_id, id),
  CHECK (status = 'sent' OR message_id IS NULL),
  CHECK ((status = 'failed') = (failure_reason IS NOT NULL)),
  FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id) ON DELETE CASCADE,
  FOREIGN KEY (tenant_id, message_id) REFERENCES messages (tenant_id, id) ON DELETE SET NULL (message_id),
  FOREIGN KEY (tenant_id, created_by) REFERENCES users (tenant_id, id),
  FOREIGN KEY (tenant_id, cancelled_by) REFERENCES users (tenant_id, id)
);
-- Only pending rows are ever due: the worker finds them by these without reading what went.
CREATE INDEX scheduled_messages_due_idx ON scheduled_messages (send_at) WHERE status = 'pending';
CREATE INDEX scheduled_messages_tenant_due_idx ON scheduled_messages (tenant_id, send_at, id)
  WHERE status = 'pending';
CREATE INDEX scheduled_messages_conversation_idx
  ON scheduled_messages (tenant_id, conversation_id, send_at DESC, id DESC);
CALL enable_tenant_isolation('scheduled_messages');
CALL allow_definer_lookups('scheduled_messages');

-- The tenants with a message due at p_now, for the worker's sweep across tenants.
CREATE FUNCTION tenants_with_due_scheduled_messages(p_now timestamptz) RETURNS SETOF uuid
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $$ SELECT DISTINCT tenant_id FROM scheduled_messages WHERE status = 'pending' AND send_at <= p_now $$;


CREATE TABLE csat_surveys (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  conversation_id uuid NOT NULL,
  -- SHA-256 of the link's token: the token itself is only in the message sent to the customer.
  token_hash bytea NOT NULL CHECK (length(token_hash) = 32),
  status text NOT NULL DEFAULT 'sent' CHECK (status IN ('sent', 'submitted', 'expired')),
  channel text NOT NULL,
  -- Who and which division the survey rates: the conversation's, when it was sent.
  agent_id uuid,
  division_id uuid,
  message_id uuid,
  rating smallint CHECK (rating BETWEEN 1 AND 5),
  comment text CHECK (length(comment) <= 2000),
  created_by uuid,
  -- The status_changed event that sent it automatically, so a redelivered event sends no second.
  source_event_id uuid,
  sent_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  submitted_at timestamptz,
  PRIMARY KEY (tenant_id, id),
  CHECK ((status = 'submitted') = (rating IS NOT NULL AND submitted_at IS NOT NULL)),
  FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id) ON DELETE CASCADE,
  FOREIGN KEY (tenant_id, message_id) REFERENCES messages (tenant_id, id) ON DELETE SET NULL (message_id),
  FOREIGN KEY (tenant_id, agent_id) REFERENCES users (tenant_id, id),
  FOREIGN KEY (tenant_id, created_by) REFERENCES users (tenant_id, id),
  FOREIGN KEY (tenant_id, division_id) REFERENCES divisions (tenant_id, id) ON DELETE SET NULL (division_id)
);
CREATE UNIQUE INDEX csat_surveys_token_key ON csat_surveys (tenant_id, token_hash);
-- The public link names no tenant: its token alone finds the survey.
CREATE INDEX csat_surveys_token_idx ON csat_surveys (token_hash);
-- One open survey per conversation; an expired one is closed (status expired) before the next.
CREATE UNIQUE INDEX csat_surveys_open_key ON csat_surveys (tenant_id, conversation_id) WHERE status = 'sent';
CREATE UNIQUE INDEX csat_surveys_source_event_key ON csat_surveys (tenant_id, source_event_id)
  WHERE source_event_id IS NOT NULL;
CREATE INDEX csat_surveys_conversation_idx ON csat_surveys (tenant_id, conversation_id, sent_at DESC, id DESC);
CREATE INDEX csat_surveys_sent_idx ON csat_surveys (tenant_id, sent_at);
CALL enable_tenant_isolation('csat_surveys');
CALL allow_definer_lookups('csat_surveys');

-- The tenant of a survey link, for the public submit (which has no account).
CREATE FUNCTION csat_tenant_by_token_hash(p_token_hash bytea) RETURNS uuid
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $$
    SELECT s.tenant_id FROM csat_surveys s JOIN tenants t ON t.id = s.tenant_id
     WHERE s.token_hash = p_token_hash AND t.status = 'active'
  $$;

-- A tenant's CSAT choices; no row means the defaults.
CREATE TABLE csat_settings (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  send_on_resolve boolean NOT NULL DEFAULT false,
  updated_by uuid,
  updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (tenant_id),
  FOREIGN KEY (tenant_id, updated_by) REFERENCES users (tenant_id, id)
);
CALL enable_tenant_isolation('csat_settings');

REVOKE EXECUTE ON FUNCTION tenants_with_due_scheduled_messages(timestamptz), csat_tenant_by_token_hash(bytea)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenants_with_due_scheduled_messages(timestamptz), csat_tenant_by_token_hash(bytea)
  TO omnistream_app;
