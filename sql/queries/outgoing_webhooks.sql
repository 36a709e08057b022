-- Outgoing webhooks: endpoints, their deliveries (one per event) and the log of attempts.

-- name: list_webhooks
SELECT id, url, event_types, description, header_names, secret_hint, enabled, disabled_reason, disabled_at,
       consecutive_failures, failing_since, last_success_at, last_failure_at, created_by, created_at, updated_at
  FROM outgoing_webhooks
 WHERE tenant_id = :tenant_id
   AND enabled = :enabled                                                                            --? enabled
   AND :event_type::text = ANY(event_types)                                                          --? event_type
   AND (created_at, id) < (:cursor_at, :cursor_id::uuid)                                             --? after_desc
   AND (created_at, id) > (:cursor_at, :cursor_id::uuid)                                             --? after_asc
 ORDER BY
       created_at DESC, id DESC                                                                      --? desc
       created_at, id                                                                                --? asc
 LIMIT :limit
OFFSET :offset                                                                                       --? offset
;

-- name: count_webhooks$
SELECT count(*)
  FROM outgoing_webhooks
 WHERE tenant_id = :tenant_id
   AND enabled = :enabled                                                                            --? enabled
   AND :event_type::text = ANY(event_types)                                                          --? event_type
;

-- name: get_webhook^
SELECT id, url, event_types, description, header_names, secret_hint, enabled, disabled_reason, disabled_at,
       consecutive_failures, failing_since, last_success_at, last_failure_at, created_by, created_at, updated_at
  FROM outgoing_webhooks WHERE tenant_id = :tenant_id AND id = :id;

-- name: lock_webhook^
-- Taken before an endpoint changes, so concurrent edits queue; with its sealed secrets.
SELECT id, url, event_types, enabled, secret_sealed, headers_sealed
  FROM outgoing_webhooks WHERE tenant_id = :tenant_id AND id = :id FOR UPDATE;

-- name: sending_details^
-- What a test send needs: where, and the sealed secret and headers.
SELECT url, event_types, secret_sealed, headers_sealed
  FROM outgoing_webhooks WHERE tenant_id = :tenant_id AND id = :id;

-- name: insert_webhook<!
INSERT INTO outgoing_webhooks (tenant_id, url, event_types, description, secret_sealed, secret_hint,
                               headers_sealed, header_names, enabled, disabled_reason, disabled_at, created_by)
VALUES (:tenant_id, :url, :event_types, :description, :secret_sealed, :secret_hint, :headers_sealed,
        :header_names, :enabled, CASE WHEN :enabled THEN NULL ELSE :disabled_reason END,
        CASE WHEN :enabled THEN NULL ELSE clock_timestamp() END, :user_id)
RETURNING id;

-- name: update_webhook!
-- Enabling clears the failure record; disabling by hand records who did.
UPDATE outgoing_webhooks
   SET url = :url, event_types = :event_types, description = :description, secret_sealed = :secret_sealed,
       secret_hint = :secret_hint, headers_sealed = :headers_sealed, header_names = :header_names,
       enabled = :enabled,
       disabled_reason = CASE WHEN :enabled THEN NULL WHEN enabled THEN :disabled_reason ELSE disabled_reason END,
       disabled_at = CASE WHEN :enabled THEN NULL WHEN enabled THEN clock_timestamp() ELSE disabled_at END,
       failing_since = CASE WHEN :enabled AND NOT enabled THEN NULL ELSE failing_since END,
       consecutive_failures = CASE WHEN :enabled AND NOT enabled THEN 0 ELSE consecutive_failures END,
       updated_at = clock_timestamp()
 WHERE tenant_id = :tenant_id AND id = :id;

-- name: delete_webhook^
DELETE FROM outgoing_webhooks WHERE tenant_id = :tenant_id AND id = :id RETURNING id, url;

-- name: fan_out
-- One delivery per (event, enabled endpoint subscribed to its type), in one statement; an event
-- fanned out before (processed again) adds nothing. Due at the event's own time.
INSERT INTO outgoing_webhook_deliveries (tenant_id, webhook_id, event_id, event_type, body, next_attempt_at)
SELECT w.tenant_id, w.id, e.id, e.event_type, e.body, e.created_at
  FROM unnest(:event_ids::uuid[], :event_types::text[], :bodies::text[], :created_ats::timestamptz[])
       AS e (id, event_type, body, created_at)
  JOIN outgoing_webhooks w ON w.tenant_id = :tenant_id AND w.enabled AND e.event_type = ANY(w.event_types)
    ON CONFLICT (tenant_id, webhook_id, event_id) DO NOTHING
RETURNING id;

-- name: claim_due
-- Due deliveries across tenants, each leased to this worker (migration 0012).
SELECT tenant_id, id, webhook_id, event_id, event_type, body, attempts, url, secret_sealed, headers_sealed
  FROM claim_outgoing_webhook_deliveries(:now, :limit, :lease);

