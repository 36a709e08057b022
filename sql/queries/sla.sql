-- SLA policies, the clocks they run on conversations (sla_conversations, sla_targets) and the
-- breaches the monitor records. Times come in as parameters: tests and retries decide the same.

-- name: list_policies
SELECT id, name, description, enabled, position, business_hours, first_response_minutes, next_response_minutes,
       resolution_minutes, channels, division_ids, priorities, created_at, updated_at
  FROM sla_policies
 WHERE tenant_id = :tenant_id
   AND (:enabled::boolean IS NULL OR enabled = :enabled::boolean)
 ORDER BY position, created_at, id;

-- name: get_policy^
SELECT id, name, description, enabled, position, business_hours, first_response_minutes, next_response_minutes,
       resolution_minutes, channels, division_ids, priorities, created_at, updated_at
  FROM sla_policies WHERE tenant_id = :tenant_id AND id = :id;

-- name: lock_policy^
-- Taken before a policy changes, so concurrent edits (and a delete) queue.
SELECT id FROM sla_policies WHERE tenant_id = :tenant_id AND id = :id FOR UPDATE;

-- name: policy_count$
SELECT count(*) FROM sla_policies WHERE tenant_id = :tenant_id;

-- name: next_position$
SELECT COALESCE(max(position) + 1, 0) FROM sla_policies WHERE tenant_id = :tenant_id;

-- name: insert_policy<!
INSERT INTO sla_policies (tenant_id, name, description, enabled, position, business_hours, first_response_minutes,
                          next_response_minutes, resolution_minutes, channels, division_ids, priorities, created_by,
                          updated_by)
VALUES (:tenant_id, :name, :description, :enabled, :position, :business_hours, :first_response_minutes,
        :next_response_minutes, :resolution_minutes, :channels, :division_ids, :priorities, :user_id, :user_id)
RETURNING id;

-- name: update_policy!
UPDATE sla_policies
   SET name = :name, description = :description, enabled = :enabled, position = :position,
       business_hours = :business_hours, first_response_minutes = :first_response_minutes,
       next_response_minutes = :next_response_minutes, resolution_minutes = :resolution_minutes,
       channels = :channels, division_ids = :division_ids, priorities = :priorities, updated_by = :user_id,
       updated_at = clock_timestamp()
 WHERE tenant_id = :tenant_id AND id = :id;

-- name: delete_policy^
DELETE FROM sla_policies WHERE tenant_id = :tenant_id AND id = :id RETURNING id, name;

-- ---------------------------------------------------------------- the clocks

-- name: lock_state^
SELECT conversation_id, policy_id, opened_at, resolution_since, last_agent_reply_at, awaiting_reply_since, status,
       observed_at
  FROM sla_conversations WHERE tenant_id = :tenant_id AND conversation_id = :conversation_id FOR UPDATE;

-- name: insert_state!
INSERT INTO sla_conversations (tenant_id, conversation_id, opened_at, resolution_since, status, observed_at)
VALUES (:tenant_id, :conversation_id, :at, :at, :status, :at)
    ON CONFLICT (tenant_id, conversation_id) DO NOTHING;

-- name: save_state!
UPDATE sla_conversations
   SET policy_id = :policy_id, resolution_since = :resolution_since, last_agent_reply_at = :last_agent_reply_at,
       awaiting_reply_since = :awaiting_reply_since, status = :status, observed_at = :observed_at
 WHERE tenant_id = :tenant_id AND conversation_id = :conversation_id;

-- name: open_targets
-- The clocks not yet met or stopped (breached ones among them), locked for the change at hand.
SELECT id, target, policy_id, started_at, due_at, paused_at, remaining_seconds
  FROM sla_targets
 WHERE tenant_id = :tenant_id AND conversation_id = :conversation_id AND met_at IS NULL AND stopped_at IS NULL
 ORDER BY started_at
   FOR NO KEY UPDATE;

-- name: targets_started
SELECT DISTINCT target FROM sla_targets WHERE tenant_id = :tenant_id AND conversation_id = :conversation_id;

-- name: insert_target!
-- A retried event starts nothing twice: (conversation, target, started_at) is unique, and so is an open clock.
INSERT INTO sla_targets (tenant_id, conversation_id, policy_id, target, started_at, due_at, paused_at,
                         remaining_seconds)
VALUES (:tenant_id, :conversation_id, :policy_id, :target, :started_at, :due_at, :paused_at, :remaining_seconds)
    ON CONFLICT DO NOTHING;

