-- The automation event queue (the outbox's automation_events) and the runs of rules on its events.

-- ------------------------------------------------------------------ the workers

-- name: claim_due
-- Due events across tenants, each now processing with a lease (migration 0007).
SELECT tenant_id, id, event_type, conversation_id, contact_id, payload, source, attempts, created_at, rules_version
  FROM claim_automation_events(:limit, :lease);

-- name: finish_events
-- Events whose processing committed, all at once: done. Only while still this attempt's (a lease
-- that ran out may have let another worker claim the event meanwhile).
UPDATE automation_events e
   SET status = 'done', processed_at = clock_timestamp(), error = NULL
  FROM unnest(:ids::uuid[], :attempts::int[]) AS f(id, attempts)
 WHERE e.tenant_id = :tenant_id AND e.id = f.id AND e.attempts = f.attempts AND e.status = 'processing'
RETURNING e.id;

-- name: retry_event$
-- An attempt failed: back to pending after a delay, or failed for good after the last attempt.
UPDATE automation_events
   SET status = CASE WHEN :give_up THEN 'failed' ELSE 'pending' END,
       available_at = clock_timestamp() + :delay::interval,
       processed_at = CASE WHEN :give_up THEN clock_timestamp() ELSE processed_at END,
       error = :error
 WHERE tenant_id = :tenant_id AND id = :id AND attempts = :attempts AND status = 'processing'
RETURNING status;

-- name: lock_event^
-- The event a worker is about to process, if it still holds its claim, and the rules that already
-- ran for it (none, unless its runs were committed without its end: they do not act again).
SELECT e.id, ARRAY(SELECT r.rule_id FROM automation_runs r
                    WHERE r.tenant_id = e.tenant_id AND r.event_id = e.id) AS already_run
  FROM automation_events e
 WHERE e.tenant_id = :tenant_id AND e.id = :id AND e.attempts = :attempts AND e.status = 'processing'
   FOR UPDATE OF e;

-- name: count_worker_events!
INSERT INTO automation_worker_counters AS w (tenant_id, event_type, claimed_events, done_events, retried_events,
                                             failed_events, updated_at)
SELECT :tenant_id, c.event_type, c.claimed, c.done, c.retried, c.failed, now()
  FROM unnest(:event_types::text[], :claimed::bigint[], :done::bigint[], :retried::bigint[], :failed::bigint[])
       AS c(event_type, claimed, done, retried, failed)
    ON CONFLICT (tenant_id, event_type) DO UPDATE
   SET claimed_events = w.claimed_events + EXCLUDED.claimed_events,
       done_events = w.done_events + EXCLUDED.done_events,
       retried_events = w.retried_events + EXCLUDED.retried_events,
       failed_events = w.failed_events + EXCLUDED.failed_events,
       updated_at = now();

-- name: last_runs
-- When each of the rules last ran for the conversation (cooldowns).
SELECT rule_id, max(created_at) AS at
  FROM automation_runs
 WHERE tenant_id = :tenant_id AND conversation_id = :conversation_id AND rule_id = ANY(:rule_ids::uuid[]) AND executed
 GROUP BY rule_id;

-- name: existing_runs
-- The runs an earlier attempt at the event already made: their rules do not act again.
SELECT rule_id FROM automation_runs WHERE tenant_id = :tenant_id AND event_id = :event_id;

-- name: insert_run<!
INSERT INTO automation_runs AS r (tenant_id, event_id, rule_id, rule_name, conversation_id, matched, executed,
                                  result, rule_snapshot, webhooks_pending, duration_ms)
VALUES (:tenant_id, :event_id, :rule_id, :rule_name, :conversation_id, :matched, :executed, :result, :rule_snapshot,
        :webhooks_pending, :duration_ms)
    ON CONFLICT (tenant_id, event_id, rule_id) DO NOTHING
RETURNING id;

-- name: last_round_robin_agent$
-- The agent a rule's round robin chose last in a division.
SELECT (a -> 'detail' ->> 'agent_id')::uuid
  FROM automation_runs r, jsonb_array_elements(r.result -> 'actions') a
 WHERE r.tenant_id = :tenant_id AND r.rule_id = :rule_id AND r.executed
   AND a ->> 'type' = 'assign_agent' AND a -> 'detail' ->> 'strategy' = 'round_robin'
   AND a -> 'detail' ->> 'division_id' = :division_id::uuid::text
 ORDER BY r.created_at DESC
 LIMIT 1;

