-- Automation: rules, the tenant's control switch, the runs of rules on events, and what the
-- workers need to claim the outbox's events (automation_events, migration 0002).

CREATE TABLE automation_rules (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  name text NOT NULL,
  description text NOT NULL DEFAULT '',
  is_active boolean NOT NULL DEFAULT true,
  trigger_type text NOT NULL
    CHECK (trigger_type IN ('conversation_created', 'message_received_inbound', 'status_changed', 'sla_breached')),
  conditions jsonb NOT NULL DEFAULT '{}',
  actions jsonb NOT NULL,
  alert_settings jsonb NOT NULL,
  schedule_settings jsonb NOT NULL,
  priority integer NOT NULL DEFAULT 0,
  rollout_percentage integer NOT NULL DEFAULT 100 CHECK (rollout_percentage BETWEEN 1 AND 100),
  stop_on_match boolean NOT NULL DEFAULT false,
  cooldown_secs integer NOT NULL DEFAULT 0 CHECK (cooldown_secs >= 0),
  snoozed_until timestamptz,
  created_by uuid,
  updated_by uuid,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, created_by) REFERENCES users (tenant_id, id),
  FOREIGN KEY (tenant_id, updated_by) REFERENCES users (tenant_id, id)
);
CREATE INDEX automation_rules_created_idx ON automation_rules (tenant_id, created_at, id);
CREATE INDEX automation_rules_snoozed_idx ON automation_rules (tenant_id, snoozed_until) WHERE snoozed_until IS NOT NULL;
CALL enable_tenant_isolation('automation_rules');

-- The tenant's global switch, and the version of its rule set. Every change to a rule (the
-- trigger below) or to the switch raises rules_version in the same transaction, and a worker's
-- claim of events returns the version with each event: a worker whose compiled rules are older
-- compiles them again before matching, so no event is matched against a stale rule set.
CREATE TABLE automation_control (
  tenant_id uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
  is_paused boolean NOT NULL DEFAULT false,
  pause_reason text,
  paused_until timestamptz,
  rules_version bigint NOT NULL DEFAULT 1,
  updated_by uuid,
  updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  FOREIGN KEY (tenant_id, updated_by) REFERENCES users (tenant_id, id)
);
CALL enable_tenant_isolation('automation_control');

CREATE FUNCTION automation_rules_changed() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO automation_control AS c (tenant_id, rules_version)
  VALUES (COALESCE(NEW.tenant_id, OLD.tenant_id), 2)
  ON CONFLICT (tenant_id) DO UPDATE SET rules_version = c.rules_version + 1;
  RETURN NULL;
END $$;
CREATE TRIGGER automation_rules_changed AFTER INSERT OR UPDATE OR DELETE ON automation_rules
  FOR EACH ROW EXECUTE FUNCTION automation_rules_changed();

-- One row per rule evaluated on an event: whether it matched, whether its actions ran, each
-- action's outcome, and the rule as it was (for replay). Unique per event and rule: a retried
-- event (a worker killed half-way, a lease expired) finds the runs it already made and does not
-- act twice. A run outlives its rule (rule_name is kept) and goes with its event.
CREATE TABLE automation_runs (
  tenant_id uuid NOT NULL,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  event_id uuid NOT NULL,
  rule_id uuid NOT NULL,
  rule_name text NOT NULL,
  conversation_id uuid NOT NULL,
  matched boolean NOT NULL,
  executed boolean NOT NULL,
  result jsonb NOT NULL DEFAULT '{}',
  rule_snapshot jsonb NOT NULL,
  -- Webhook actions are posted after the run commits, by a job of their own; until each has an
  -- outcome the run waits in this partial index for the sweeper.
  webhooks_pending boolean NOT NULL DEFAULT false,
  duration_ms double precision NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, event_id) REFERENCES automation_events (tenant_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX automation_runs_event_rule_key ON automation_runs (tenant_id, event_id, rule_id);
CREATE INDEX automation_runs_created_idx ON automation_runs (tenant_id, created_at DESC, id DESC);
CREATE INDEX automation_runs_rule_idx ON automation_runs (tenant_id, rule_id, created_at DESC, id DESC);
-- A rule's cooldown: when it last ran for a conversation.
CREATE INDEX automation_runs_cooldown_idx ON automation_runs (tenant_id, conversation_id, rule_id, created_at DESC)
  WHERE executed;
CREATE INDEX automation_runs_webhooks_idx ON automation_runs (created_at) WHERE webhooks_pending;
CALL enable_tenant_isolation('automation_runs');

-- What each tenant's events cost the workers, per event type: claimed, done, retried, failed.
CREATE TABLE automation_worker_counters (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  event_type text NOT NULL,
  claimed_events bigint NOT NULL DEFAULT 0,
  done_events bigint NOT NULL DEFAULT 0,
  retried_events bigint NOT NULL DEFAULT 0,
  failed_events bigint NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, event_type)
);
CALL enable_tenant_isolation('automation_worker_counters');

