-- Outgoing webhooks: endpoints a tenant subscribes to public event types, one delivery per
-- (endpoint, event) fanned out from the automation outbox, and the log of every attempt.

CREATE TABLE outgoing_webhooks (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  url text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
  -- Public names (`message.received`), as the API speaks them.
  event_types text[] NOT NULL CHECK (cardinality(event_types) > 0),
  description text,
  -- Sealed (settings.secrets): the signing secret, and the custom headers as a JSON object.
  secret_sealed text NOT NULL,
  secret_hint text NOT NULL,
  headers_sealed text,
  header_names text[] NOT NULL DEFAULT '{}',
  enabled boolean NOT NULL DEFAULT true,
  disabled_reason text,
  disabled_at timestamptz,
  -- Since when every attempt has failed (NULL after a success): a day of it disables the endpoint.
  failing_since timestamptz,
  consecutive_failures integer NOT NULL DEFAULT 0,
  last_success_at timestamptz,
  last_failure_at timestamptz,
  created_by uuid,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, created_by) REFERENCES users (tenant_id, id) ON DELETE SET NULL (created_by),
  CHECK (enabled OR disabled_at IS NOT NULL)
);
CREATE INDEX outgoing_webhooks_created_idx ON outgoing_webhooks (tenant_id, created_at DESC, id DESC);
-- The fan-out looks up a tenant's enabled endpoints for each batch of events.
CREATE INDEX outgoing_webhooks_enabled_idx ON outgoing_webhooks (tenant_id) WHERE enabled;
CALL enable_tenant_isolation('outgoing_webhooks');

