-- SLA policies, the clocks they start on conversations, and the breaches the monitor records.

CREATE TABLE sla_policies (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  description text,
  enabled boolean NOT NULL DEFAULT true,
  -- The first matching enabled policy applies: lower positions first, then the older policy.
  position integer NOT NULL CHECK (position >= 0),
  first_response_minutes integer CHECK (first_response_minutes > 0),
  next_response_minutes integer CHECK (next_response_minutes > 0),
  resolution_minutes integer CHECK (resolution_minutes > 0),
  business_hours boolean NOT NULL DEFAULT false,
  -- Empty: any. Division ids are checked when written; a division deleted later matches nothing.
  channels text[] NOT NULL DEFAULT '{}',
  division_ids uuid[] NOT NULL DEFAULT '{}',
  priorities text[] NOT NULL DEFAULT '{}',
  created_by uuid,
  updated_by uuid,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (tenant_id, id),
  CHECK (num_nonnulls(first_response_minutes, next_response_minutes, resolution_minutes) > 0),
  FOREIGN KEY (tenant_id, created_by) REFERENCES users (tenant_id, id) ON DELETE SET NULL (created_by),
  FOREIGN KEY (tenant_id, updated_by) REFERENCES users (tenant_id, id) ON DELETE SET NULL (updated_by)
);
CREATE INDEX sla_policies_order_idx ON sla_policies (tenant_id, position, created_at, id);
CALL enable_tenant_isolation('sla_policies');

-- What the SLA clocks know of a conversation, from its events (each guarded by the event's time).
CREATE TABLE sla_conversations (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  conversation_id uuid NOT NULL,
  policy_id uuid,
  opened_at timestamptz NOT NULL,
  -- When the resolution clock last (re)started: the opening, or the latest reopening.
  resolution_since timestamptz NOT NULL,
  last_agent_reply_at timestamptz,
  -- The customer's first message after the latest agent reply, not yet answered.
  awaiting_reply_since timestamptz,
  status text NOT NULL,
  -- The time of the latest event whose snapshot (status, channel, division, priority) was taken.
  observed_at timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, conversation_id),
  FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id) ON DELETE CASCADE,
  FOREIGN KEY (tenant_id, policy_id) REFERENCES sla_policies (tenant_id, id) ON DELETE SET NULL (policy_id)
);
CREATE INDEX sla_conversations_policy_idx ON sla_conversations (tenant_id, policy_id) WHERE policy_id IS NOT NULL;
CALL enable_tenant_isolation('sla_conversations');

CREATE TABLE sla_targets (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  conversation_id uuid NOT NULL,
  policy_id uuid NOT NULL,
  target text NOT NULL CHECK (target IN ('first_response', 'next_response', 'resolution')),
  started_at timestamptz NOT NULL,
  -- NULL while paused, or when the policy's hours open too rarely to reach it within 400 days.
  due_at timestamptz,
  met_at timestamptz,
  stopped_at timestamptz,
  breached_at timestamptz,
  paused_at timestamptz,
  remaining_seconds double precision,
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, conversation_id, target, started_at),
  CHECK ((paused_at IS NULL) = (remaining_seconds IS NULL)),
  FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id) ON DELETE CASCADE,
  FOREIGN KEY (tenant_id, policy_id) REFERENCES sla_policies (tenant_id, id) ON DELETE CASCADE
);
-- One clock of each target runs at a time (a breached one runs on until met or stopped).
CREATE UNIQUE INDEX sla_targets_one_open_key ON sla_targets (tenant_id, conversation_id, target)
  WHERE met_at IS NULL AND stopped_at IS NULL;
-- The monitor's way to the targets that may breach: only running, unbreached ones are in it.
CREATE INDEX sla_targets_watch_idx ON sla_targets (due_at)
  WHERE met_at IS NULL AND stopped_at IS NULL AND breached_at IS NULL AND paused_at IS NULL;
CREATE INDEX sla_targets_policy_idx ON sla_targets (tenant_id, policy_id);
CALL enable_tenant_isolation('sla_targets');

CREATE TABLE sla_breaches (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  target_id uuid NOT NULL,
  policy_id uuid NOT NULL,
  conversation_id uuid NOT NULL,
  target text NOT NULL,
  due_at timestamptz NOT NULL,
  breached_at timestamptz NOT NULL,
  -- The sla_breached event, written in the breach's own transaction.
  event_id uuid,
  PRIMARY KEY (tenant_id, id),
  -- A target breaches once, however often or concurrently the monitor runs.
  UNIQUE (tenant_id, target_id),
  FOREIGN KEY (tenant_id, target_id) REFERENCES sla_targets (tenant_id, id) ON DELETE CASCADE,
  FOREIGN KEY (tenant_id, policy_id) REFERENCES sla_policies (tenant_id, id) ON DELETE CASCADE,
  FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX sla_breaches_policy_idx ON sla_breaches (tenant_id, policy_id, breached_at DESC, id DESC);
CREATE INDEX sla_breaches_conversation_idx ON sla_breaches (tenant_id, conversation_id);
CALL enable_tenant_isolation('sla_breaches');

-- The tenants with a target past its due time, for the monitor (through sla_targets_watch_idx).
CREATE FUNCTION sla_tenants_with_due_targets(p_now timestamptz, p_limit integer) RETURNS SETOF uuid
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $$
    SELECT DISTINCT t.tenant_id FROM sla_targets t
     WHERE t.due_at <= p_now
       AND t.met_at IS NULL AND t.stopped_at IS NULL AND t.breached_at IS NULL AND t.paused_at IS NULL
     LIMIT p_limit
  $$;
CALL allow_definer_lookups('sla_targets');
REVOKE EXECUTE ON FUNCTION sla_tenants_with_due_targets(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sla_tenants_with_due_targets(timestamptz, integer) TO omnistream_app;