-- name: lock_for_reprocess^
SELECT id, event_type, conversation_id, contact_id, payload, source, attempts, created_at, status
  FROM automation_events
 WHERE tenant_id = :tenant_id AND id = :id
   FOR UPDATE;

-- name: mark_done!
UPDATE automation_events SET status = 'done', processed_at = clock_timestamp(), error = NULL
 WHERE tenant_id = :tenant_id AND id = :id;

-- name: get_run_for_webhooks^
SELECT id, event_id, rule_id, result, rule_snapshot, webhooks_pending FROM automation_runs
 WHERE tenant_id = :tenant_id AND id = :id
   FOR UPDATE;

-- name: set_run_result!
UPDATE automation_runs SET result = :result, webhooks_pending = :webhooks_pending
 WHERE tenant_id = :tenant_id AND id = :id;

-- name: runs_with_pending_webhooks
SELECT tenant_id, run_id FROM automation_runs_with_pending_webhooks(:older_than, :limit);

-- ------------------------------------------------------------------ runs

-- name: list_runs
SELECT r.id, r.event_id, r.rule_id, r.rule_name, r.conversation_id, r.matched, r.executed, r.result, r.created_at
  FROM automation_runs r
 WHERE r.tenant_id = :tenant_id
   AND r.rule_id = :rule_id::uuid                                                                    --? rule_id
   AND r.event_id = :event_id::uuid                                                                  --? event_id
   AND r.matched = :matched::boolean                                                                 --? matched
   AND r.executed = :executed::boolean                                                               --? executed
   AND r.created_at >= :created_from::timestamptz                                                    --? created_from
   AND r.created_at < :created_to::timestamptz                                                       --? created_to
   AND (r.created_at, r.id) < (:cursor_at, :cursor_id::uuid)                                         --? after_desc
   AND (r.created_at, r.id) > (:cursor_at, :cursor_id::uuid)                                         --? after_asc
 ORDER BY r.created_at DESC, r.id DESC                                                               --? by_created_at_desc
 ORDER BY r.created_at, r.id                                                                         --? by_created_at_asc
 ORDER BY r.matched DESC, r.created_at DESC, r.id DESC                                               --? by_matched_desc
 ORDER BY r.matched, r.created_at, r.id                                                              --? by_matched_asc
 ORDER BY r.executed DESC, r.created_at DESC, r.id DESC                                              --? by_executed_desc
 ORDER BY r.executed, r.created_at, r.id                                                             --? by_executed_asc
 ORDER BY r.rule_id DESC, r.created_at DESC, r.id DESC                                               --? by_rule_id_desc
 ORDER BY r.rule_id, r.created_at, r.id                                                              --? by_rule_id_asc
 ORDER BY r.event_id DESC, r.created_at DESC, r.id DESC                                              --? by_event_id_desc
 ORDER BY r.event_id, r.created_at, r.id                                                             --? by_event_id_asc
 LIMIT :limit
OFFSET :offset                                                                                       --? offset
;

-- name: count_runs$
SELECT count(*) FROM automation_runs r
 WHERE r.tenant_id = :tenant_id
   AND r.rule_id = :rule_id::uuid                                                                    --? rule_id
   AND r.event_id = :event_id::uuid                                                                  --? event_id
   AND r.matched = :matched::boolean                                                                 --? matched
   AND r.executed = :executed::boolean                                                               --? executed
   AND r.created_at >= :created_from::timestamptz                                                    --? created_from
   AND r.created_at < :created_to::timestamptz                                                       --? created_to
;