-- One event to one endpoint, across all its attempts. Its body is fixed when it is fanned out, so
-- every attempt sends the same bytes (only the signature's time differs).
CREATE TABLE outgoing_webhook_deliveries (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  webhook_id uuid NOT NULL,
  event_id uuid NOT NULL,
  event_type text NOT NULL,
  body text NOT NULL,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed', 'cancelled')),
  attempts integer NOT NULL DEFAULT 0,
  -- When it is due; while a worker posts it, the end of that worker's lease.
  next_attempt_at timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  finished_at timestamptz,
  PRIMARY KEY (tenant_id, id),
  -- An event processed again (at-least-once) fans out to nothing new.
  UNIQUE (tenant_id, webhook_id, event_id),
  FOREIGN KEY (tenant_id, webhook_id) REFERENCES outgoing_webhooks (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX outgoing_webhook_deliveries_finished_idx ON outgoing_webhook_deliveries (finished_at)
  WHERE status <> 'pending';
CREATE INDEX outgoing_webhook_deliveries_due_idx ON outgoing_webhook_deliveries (next_attempt_at)
  WHERE status = 'pending';
CALL enable_tenant_isolation('outgoing_webhook_deliveries');

-- Every attempt, as the deliveries log shows it (test sends included, with no delivery).
CREATE TABLE outgoing_webhook_attempts (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  webhook_id uuid NOT NULL,
  delivery_id uuid,
  event_id uuid NOT NULL,
  event_type text NOT NULL,
  attempt integer NOT NULL,
  is_test boolean NOT NULL DEFAULT false,
  succeeded boolean NOT NULL,
  status_code integer,
  error text,
  duration_ms integer NOT NULL,
  request_headers jsonb NOT NULL,
  request_body text NOT NULL,
  response_body text,
  next_attempt_at timestamptz,
  created_at timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, webhook_id) REFERENCES outgoing_webhooks (tenant_id, id) ON DELETE CASCADE,
  FOREIGN KEY (tenant_id, delivery_id) REFERENCES outgoing_webhook_deliveries (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX outgoing_webhook_attempts_log_idx
  ON outgoing_webhook_attempts (tenant_id, webhook_id, created_at DESC, id DESC);
-- The retention sweep, across tenants, oldest first.
CREATE INDEX outgoing_webhook_attempts_age_idx ON outgoing_webhook_attempts (created_at);
CREATE INDEX outgoing_webhook_attempts_delivery_idx ON outgoing_webhook_attempts (tenant_id, delivery_id)
  WHERE delivery_id IS NOT NULL;
CALL enable_tenant_isolation('outgoing_webhook_attempts');

-- New deliveries wake the workers (one notification per statement that fans out, sent at commit).
CREATE FUNCTION outgoing_webhook_deliveries_written() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM fanned_out) THEN
    PERFORM pg_notify('omnistream_outgoing_webhooks', '');
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER outgoing_webhook_deliveries_written AFTER INSERT ON outgoing_webhook_deliveries
  REFERENCING NEW TABLE AS fanned_out
  FOR EACH STATEMENT EXECUTE FUNCTION outgoing_webhook_deliveries_written();

-- The workers claim due deliveries across tenants in one statement: each claimed one counts an
-- attempt and is due again when its lease ends, so a worker that died mid-post is retried.
-- Deliveries of endpoints disabled meanwhile are not claimed.
CREATE FUNCTION claim_outgoing_webhook_deliveries(p_now timestamptz, p_limit integer, p_lease interval)
  RETURNS TABLE (tenant_id uuid, id uuid, webhook_id uuid, event_id uuid, event_type text, body text,
                 attempts integer, url text, secret_sealed text, headers_sealed text)
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
  AS $$
    WITH due AS (
      SELECT d.tenant_id, d.id FROM outgoing_webhook_deliveries d
        JOIN outgoing_webhooks w ON w.tenant_id = d.tenant_id AND w.id = d.webhook_id AND w.enabled
       WHERE d.status = 'pending' AND d.next_attempt_at <= p_now
       ORDER BY d.next_attempt_at
       LIMIT p_limit
         FOR UPDATE OF d SKIP LOCKED
    ), claimed AS (
      UPDATE outgoing_webhook_deliveries d
         SET attempts = d.attempts + 1, next_attempt_at = p_now + p_lease
        FROM due
       WHERE d.tenant_id = due.tenant_id AND d.id = due.id
      RETURNING d.tenant_id, d.id, d.webhook_id, d.event_id, d.event_type, d.body, d.attempts
    )
    SELECT c.tenant_id, c.id, c.webhook_id, c.event_id, c.event_type, c.body, c.attempts,
           w.url, w.secret_sealed, w.headers_sealed
      FROM claimed c JOIN outgoing_webhooks w ON w.tenant_id = c.tenant_id AND w.id = c.webhook_id
  $$;

-- The log is kept for a while, not for ever: attempts older than p_before go, and so do
-- deliveries finished before it (their attempts with them), at most p_limit of each per call.
CREATE FUNCTION purge_outgoing_webhook_log(p_before timestamptz, p_limit integer) RETURNS integer
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
  AS $$
    WITH old_attempts AS (
      DELETE FROM outgoing_webhook_attempts a
       WHERE (a.tenant_id, a.id) IN (SELECT tenant_id, id FROM outgoing_webhook_attempts
                                      WHERE created_at < p_before ORDER BY created_at LIMIT p_limit)
      RETURNING 1
    ), old_deliveries AS (
      DELETE FROM outgoing_webhook_deliveries d
       WHERE (d.tenant_id, d.id) IN (SELECT tenant_id, id FROM outgoing_webhook_deliveries
                                      WHERE status <> 'pending' AND finished_at < p_before
                                      ORDER BY finished_at LIMIT p_limit)
      RETURNING 1
    )
    SELECT ((SELECT count(*) FROM old_attempts) + (SELECT count(*) FROM old_deliveries))::integer
  $$;

CALL allow_definer_lookups('outgoing_webhooks');
CALL allow_definer_lookups('outgoing_webhook_deliveries');
CALL allow_definer_lookups('outgoing_webhook_attempts');
REVOKE EXECUTE ON FUNCTION claim_outgoing_webhook_deliveries(timestamptz, integer, interval),
                           purge_outgoing_webhook_log(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION claim_outgoing_webhook_deliveries(timestamptz, integer, interval),
                          purge_outgoing_webhook_log(timestamptz, integer) TO omnistream_app;
