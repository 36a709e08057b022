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

-- name: list_rules
-- The rules page: highest priority first, as they run (ties: oldest first).
SELECT id, name, description, is_active, trigger_type, conditions, actions, alert_settings, schedule_settings,
       priority, rollout_percentage, stop_on_match, cooldown_secs, snoozed_until, created_by, updated_by,
       created_at, updated_at
  FROM automation_rules
 WHERE tenant_id = :tenant_id
   AND is_active = :is_active::boolean                                                              --? is_active
   AND trigger_type = :trigger_type::text                                                           --? trigger_type
 ORDER BY priority DESC, created_at, id;

-- name: list_snoozed_rules
-- Rules snoozed now, the one waking first first.
SELECT id, name, description, is_active, trigger_type, conditions, actions, alert_settings, schedule_settings,
       priority, rollout_percentage, stop_on_match, cooldown_secs, snoozed_until, created_by, updated_by,
       created_at, updated_at
  FROM automation_rules
 WHERE tenant_id = :tenant_id AND snoozed_until > clock_timestamp()
   AND is_active = :is_active::boolean                                                              --? is_active
   AND trigger_type = :trigger_type::text                                                           --? trigger_type
 ORDER BY snoozed_until, id
 LIMIT :limit
OFFSET :offset                                                                                      --? offset
;

-- name: get_rule^
SELECT id, name, description, is_active, trigger_type, conditions, actions, alert_settings, schedule_settings,
       priority, rollout_percentage, stop_on_match, cooldown_secs, snoozed_until, created_by, updated_by,
       created_at, updated_at
  FROM automation_rules
 WHERE tenant_id = :tenant_id AND id = :id;

-- name: lock_rule^
-- The rule as stored, held until the caller's change commits (so two edits do not interleave).
SELECT id, name, description, is_active, trigger_type, conditions, actions, alert_settings, schedule_settings,
       priority, rollout_percentage, stop_on_match, cooldown_secs, snoozed_until, created_by, updated_by,
       created_at, updated_at
  FROM automation_rules
 WHERE tenant_id = :tenant_id AND id = :id
   FOR UPDATE;

-- name: insert_rule$
INSERT INTO automation_rules (tenant_id, name, description, is_active, trigger_type, conditions, actions,
                              alert_settings, schedule_settings, priority, rollout_percentage, stop_on_match,
                              cooldown_secs, created_by, updated_by)
VALUES (:tenant_id, :name, :description, :is_active, :trigger_type, :conditions, :actions, :alert_settings,
        :schedule_settings, :priority, :rollout_percentage, :stop_on_match, :cooldown_secs, :actor_id, :actor_id)
RETURNING id;

-- name: save_rule!
-- A rule's every field as the service worked it out (the trigger raises the rules version).
UPDATE automation_rules
   SET name = :name, description = :description, is_active = :is_active, trigger_type = :trigger_type,
       conditions = :conditions, actions = :actions, alert_settings = :alert_settings,
       schedule_settings = :schedule_settings, priority = :priority, rollout_percentage = :rollout_percentage,
       stop_on_match = :stop_on_match, cooldown_secs = :cooldown_secs, snoozed_until = :snoozed_until,
       updated_by = :actor_id, updated_at = clock_timestamp()
 WHERE tenant_id = :tenant_id AND id = :id;

-- name: delete_rule$
DELETE FROM automation_rules WHERE tenant_id = :tenant_id AND id = :id RETURNING id;

-- name: snooze_rules
-- Several rules snoozed at once; the ids of those that exist.
UPDATE automation_rules
   SET snoozed_until = :snoozed_until, updated_by = :actor_id, updated_at = clock_timestamp()
 WHERE tenant_id = :tenant_id AND id = ANY(:ids::uuid[])
RETURNING id;

-- name: upsert_control^
INSERT INTO automation_control AS c (tenant_id, is_paused, pause_reason, paused_until, updated_by, rules_version)
VALUES (:tenant_id, :is_paused, :pause_reason, :paused_until, :actor_id, 2)
    ON CONFLICT (tenant_id) DO UPDATE
   SET is_paused = EXCLUDED.is_paused, pause_reason = EXCLUDED.pause_reason, paused_until = EXCLUDED.paused_until,
       updated_by = EXCLUDED.updated_by, updated_at = clock_timestamp(), rules_version = c.rules_version + 1
RETURNING true AS singleton, is_paused, pause_reason, paused_until, updated_by, updated_at;

-- name: stats_overview^
-- The rules now, and the events and runs of the window.
SELECT (SELECT count(*) FROM automation_rules WHERE tenant_id = :tenant_id) AS total_rules,
       (SELECT count(*) FROM automation_rules WHERE tenant_id = :tenant_id AND is_active) AS active_rules,
       (SELECT count(*) FROM automation_rules
         WHERE tenant_id = :tenant_id AND snoozed_until > clock_timestamp()) AS snoozed_rules,
       (SELECT count(*) FROM automation_events
         WHERE tenant_id = :tenant_id AND created_at >= :since) AS total_events,
       (SELECT count(*) FROM automation_events
         WHERE tenant_id = :tenant_id AND created_at >= :since AND status = 'failed') AS failed_events,
       r.total_runs, r.matched_runs, r.executed_runs
  FROM (SELECT count(*) AS total_runs, count(*) FILTER (WHERE matched) AS matched_runs,
               count(*) FILTER (WHERE executed) AS executed_runs
          FROM automation_runs
         WHERE tenant_id = :tenant_id AND created_at >= :since) r;

-- name: runs_timeseries
-- Runs counted per bucket of bucket_days days (UTC), the last bucket ending today; every bucket of
-- the window is listed, empty ones as zeros.
WITH buckets AS (
  SELECT b::date AS bucket
    FROM generate_series((:today::date - (:window_days::int - 1)), :today::date, make_interval(days => :bucket_days)) b
)
SELECT b.bucket,
       count(r.id) AS total_runs,
       count(r.id) FILTER (WHERE r.matched) AS matched_runs,
       count(r.id) FILTER (WHERE r.executed) AS executed_runs
  FROM buckets b
  LEFT JOIN automation_runs r
    ON r.tenant_id = :tenant_id
   AND r.rule_id = :rule_id::uuid                                                                   --? rule_id
   AND r.created_at >= b.bucket::timestamp AT TIME ZONE 'UTC'
   AND r.created_at < (b.bucket + :bucket_days::int)::timestamp AT TIME ZONE 'UTC'
   AND r.created_at < (:today::date + 1)::timestamp AT TIME ZONE 'UTC'
 GROUP BY b.bucket
 ORDER BY b.bucket;

-- name: rule_run_counts
-- Each rule's runs of the window (rules without runs too), with its failed executions.
SELECT a.id AS rule_id, a.name AS rule_name, a.alert_settings,
       count(r.id) AS total_runs,
       count(r.id) FILTER (WHERE r.matched) AS matched_runs,
       count(r.id) FILTER (WHERE r.executed) AS executed_runs,
       count(r.id) FILTER (WHERE r.result ->> 'outcome' = 'failed') AS failed_runs
  FROM automation_rules a
  LEFT JOIN automation_runs r ON r.tenant_id = a.tenant_id AND r.rule_id = a.id AND r.created_at >= :since
 WHERE a.tenant_id = :tenant_id
   AND a.id = :rule_id::uuid                                                                        --? rule_id
 GROUP BY a.id, a.name, a.alert_settings, a.priority, a.created_at
 ORDER BY a.priority DESC, a.created_at, a.id;
