-- name: route_accounts
-- The accounts a webhook names, across tenants (the function is the only way to see them).
SELECT tenant_id, account_id, external_id, status, business_account_id, account_secret_encrypted,
       app_secret_encrypted
  FROM route_channel_accounts(:channel, :external_ids);

-- name: verify_token_known$
SELECT verify_token_known(:channels, :digest);

-- name: active_account_ids
SELECT id FROM integration_accounts WHERE tenant_id = :tenant_id AND id = ANY(:ids::uuid[]) AND status = 'active';

-- name: sending_account^
-- The account a message of the conversation goes out through: the conversation's own, else the
-- channel's default (a conversation started before any account was connected).
SELECT id, channel, external_id, display_name, business_account_id, access_token_encrypted, settings, status
  FROM integration_accounts
 WHERE tenant_id = :tenant_id AND channel = :channel
   AND (id = :account_id::uuid OR (:account_id::uuid IS NULL AND is_default))
 ORDER BY id = :account_id::uuid DESC NULLS LAST
 LIMIT 1;

-- name: account_by_business_account^
-- The WhatsApp account whose token manages a business account's templates: its default number first.
SELECT id, channel, external_id, display_name, business_account_id, access_token_encrypted, settings, status
  FROM integration_accounts
 WHERE tenant_id = :tenant_id AND channel = 'whatsapp' AND status = 'active'
   AND business_account_id = :business_account_id::text                                              --? business_account_id
 ORDER BY is_default DESC, created_at
 LIMIT 1;

-- ---------------------------------------------------------------- channel integrations

-- name: list_integrations
SELECT channel, enabled, app_id, app_secret_encrypted, verify_token_encrypted, settings, created_at, updated_at
  FROM channel_integrations
 WHERE tenant_id = :tenant_id
 ORDER BY channel;

-- name: get_integration^
SELECT channel, enabled, app_id, app_secret_encrypted, verify_token_encrypted, settings, created_at, updated_at
  FROM channel_integrations
 WHERE tenant_id = :tenant_id AND channel = :channel;

-- name: lock_integration^
SELECT channel FROM channel_integrations WHERE tenant_id = :tenant_id AND channel = :channel FOR UPDATE;

-- name: upsert_integration^
INSERT INTO channel_integrations AS i (tenant_id, channel, enabled, app_id, app_secret_encrypted,
                                       verify_token_encrypted, verify_token_digest, settings, updated_by)
VALUES (:tenant_id, :channel, :enabled, :app_id, :app_secret_encrypted, :verify_token_encrypted,
        :verify_token_digest, :settings, :updated_by)
    ON CONFLICT (tenant_id, channel) DO UPDATE
   SET enabled = EXCLUDED.enabled, app_id = EXCLUDED.app_id, app_secret_encrypted = EXCLUDED.app_secret_encrypted,
       verify_token_encrypted = EXCLUDED.verify_token_encrypted, verify_token_digest = EXCLUDED.verify_token_digest,
       settings = EXCLUDED.settings, updated_by = EXCLUDED.updated_by, updated_at = clock_timestamp()
RETURNING channel, enabled, app_id, app_secret_encrypted, verify_token_encrypted, settings, created_at, updated_at;

-- name: delete_integration^
DELETE FROM channel_integrations WHERE tenant_id = :tenant_id AND channel = :channel
RETURNING channel;

-- ---------------------------------------------------------------- integration accounts

-- name: get_account^
SELECT id, channel, name, external_id, display_name, business_account_id, access_token_encrypted,
       secret_encrypted, is_default, status, settings, created_at, updated_at
  FROM integration_accounts
 WHERE tenant_id = :tenant_id AND id = :id;

-- name: lock_account^
SELECT id, channel, name, external_id, display_name, business_account_id, access_token_encrypted,
       secret_encrypted, is_default, status, settings, created_at, updated_at
  FROM integration_accounts
 WHERE tenant_id = :tenant_id AND id = :id
   FOR UPDATE;

-- name: account_by_external_id^
-- This organisation's account for a provider id (another organisation's is not visible).
SELECT id, channel, name, external_id, display_name, business_account_id, access_token_encrypted,
       secret_encrypted, is_default, status, settings, created_at, updated_at
  FROM integration_accounts
 WHERE tenant_id = :tenant_id AND channel = :channel AND external_id = :external_id;