-- name: record_attempts!
-- Each attempt in the log and its delivery's new state, together, for a batch; only while the
-- delivery is still that attempt's (a lease that ran out may have let another worker take it).
WITH outcome AS (
  SELECT * FROM unnest(:delivery_ids::uuid[], :attempts::int[], :statuses::text[],
                       :next_attempt_ats::timestamptz[], :succeeded::boolean[], :status_codes::int[],
                       :errors::text[], :durations::int[], :request_headers::text[], :response_bodies::text[])
         AS o (delivery_id, attempt, status, next_attempt_at, succeeded, status_code, error, duration_ms,
               request_headers, response_body)
), delivery AS (
  UPDATE outgoing_webhook_deliveries d
     SET status = o.status, next_attempt_at = COALESCE(o.next_attempt_at, d.next_attempt_at),
         finished_at = CASE WHEN o.status = 'pending' THEN NULL ELSE :now::timestamptz END
    FROM outcome o
   WHERE d.tenant_id = :tenant_id AND d.id = o.delivery_id AND d.attempts = o.attempt AND d.status = 'pending'
  RETURNING d.id, d.webhook_id, d.event_id, d.event_type, d.body
)
INSERT INTO outgoing_webhook_attempts (tenant_id, webhook_id, delivery_id, event_id, event_type, attempt,
                                       succeeded, status_code, error, duration_ms, request_headers, request_body,
                                       response_body, next_attempt_at, created_at)
SELECT :tenant_id, d.webhook_id, d.id, d.event_id, d.event_type, o.attempt, o.succeeded, o.status_code, o.error,
       o.duration_ms, o.request_headers::jsonb, d.body, o.response_body, o.next_attempt_at, :now
  FROM delivery d JOIN outcome o ON o.delivery_id = d.id;

-- name: record_test_attempt!
-- Nothing when the endpoint was deleted while the test was under way.
INSERT INTO outgoing_webhook_attempts (tenant_id, id, webhook_id, event_id, event_type, attempt, is_test,
                                       succeeded, status_code, error, duration_ms, request_headers, request_body,
                                       response_body, created_at)
SELECT w.tenant_id, :id, w.id, :event_id, :event_type, 1, true, :succeeded, :status_code, :error, :duration_ms,
       :request_headers, :request_body, :response_body, :now
  FROM outgoing_webhooks w WHERE w.tenant_id = :tenant_id AND w.id = :webhook_id;

-- name: endpoint_succeeded!
-- Written only when there is something to clear, or a minute after the last recorded success:
-- a busy endpoint's row is not rewritten on every delivery.
UPDATE outgoing_webhooks
   SET consecutive_failures = 0, failing_since = NULL, last_success_at = :now::timestamptz
 WHERE tenant_id = :tenant_id AND id = :id
   AND (consecutive_failures > 0 OR last_success_at IS NULL
        OR last_success_at < :now::timestamptz - interval '1 minute');

-- name: endpoint_failed^
-- Failed attempts count against the endpoint; a 410 Gone, or failing without a success for
-- longer than :disable_after, disables it (the reason and time kept, shown in the API).
UPDATE outgoing_webhooks
   SET consecutive_failures = consecutive_failures + :failures,
       failing_since = COALESCE(failing_since, :now),
       last_failure_at = :now,
       enabled = enabled AND NOT (:gone OR COALESCE(failing_since, :now) <= :now - :disable_after::interval),
       disabled_at = CASE
         WHEN enabled AND (:gone OR COALESCE(failing_since, :now) <= :now - :disable_after::interval) THEN :now
         ELSE disabled_at END,
       disabled_reason = CASE
         WHEN enabled AND :gone THEN :gone_reason
         WHEN enabled AND COALESCE(failing_since, :now) <= :now - :disable_after::interval THEN :failing_reason
         ELSE disabled_reason END
 WHERE tenant_id = :tenant_id AND id = :id
RETURNING enabled;

-- name: list_attempts
SELECT id, delivery_id, event_id, event_type, attempt, is_test, succeeded, status_code, error, duration_ms,
       request_headers, request_body, response_body, next_attempt_at, created_at
  FROM outgoing_webhook_attempts
 WHERE tenant_id = :tenant_id AND webhook_id = :webhook_id
   AND event_type = :event_type                                                                      --? event_type
   AND event_id = :event_id                                                                          --? event_id
   AND succeeded = :succeeded                                                                        --? succeeded
   AND created_at >= :created_from                                                                   --? created_from
   AND created_at <= :created_to                                                                     --? created_to
   AND (created_at, id) < (:cursor_at, :cursor_id::uuid)                                             --? after_desc
   AND (created_at, id) > (:cursor_at, :cursor_id::uuid)                                             --? after_asc
 ORDER BY
       created_at DESC, id DESC                                                                      --? desc
       created_at, id                                                                                --? asc
 LIMIT :limit
OFFSET :offset                                                                                       --? offset
;

-- name: count_attempts$
SELECT count(*)
  FROM outgoing_webhook_attempts
 WHERE tenant_id = :tenant_id AND webhook_id = :webhook_id
   AND event_type = :event_type                                                                      --? event_type
   AND event_id = :event_id                                                                          --? event_id
   AND succeeded = :succeeded                                                                        --? succeeded
   AND created_at >= :created_from                                                                   --? created_from
   AND created_at <= :created_to                                                                     --? created_to
;

-- name: get_attempt^
SELECT id, delivery_id, event_id, event_type, attempt, is_test, succeeded, status_code, error, duration_ms,
       request_headers, request_body, response_body, next_attempt_at, created_at
  FROM outgoing_webhook_attempts WHERE tenant_id = :tenant_id AND id = :id;

-- name: purge_log$
-- Across tenants (migration 0012): what the log keeps no longer.
SELECT purge_outgoing_webhook_log(:before, :limit);