-- name: export_runs
-- The CSV export, a cursor walk of up to :limit rows (read in batches, never all held at once).
SELECT r.id, r.created_at, r.rule_id, r.rule_name, r.event_id, e.event_type, r.conversation_id, r.matched, r.executed,
       r.result ->> 'outcome' AS outcome, r.duration_ms, r.result
  FROM automation_runs r
  LEFT JOIN automation_events e ON e.tenant_id = r.tenant_id AND e.id = r.event_id
 WHERE r.tenant_id = :tenant_id
   AND r.rule_id = :rule_id::uuid                                                                    --? rule_id
   AND r.event_id = :event_id::uuid                                                                  --? event_id
   AND r.matched = :matched::boolean                                                                 --? matched
   AND r.executed = :executed::boolean                                                               --? executed
   AND r.created_at >= :created_from::timestamptz                                                    --? created_from
   AND r.created_at < :created_to::timestamptz                                                       --? created_to
   AND (r.created_at, r.id) < (:cursor_at, :cursor_id::uuid)                                         --? after_desc
   AND (r.created_at, r.id) > (:cursor_at, :cursor_id::uuid)                                         --? after_asc
 ORDER BY r.created_at DESC, r.id DESC                                                               --? desc
 ORDER BY r.created_at, r.id                                                                         --? asc
 LIMIT :limit
;

-- name: get_run^
SELECT r.id, r.event_id, r.rule_id, r.rule_name, r.conversation_id, r.matched, r.executed, r.result, r.created_at,
       e.event_type, e.source AS event_source, e.status AS event_status, e.contact_id,
       c.channel AS channel_source
  FROM automation_runs r
  LEFT JOIN automation_events e ON e.tenant_id = r.tenant_id AND e.id = r.event_id
  LEFT JOIN conversations c ON c.tenant_id = r.tenant_id AND c.id = r.conversation_id
 WHERE r.tenant_id = :tenant_id AND r.id = :id;

-- name: get_replay_context^
SELECT r.id, r.event_id, r.rule_id, r.rule_name, r.conversation_id, r.matched, r.executed, r.result, r.created_at,
       e.payload AS event_payload, r.rule_snapshot
  FROM automation_runs r
  LEFT JOIN automation_events e ON e.tenant_id = r.tenant_id AND e.id = r.event_id
 WHERE r.tenant_id = :tenant_id AND r.id = :id;

-- ------------------------------------------------------------------ events

-- name: list_events
SELECT e.id, e.event_type, e.conversation_id, e.contact_id, e.payload, e.payload_hash, e.source, e.status, e.attempts,
       e.available_at, e.processed_at, e.error, e.created_at
  FROM automation_events e
 WHERE e.tenant_id = :tenant_id
   AND e.status = :status::text                                                                      --? status
   AND e.event_type = :event_type::text                                                              --? event_type
   AND e.source = :source::text                                                                      --? source
   AND e.payload_hash = :payload_hash::text                                                          --? payload_hash
   AND e.conversation_id = :conversation_id::uuid                                                    --? conversation_id
   AND EXISTS (SELECT 1 FROM automation_runs r                                                      --? rule_id
                WHERE r.tenant_id = e.tenant_id AND r.event_id = e.id AND r.rule_id = :rule_id::uuid) --? rule_id
   AND e.created_at >= :created_from::timestamptz                                                    --? created_from
   AND e.created_at < :created_to::timestamptz                                                       --? created_to
   AND (e.created_at, e.id) < (:cursor_at, :cursor_id::uuid)                                         --? after_desc
   AND (e.created_at, e.id) > (:cursor_at, :cursor_id::uuid)                                         --? after_asc
 ORDER BY e.created_at DESC, e.id DESC                                                               --? by_created_at_desc
 ORDER BY e.created_at, e.id                                                                         --? by_created_at_asc
 ORDER BY e.available_at DESC, e.id DESC                                                             --? by_available_at_desc
 ORDER BY e.available_at, e.id                                                                       --? by_available_at_asc
 ORDER BY e.processed_at DESC NULLS LAST, e.created_at DESC, e.id DESC                               --? by_processed_at_desc
 ORDER BY e.processed_at NULLS LAST, e.created_at, e.id                                              --? by_processed_at_asc
 ORDER BY e.attempts DESC, e.created_at DESC, e.id DESC                                              --? by_attempts_desc
 ORDER BY e.attempts, e.created_at, e.id                                                             --? by_attempts_asc
 ORDER BY e.status DESC, e.created_at DESC, e.id DESC                                                --? by_status_desc
 ORDER BY e.status, e.created_at, e.id                                                               --? by_status_asc
 ORDER BY e.event_type DESC, e.created_at DESC, e.id DESC                                            --? by_event_type_desc
 ORDER BY e.event_type, e.created_at, e.id                                                           --? by_event_type_asc
 LIMIT :limit
OFFSET :offset                                                                                       --? offset
;

