-- name: route_accounts
-- The accounts a webhook names, across tenants (the function is the only way to see them).
SELECT tenant_id, account_id, external_id, status, business_account_id, account_secret_encrypted,
       app_secret_encrypted
  FROM route_channel_accounts(:channel, :external_ids);

-- name: verify_token_known$
SELECT verify_token_known(:channels, :digest);

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