-- name: close_targets!
-- Met or stopped at `at`: only clocks started by then, so an event handled late changes no later clock.
UPDATE sla_targets
   SET met_at = CASE WHEN :met THEN :at::timestamptz END,
       stopped_at = CASE WHEN :met THEN NULL ELSE :at::timestamptz END
 WHERE tenant_id = :tenant_id AND conversation_id = :conversation_id AND target = ANY(:targets::text[])
   AND met_at IS NULL AND stopped_at IS NULL AND started_at <= :at;

-- name: retime_target!
UPDATE sla_targets
   SET policy_id = :policy_id, due_at = :due_at, paused_at = :paused_at, remaining_seconds = :remaining_seconds
 WHERE tenant_id = :tenant_id AND id = :id;

-- name: conversation_state^
SELECT s.policy_id, p.name AS policy_name, p.business_hours
  FROM sla_conversations s
  JOIN sla_policies p ON p.tenant_id = s.tenant_id AND p.id = s.policy_id
 WHERE s.tenant_id = :tenant_id AND s.conversation_id = :conversation_id;

-- name: conversation_targets
SELECT target, policy_id, started_at, due_at, met_at, breached_at, stopped_at, paused_at, remaining_seconds
  FROM sla_targets
 WHERE tenant_id = :tenant_id AND conversation_id = :conversation_id
 ORDER BY started_at, target;

-- ---------------------------------------------------------------- the monitor

-- name: tenants_with_due_targets
SELECT sla_tenants_with_due_targets(:now, :limit) AS tenant_id;

-- name: due_targets
-- Running, unbreached clocks past their due time: the partial index sla_targets_watch_idx holds
-- exactly these, so the monitor never reads the clocks that are met, stopped or paused.
SELECT id, conversation_id, policy_id, target, due_at
  FROM sla_targets
 WHERE tenant_id = :tenant_id AND due_at <= :now
   AND met_at IS NULL AND stopped_at IS NULL AND breached_at IS NULL AND paused_at IS NULL
 ORDER BY due_at
 LIMIT :limit;

-- name: record_breaches
-- Only the breaches not yet recorded come back: a second or concurrent monitor gets none of them.
-- A clock met or stopped since the monitor looked is no breach.
INSERT INTO sla_breaches (tenant_id, target_id, policy_id, conversation_id, target, due_at, breached_at)
SELECT t.tenant_id, t.id, t.policy_id, t.conversation_id, t.target, t.due_at, :now
  FROM sla_targets t
 WHERE t.tenant_id = :tenant_id AND t.id = ANY(:target_ids::uuid[])
   AND t.due_at <= :now AND t.met_at IS NULL AND t.stopped_at IS NULL AND t.paused_at IS NULL
    ON CONFLICT (tenant_id, target_id) DO NOTHING
RETURNING target_id, conversation_id, policy_id, target, due_at;

-- name: link_breach_events!
UPDATE sla_breaches b SET event_id = e.event_id
  FROM unnest(:target_ids::uuid[], :event_ids::uuid[]) AS e (target_id, event_id)
 WHERE b.tenant_id = :tenant_id AND b.target_id = e.target_id;

-- name: mark_breached!
UPDATE sla_targets SET breached_at = :now
 WHERE tenant_id = :tenant_id AND id = ANY(:ids::uuid[]) AND breached_at IS NULL;

-- ---------------------------------------------------------------- breaches

-- name: list_breaches
SELECT id, policy_id, conversation_id, target, due_at, breached_at, event_id
  FROM sla_breaches
 WHERE tenant_id = :tenant_id AND policy_id = :policy_id
   AND target = :target                                                   --? target
   AND conversation_id = :conversation_id                                 --? conversation_id
   AND breached_at >= :breached_from                                      --? breached_from
   AND breached_at <= :breached_to                                        --? breached_to
   AND (breached_at, id) < (:cursor_at, :cursor_id::uuid)                 --? after_desc
   AND (breached_at, id) > (:cursor_at, :cursor_id::uuid)                 --? after_asc
 ORDER BY
       breached_at DESC, id DESC                                          --? desc
       breached_at, id                                                    --? asc
 LIMIT :limit
OFFSET :offset                                                            --? offset
;

-- name: count_breaches$
SELECT count(*)
  FROM sla_breaches
 WHERE tenant_id = :tenant_id AND policy_id = :policy_id
   AND target = :target                                                   --? target
   AND conversation_id = :conversation_id                                 --? conversation_id
   AND breached_at >= :breached_from                                      --? breached_from
   AND breached_at <= :breached_to                                        --? breached_to
;