-- name: count_events$
SELECT count(*) FROM automation_events e
 WHERE e.tenant_id = :tenant_id
   AND e.status = :status::text                                                                      --? status
   AND e.event_type = :event_type::text                                                              --? event_type
   AND e.source = :source::text                                                                      --? source
   AND e.payload_hash = :payload_hash::text                                                          --? payload_hash
   AND e.conversation_id = :conversation_id::uuid                                                    --? conversation_id
   AND EXISTS (SELECT 1 FROM automation_runs r                                                      --? rule_id
                WHERE r.tenant_id = e.tenant_id AND r.event_id = e.id AND r.rule_id = :rule_id::uuid) --? rule_id
   AND e.created_at >= :created_from::timestamptz                                                    --? created_from
   AND e.created_at < :created_to::timestamptz                                                       --? created_to
;

-- name: export_events
SELECT e.id, e.created_at, e.event_type, e.status, e.source, e.conversation_id, e.contact_id, e.attempts,
       e.available_at, e.processed_at, e.error, e.payload_hash, e.payload
  FROM automation_events e
 WHERE e.tenant_id = :tenant_id
   AND e.status = :status::text                                                                      --? status
   AND e.event_type = :event_type::text                                                              --? event_type
   AND e.source = :source::text                                                                      --? source
   AND e.payload_hash = :payload_hash::text                                                          --? payload_hash
   AND e.created_at >= :created_from::timestamptz                                                    --? created_from
   AND e.created_at < :created_to::timestamptz                                                       --? created_to
   AND (e.created_at, e.id) < (:cursor_at, :cursor_id::uuid)                                         --? after_desc
   AND (e.created_at, e.id) > (:cursor_at, :cursor_id::uuid)                                         --? after_asc
 ORDER BY e.created_at DESC, e.id DESC                                                               --? desc
 ORDER BY e.created_at, e.id                                                                         --? asc
 LIMIT :limit
;

-- name: get_event^
SELECT id, event_type, conversation_id, contact_id, payload, payload_hash, source, status, attempts, available_at,
       processed_at, error, created_at
  FROM automation_events
 WHERE tenant_id = :tenant_id AND id = :id;

-- name: event_stats^
SELECT count(*) AS total_events,
       count(*) FILTER (WHERE status = 'pending') AS pending_events,
       count(*) FILTER (WHERE status = 'processing') AS processing_events,
       count(*) FILTER (WHERE status = 'done') AS done_events,
       count(*) FILTER (WHERE status = 'failed') AS failed_events
  FROM automation_events
 WHERE tenant_id = :tenant_id AND created_at >= :since;

-- name: retry_one$
-- Back to pending now, its attempts counted afresh; an event being processed is left to finish.
UPDATE automation_events
   SET status = 'pending', attempts = 0, available_at = clock_timestamp(), error = NULL, processed_at = NULL
 WHERE tenant_id = :tenant_id AND id = :id AND status IN ('failed', 'done', 'pending')
RETURNING id;

-- name: retry_failed
UPDATE automation_events e
   SET status = 'pending', attempts = 0, available_at = clock_timestamp(), error = NULL, processed_at = NULL
  FROM (SELECT id FROM automation_events
         WHERE tenant_id = :tenant_id AND status = 'failed'
         ORDER BY created_at
         LIMIT :limit
           FOR UPDATE SKIP LOCKED) f
 WHERE e.tenant_id = :tenant_id AND e.id = f.id
RETURNING e.id;

-- name: cleanup_failed
DELETE FROM automation_events e
 USING (SELECT id FROM automation_events
         WHERE tenant_id = :tenant_id AND status = 'failed' AND created_at < :before
         ORDER BY created_at
         LIMIT :limit
           FOR UPDATE SKIP LOCKED) f
 WHERE e.tenant_id = :tenant_id AND e.id = f.id
RETURNING e.id;

-- name: worker_counters
SELECT event_type, claimed_events, done_events, retried_events, failed_events
  FROM automation_worker_counters
 WHERE tenant_id = :tenant_id
 ORDER BY event_type;

-- name: event_lag$
-- How long the oldest event still waiting has waited, in seconds (0 when none waits).
SELECT COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - min(created_at)), 0)::double precision
  FROM automation_events
 WHERE tenant_id = :tenant_id AND status IN ('pending', 'processing');