-- Events are listed by status and type, and looked up by fingerprint.
CREATE INDEX automation_events_status_idx ON automation_events (tenant_id, status, created_at DESC, id DESC);

-- An automation note has no agent for an author.
ALTER TABLE notes ALTER COLUMN author_id DROP NOT NULL;
ALTER TABLE notes ADD COLUMN author_type text NOT NULL DEFAULT 'agent' CHECK (author_type IN ('agent', 'automation'));
ALTER TABLE notes ADD CONSTRAINT notes_author_check CHECK ((author_type = 'agent') = (author_id IS NOT NULL));

-- A committed event wakes the workers: one notification per statement that writes events (the
-- channel carries nothing; a woken worker claims what is due). Notifications are sent at commit,
-- so a worker never looks for an event before it can see it.
CREATE FUNCTION automation_events_written() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('omnistream_automation_events', '');
  RETURN NULL;
END $$;
CREATE TRIGGER automation_events_written AFTER INSERT ON automation_events
  FOR EACH STATEMENT EXECUTE FUNCTION automation_events_written();

-- The workers claim due events across tenants in one statement: pending ones whose time has
-- come, and processing ones whose lease ran out (their worker died or stalled): that is the
-- sweep. Each claimed event is processing until its lease ends, and comes with its tenant's
-- rules version (1 when the tenant never had a rule) and the tenant's pause.
CREATE FUNCTION claim_automation_events(p_limit integer, p_lease interval)
  RETURNS TABLE (tenant_id uuid, id uuid, event_type text, conversation_id uuid, contact_id uuid, payload jsonb,
                 source text, attempts integer, created_at timestamptz, rules_version bigint)
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
  AS $$
    WITH due AS (
      SELECT e.tenant_id, e.id FROM automation_events e
       WHERE e.status IN ('pending', 'processing') AND e.available_at <= now()
       ORDER BY e.available_at
       LIMIT p_limit
         FOR UPDATE SKIP LOCKED
    ), claimed AS (
      UPDATE automation_events e
         SET status = 'processing', attempts = e.attempts + 1, available_at = now() + p_lease
        FROM due
       WHERE e.tenant_id = due.tenant_id AND e.id = due.id
      RETURNING e.tenant_id, e.id, e.event_type, e.conversation_id, e.contact_id, e.payload, e.source, e.attempts,
                e.created_at
    )
    SELECT c.tenant_id, c.id, c.event_type, c.conversation_id, c.contact_id, c.payload, c.source, c.attempts,
           c.created_at, COALESCE(k.rules_version, 1)
      FROM claimed c LEFT JOIN automation_control k ON k.tenant_id = c.tenant_id
  $$;

-- Runs whose webhooks still wait for their job (lost with Redis, say), for the sweeper.
CREATE FUNCTION automation_runs_with_pending_webhooks(p_older_than interval, p_limit integer)
  RETURNS TABLE (tenant_id uuid, run_id uuid)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $$
    SELECT r.tenant_id, r.id FROM automation_runs r
     WHERE r.webhooks_pending AND r.created_at < now() - p_older_than
     ORDER BY r.created_at LIMIT p_limit
  $$;

CALL allow_definer_lookups('automation_events');
CALL allow_definer_lookups('automation_control');
CALL allow_definer_lookups('automation_runs');
REVOKE EXECUTE ON FUNCTION claim_automation_events(integer, interval),
                           automation_runs_with_pending_webhooks(interval, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION claim_automation_events(integer, interval),
                          automation_runs_with_pending_webhooks(interval, integer) TO omnistream_app;
