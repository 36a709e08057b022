-- Campaigns: one message sent to many contacts through one integration account, paced at the
-- account's rate, and the contacts' opt-out from such messages.

-- A contact who asked for no more campaign messages: campaigns skip (and count) them; replies in
-- conversations the contact opens are not affected.
ALTER TABLE contacts
  ADD COLUMN opted_out boolean NOT NULL DEFAULT false,
  ADD COLUMN opted_out_at timestamptz;

CREATE TABLE campaigns (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  channel text NOT NULL CHECK (channel IN ('whatsapp', 'messenger', 'instagram', 'email')),
  account_id uuid NOT NULL,
  message_type text NOT NULL CHECK (message_type IN ('text', 'template')),
  text text,
  -- WhatsApp: {name, language, components}, the components' strings holding {{variables}}.
  template jsonb,
  status text NOT NULL DEFAULT 'draft'
    CHECK (status IN ('draft', 'scheduled', 'sending', 'completed', 'cancelled')),
  send_at timestamptz,
  started_at timestamptz,
  completed_at timestamptz,
  cancelled_at timestamptz,
  created_by uuid,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (tenant_id, id),
  CHECK ((message_type = 'text') = (text IS NOT NULL) AND (message_type = 'template') = (template IS NOT NULL)),
  FOREIGN KEY (tenant_id, account_id) REFERENCES integration_accounts (tenant_id, id) ON DELETE CASCADE,
  FOREIGN KEY (tenant_id, created_by) REFERENCES users (tenant_id, id) ON DELETE SET NULL (created_by)
);
CREATE INDEX campaigns_created_idx ON campaigns (tenant_id, created_at DESC, id DESC);
CREATE INDEX campaigns_account_idx ON campaigns (tenant_id, account_id);
-- The worker's look for what is due, across tenants.
CREATE INDEX campaigns_due_idx ON campaigns (send_at) WHERE status IN ('scheduled', 'sending');
CALL enable_tenant_isolation('campaigns');

CREATE TABLE campaign_recipients (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  campaign_id uuid NOT NULL,
  -- The order recipients were added in, which is the order they are sent in.
  position bigint GENERATED ALWAYS AS IDENTITY,
  contact_id uuid NOT NULL,
  -- A CSV row's columns, filling the message's {{variables}} for this recipient.
  variables jsonb NOT NULL DEFAULT '{}',
  -- pending: not yet sent; queued: its message exists (message_id), the message's status says the
  -- rest; skipped: never sent (skip_reason); cancelled: the campaign stopped before it went.
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'queued', 'skipped', 'cancelled')),
  skip_reason text,
  conversation_id uuid,
  message_id uuid,
  queued_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, campaign_id, contact_id),
  FOREIGN KEY (tenant_id, campaign_id) REFERENCES campaigns (tenant_id, id) ON DELETE CASCADE,
  FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id) ON DELETE CASCADE,
  FOREIGN KEY (tenant_id, message_id) REFERENCES messages (tenant_id, id) ON DELETE SET NULL (message_id)
);
-- The worker claims the next pending recipients in order, skipping those another worker holds.
CREATE INDEX campaign_recipients_pending_idx ON campaign_recipients (tenant_id, campaign_id, position)
  WHERE status = 'pending';
CREATE INDEX campaign_recipients_list_idx ON campaign_recipients (tenant_id, campaign_id, created_at, id);
CREATE INDEX campaign_recipients_contact_idx ON campaign_recipients (tenant_id, contact_id);
CREATE INDEX campaign_recipients_message_idx ON campaign_recipients (tenant_id, message_id)
  WHERE message_id IS NOT NULL;
CALL enable_tenant_isolation('campaign_recipients');

-- The send budget of each account shared by all its campaigns (a token bucket): sends are spent
-- up to paced_until, which moves 1/rate seconds per message. Locked by the batch that spends it,
-- so workers running side by side keep to the account's rate together.
CREATE TABLE campaign_pacing (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  account_id uuid NOT NULL,
  paced_until timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, account_id),
  FOREIGN KEY (tenant_id, account_id) REFERENCES integration_accounts (tenant_id, id) ON DELETE CASCADE
);
CALL enable_tenant_isolation('campaign_pacing');

-- Campaigns to work on now, of every tenant (the worker has no tenant until it picks one).
CREATE FUNCTION campaigns_due(p_now timestamptz, p_limit integer)
  RETURNS TABLE (tenant_id uuid, campaign_id uuid)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $$
    SELECT tenant_id, id FROM campaigns
     WHERE status IN ('scheduled', 'sending') AND send_at <= p_now
     ORDER BY send_at LIMIT p_limit
  $$;
GRANT EXECUTE ON FUNCTION campaigns_due(timestamptz, integer) TO omnistream_app;