-- name: list_accounts
SELECT id, channel, name, external_id, display_name, business_account_id, access_token_encrypted,
       secret_encrypted, is_default, status, settings, created_at, updated_at
  FROM integration_accounts
 WHERE tenant_id = :tenant_id
   AND channel = :channel                                                                            --? channel
   AND status = :status                                                                              --? status
   AND (created_at, id) < (:cursor_at, :cursor_id::uuid)                                             --? after_desc
   AND (created_at, id) > (:cursor_at, :cursor_id::uuid)                                             --? after_asc
 ORDER BY created_at DESC, id DESC                                                                   --? desc
 ORDER BY created_at, id                                                                             --? asc
 LIMIT :limit
OFFSET :offset                                                                                       --? offset
;

-- name: count_accounts$
SELECT count(*) FROM integration_accounts
 WHERE tenant_id = :tenant_id
   AND channel = :channel                                                                            --? channel
   AND status = :status                                                                              --? status
;

-- name: lock_channel_defaults!
-- Serialises the changes that decide a channel's default account (the first one, a promotion).
SELECT pg_advisory_xact_lock(hashtextextended(:tenant_id::uuid::text || '/' || :channel::text, 0));

-- name: insert_account^
-- The channel's first account becomes its default.
INSERT INTO integration_accounts (tenant_id, channel, name, external_id, display_name, business_account_id,
                                  access_token_encrypted, secret_encrypted, settings, is_default)
VALUES (:tenant_id, :channel, :name, :external_id, :display_name, :business_account_id,
        :access_token_encrypted, :secret_encrypted, :settings,
        NOT EXISTS (SELECT 1 FROM integration_accounts WHERE tenant_id = :tenant_id AND channel = :channel AND is_default))
RETURNING id;

-- name: update_account!
UPDATE integration_accounts
   SET name = :name, display_name = :display_name, business_account_id = :business_account_id,
       access_token_encrypted = :access_token_encrypted, secret_encrypted = :secret_encrypted,
       settings = :settings, status = :status, updated_at = clock_timestamp()
 WHERE tenant_id = :tenant_id AND id = :id;

-- name: clear_default!
UPDATE integration_accounts SET is_default = false, updated_at = clock_timestamp()
 WHERE tenant_id = :tenant_id AND channel = :channel AND is_default;

-- name: make_default!
UPDATE integration_accounts SET is_default = true, updated_at = clock_timestamp()
 WHERE tenant_id = :tenant_id AND id = :id;

-- name: promote_oldest^
-- After the default account went: the oldest remaining one (an active one first) takes its place.
UPDATE integration_accounts SET is_default = true, updated_at = clock_timestamp()
 WHERE tenant_id = :tenant_id
   AND id = (SELECT id FROM integration_accounts
              WHERE tenant_id = :tenant_id AND channel = :channel
              ORDER BY status = 'active' DESC, created_at, id
              LIMIT 1)
   AND NOT EXISTS (SELECT 1 FROM integration_accounts WHERE tenant_id = :tenant_id AND channel = :channel AND is_default)
RETURNING id;

-- name: delete_account^
DELETE FROM integration_accounts WHERE tenant_id = :tenant_id AND id = :id
RETURNING id, channel, external_id, is_default;

-- name: set_account_status^
UPDATE integration_accounts SET status = :status, updated_at = clock_timestamp()
 WHERE tenant_id = :tenant_id AND id = :id
RETURNING id;

-- name: tenants_with_secrets
SELECT tenant_id FROM tenants_with_channel_secrets() AS tenant_id;

-- name: sealed_integrations
SELECT channel, app_secret_encrypted, verify_token_encrypted
  FROM channel_integrations WHERE tenant_id = :tenant_id FOR UPDATE;

-- name: reseal_integration!
UPDATE channel_integrations
   SET app_secret_encrypted = :app_secret_encrypted, verify_token_encrypted = :verify_token_encrypted
 WHERE tenant_id = :tenant_id AND channel = :channel;

-- name: sealed_accounts
SELECT id, access_token_encrypted, secret_encrypted, settings
  FROM integration_accounts WHERE tenant_id = :tenant_id FOR UPDATE;

-- name: reseal_account!
UPDATE integration_accounts
   SET access_token_encrypted = :access_token_encrypted, secret_encrypted = :secret_encrypted, settings = :settings
 WHERE tenant_id = :tenant_id AND id = :id;

-- name: record_phone_quality
-- Meta's news of a number's quality rating and messaging limit, kept on the number's account
-- (found among the business account's numbers by its digits).
UPDATE integration_accounts
   SET settings = settings || jsonb_build_object('quality', :quality::jsonb), updated_at = clock_timestamp()
 WHERE tenant_id = :tenant_id AND channel = 'whatsapp' AND business_account_id = :business_account_id
   AND regexp_replace(display_name, '\D', '', 'g') = :digits
RETURNING id;
