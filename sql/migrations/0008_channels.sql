-- Channels: the tenant's channel integrations (app credentials) and integration accounts (phone
-- numbers, pages, Instagram accounts, mailboxes), WhatsApp templates, media files, and what the
-- delivery worker and the status webhooks need on messages.
--
-- Secrets and tokens are stored encrypted by the application (Fernet, keys from the environment):
-- the columns ending in _encrypted never hold a plain value.

CREATE TABLE channel_integrations (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  channel text NOT NULL CHECK (channel IN ('whatsapp', 'messenger', 'instagram', 'email')),
  enabled boolean NOT NULL DEFAULT true,
  app_id text,
  app_secret_encrypted text,
  verify_token_encrypted text,
  -- SHA-256 of the verify token: Meta's verification GET names only the token, so it is looked up by digest.
  verify_token_digest text,
  settings jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  updated_by uuid,
  PRIMARY KEY (tenant_id, channel),
  FOREIGN KEY (tenant_id, updated_by) REFERENCES users (tenant_id, id)
);
CREATE INDEX channel_integrations_verify_token_idx ON channel_integrations (verify_token_digest)
  WHERE verify_token_digest IS NOT NULL;
CALL enable_tenant_isolation('channel_integrations');

CREATE TABLE integration_accounts (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  channel text NOT NULL CHECK (channel IN ('whatsapp', 'messenger', 'instagram', 'email')),
  name text NOT NULL DEFAULT '',
  -- What the provider calls the account, and what its webhooks name: the WhatsApp phone number
  -- id, the Facebook page id, the Instagram account id, or the mailbox address (lowercase).
  external_id text NOT NULL,
  -- The phone number as shown, the page's or account's name, the mailbox's display name.
  display_name text NOT NULL DEFAULT '',
  -- WhatsApp: the business account (WABA) the phone number belongs to; templates live there.
  business_account_id text,
  access_token_encrypted text,
  -- Email: the HMAC secret of the inbound webhook; WhatsApp: the two-step verification PIN.
  secret_encrypted text,
  is_default boolean NOT NULL DEFAULT false,
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disconnected')),
  -- Per channel: SMTP server of a mailbox, messaging rate of a WhatsApp number, ...
  settings jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (tenant_id, id)
);
-- A provider account is connected to one tenant at a time: webhooks are routed by it. (Distributed
-- by tenant, this key moves to a reference table of routes.)
CREATE UNIQUE INDEX integration_accounts_route_key ON integration_accounts (channel, external_id);
CREATE INDEX integration_accounts_business_idx ON integration_accounts (channel, business_account_id)
  WHERE business_account_id IS NOT NULL;
CREATE UNIQUE INDEX integration_accounts_default_key ON integration_accounts (tenant_id, channel) WHERE is_default;
CREATE INDEX integration_accounts_created_idx ON integration_accounts (tenant_id, created_at, id);
CALL enable_tenant_isolation('integration_accounts');

-- Webhooks arrive before anyone knows the tenant: the accounts they name (by their own id, or by
-- their WhatsApp business account for news about it), with their tenant and the secrets that
-- verify them, across tenants (so only through this function).
CREATE FUNCTION route_channel_accounts(p_channel text, p_external_ids text[])
  RETURNS TABLE (tenant_id uuid, account_id uuid, external_id text, status text, business_account_id text,
                 account_secret_encrypted text, app_secret_encrypted text)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $$
    SELECT a.tenant_id, a.id, a.external_id, a.status, a.business_account_id, a.secret_encrypted,
           i.app_secret_encrypted
      FROM integration_accounts a
      LEFT JOIN channel_integrations i ON i.tenant_id = a.tenant_id AND i.channel = a.channel AND i.enabled
     WHERE a.channel = p_channel
       AND (a.external_id = ANY(p_external_ids) OR a.business_account_id = ANY(p_external_ids))
  $$;

-- Meta's verification GET: is this verify token one a tenant configured for the channel?
CREATE FUNCTION verify_token_known(p_channels text[], p_digest text) RETURNS boolean
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $$
    SELECT EXISTS (SELECT 1 FROM channel_integrations
                    WHERE verify_token_digest = p_digest AND channel = ANY(p_channels) AND enabled)
  $$;
