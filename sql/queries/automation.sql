-- name: insert_events*!
-- The outbox rows of one change, written in that change's transaction.
INSERT INTO automation_events (id, tenant_id, event_type, conversation_id, contact_id, payload, payload_hash, source)
VALUES (:id, :tenant_id, :event_type, :conversation_id, :contact_id, :payload, payload_fingerprint(:payload), :source);

-- name: rules_for_matching
-- Every rule of the tenant, in any state: the matcher leaves out the inactive ones, and decides
-- snooze, pause, schedule and rollout per event.
SELECT id, name, description, is_active, trigger_type, conditions, actions, alert_settings, schedule_settings,
       priority, rollout_percentage, stop_on_match, cooldown_secs, snoozed_until, created_by, updated_by,
       created_at, updated_at
  FROM automation_rules
 WHERE tenant_id = :tenant_id;

-- name: get_control^
-- The tenant's switch and rules version; no row: never paused, version 1.
SELECT true AS singleton, is_paused, pause_reason, paused_until, updated_by, updated_at, rules_version
  FROM automation_control
 WHERE tenant_id = :tenant_id;
