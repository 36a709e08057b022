-- name: list_rules
SELECT channel, enabled, inactivity_minutes, statuses, updated_at, updated_by
  FROM chat_expiration_rules
 WHERE tenant_id = :tenant_id
 ORDER BY channel;

-- name: list_enabled_rules
SELECT channel, enabled, inactivity_minutes, statuses, updated_at, updated_by
  FROM chat_expiration_rules
 WHERE tenant_id = :tenant_id AND enabled
 ORDER BY channel;

-- name: upsert_rule^
INSERT INTO chat_expiration_rules (tenant_id, channel, enabled, inactivity_minutes, statuses, updated_at, updated_by)
VALUES (:tenant_id, :channel, :enabled, :inactivity_minutes, :statuses, now(), :updated_by)
    ON CONFLICT (tenant_id, channel)
    DO UPDATE SET enabled = EXCLUDED.enabled, inactivity_minutes = EXCLUDED.inactivity_minutes,
                  statuses = EXCLUDED.statuses, updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by
RETURNING channel, enabled, inactivity_minutes, statuses, updated_at, updated_by;

-- name: tenants_with_enabled_rules
SELECT tenants_with_expiration_rules() AS tenant_id;