GRANT EXECUTE ON FUNCTION route_channel_accounts(text, text[]), verify_token_known(text[], text) TO omnistream_app;

CREATE TABLE wa_templates (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  business_account_id text NOT NULL,
  -- Meta's id of the template, once Meta knows it.
  provider_template_id text,
  name text NOT NULL,
  language text NOT NULL,
  category text NOT NULL CHECK (category IN ('MARKETING', 'UTILITY', 'AUTHENTICATION')),
  status text NOT NULL DEFAULT 'PENDING'
    CHECK (status IN ('PENDING', 'APPROVED', 'REJECTED', 'PAUSED', 'DISABLED', 'IN_APPEAL', 'PENDING_DELETION',
                      'DELETED', 'LIMIT_EXCEEDED', 'ARCHIVED')),
  rejected_reason text,
  components jsonb NOT NULL DEFAULT '[]',
  header_media_url text,
  quality_score text,
  created_by uuid,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  synced_at timestamptz,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, created_by) REFERENCES users (tenant_id, id)
);
CREATE UNIQUE INDEX wa_templates_name_key ON wa_templates (tenant_id, business_account_id, name, language);
CREATE INDEX wa_templates_created_idx ON wa_templates (tenant_id, created_at DESC, id DESC);
CALL enable_tenant_isolation('wa_templates');

CREATE TABLE media_files (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  storage text NOT NULL CHECK (storage IN ('local', 's3')),
  -- Where the bytes are: a path under the media folder, or the object key in the bucket.
  storage_key text NOT NULL,
  bucket text,
  filename text NOT NULL DEFAULT '',
  mime_type text NOT NULL,
  size_bytes bigint NOT NULL CHECK (size_bytes >= 0),
  sha256 text NOT NULL,
  source text NOT NULL DEFAULT 'upload' CHECK (source IN ('upload', 'inbound')),
  uploaded_by uuid,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, uploaded_by) REFERENCES users (tenant_id, id)
);
CALL enable_tenant_isolation('media_files');

-- Delivery: a worker takes a lease on the message before calling the provider, so two workers
-- (or a retried job) never send it twice; the attempts it took.
ALTER TABLE messages
  ADD COLUMN media_id uuid,
  ADD COLUMN send_attempts integer NOT NULL DEFAULT 0,
  ADD COLUMN sending_until timestamptz,
  ADD FOREIGN KEY (tenant_id, media_id) REFERENCES media_files (tenant_id, id) ON DELETE SET NULL (media_id);

-- A status webhook can arrive before the send's answer named the provider's id: it waits here
-- and is applied when the send is recorded.
CREATE TABLE early_message_statuses (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  channel text NOT NULL,
  provider_message_id text NOT NULL,
  status text NOT NULL CHECK (status IN ('sent', 'delivered', 'read', 'failed')),
  occurred_at timestamptz NOT NULL,
  error_code text,
  error_message text,
  received_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (tenant_id, channel, provider_message_id, status)
);
CREATE INDEX early_message_statuses_received_idx ON early_message_statuses (received_at);
CALL enable_tenant_isolation('early_message_statuses');

-- Receipts for messages no send of ours ever named (sent from another tool on the same number,
-- or a send that never answered) are let go after a while, across tenants.
CREATE FUNCTION purge_early_message_statuses(p_older_than interval) RETURNS bigint
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
  AS $$
    WITH gone AS (DELETE FROM early_message_statuses WHERE received_at < now() - p_older_than RETURNING 1)
    SELECT count(*) FROM gone
  $$;
GRANT EXECUTE ON FUNCTION purge_early_message_statuses(interval) TO omnistream_app;

-- `omnistream rotate-secrets` seals every stored secret again with the first key, tenant by
-- tenant: the tenants that have any.
CREATE FUNCTION tenants_with_channel_secrets() RETURNS SETOF uuid
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $$
    SELECT tenant_id FROM channel_integrations UNION SELECT tenant_id FROM integration_accounts
  $$;
GRANT EXECUTE ON FUNCTION tenants_with_channel_secrets() TO omnistream_app;
