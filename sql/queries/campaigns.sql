-- Campaigns, their recipients and the per-account send budget.

-- name: list_campaigns
SELECT id, name, channel, account_id, message_type, text, template, status, send_at, started_at, completed_at,
       cancelled_at, created_by, created_at, updated_at
  FROM campaigns
 WHERE tenant_id = :tenant_id
   AND status = :status::text                                                                        --? status
   AND channel = :channel::text                                                                      --? channel
   AND (created_at, id) < (:cursor_at, :cursor_id::uuid)                                             --? after_desc
   AND (created_at, id) > (:cursor_at, :cursor_id::uuid)                                             --? after_asc
 ORDER BY created_at DESC, id DESC                                                                   --? desc
 ORDER BY created_at, id                                                                             --? asc
 LIMIT :limit
OFFSET :offset                                                                                       --? offset
;

-- name: count_campaigns$
SELECT count(*) FROM campaigns
 WHERE tenant_id = :tenant_id
   AND status = :status::text                                                                        --? status
   AND channel = :channel::text                                                                      --? channel
;

-- name: get_campaign^
SELECT id, name, channel, account_id, message_type, text, template, status, send_at, started_at, completed_at,
       cancelled_at, created_by, created_at, updated_at
  FROM campaigns WHERE tenant_id = :tenant_id AND id = :id;

-- name: lock_campaign^
-- Taken before a campaign changes, so an edit, a send and a cancel apply one after another.
SELECT id, name, channel, account_id, message_type, text, template, status, send_at
  FROM campaigns WHERE tenant_id = :tenant_id AND id = :id FOR UPDATE;

-- name: lock_campaign_for_batch^
-- The worker's hold on a campaign while it sends a batch; another worker busy with it moves on.
SELECT id, channel, account_id, message_type, text, template, status, send_at
  FROM campaigns
 WHERE tenant_id = :tenant_id AND id = :id AND status IN ('scheduled', 'sending')
   FOR UPDATE SKIP LOCKED;

-- name: progress^
-- Every count of a campaign in one pass over its recipients and their messages. A message's
-- status only moves forward (queued, sent, delivered, read; or failed), so sent counts what was
-- sent or got further, delivered what was delivered or read. Replied: the contact wrote in the
-- conversation after the campaign's message.
SELECT count(*) AS total,
       count(*) FILTER (WHERE r.status = 'pending') AS pending,
       count(*) FILTER (WHERE m.status = 'queued') AS queued,
       count(*) FILTER (WHERE m.status IN ('sent', 'delivered', 'read')) AS sent,
       count(*) FILTER (WHERE m.status IN ('delivered', 'read')) AS delivered,
       count(*) FILTER (WHERE m.status = 'read') AS read,
       count(*) FILTER (WHERE m.status = 'failed' AND r.status = 'queued') AS failed,
       count(*) FILTER (WHERE r.status = 'skipped') AS skipped,
       count(*) FILTER (WHERE r.status = 'cancelled') AS cancelled,
       count(*) FILTER (WHERE m.status <> 'failed' AND EXISTS (
         SELECT 1 FROM messages i
          WHERE i.tenant_id = r.tenant_id AND i.conversation_id = r.conversation_id AND i.direction = 'inbound'
            AND i.created_at > m.created_at)) AS replied
  FROM campaign_recipients r
  LEFT JOIN messages m ON m.tenant_id = r.tenant_id AND m.id = r.message_id
 WHERE r.tenant_id = :tenant_id AND r.campaign_id = :campaign_id;

-- name: insert_campaign$
INSERT INTO campaigns (tenant_id, name, channel, account_id, message_type, text, template, created_by)
VALUES (:tenant_id, :name, :channel, :account_id, :message_type, :text, :template, :created_by)
RETURNING id;

-- name: update_campaign!
UPDATE campaigns
   SET name = :name, account_id = :account_id, message_type = :message_type, text = :text, template = :template,
       updated_at = clock_timestamp()
 WHERE tenant_id = :tenant_id AND id = :id;

-- name: delete_campaign!
DELETE FROM campaigns WHERE tenant_id = :tenant_id AND id = :id;

-- name: schedule_campaign!
UPDATE campaigns SET status = :status, send_at = :send_at, updated_at = clock_timestamp()
 WHERE tenant_id = :tenant_id AND id = :id;

-- name: cancel_campaign!
UPDATE campaigns SET status = 'cancelled', cancelled_at = :now, updated_at = clock_timestamp()
 WHERE tenant_id = :tenant_id AND id = :id;

-- name: cancel_pending$
-- Recipients not yet sent, and those whose message is still waiting for its first send attempt
-- (given as `withdrawn`), are cancelled.
WITH cancelled AS (
  UPDATE campaign_recipients
     SET status = 'cancelled'
   WHERE tenant_id = :tenant_id AND campaign_id = :campaign_id
     AND (status = 'pending' OR message_id = ANY(:withdrawn::uuid[]))
  RETURNING 1
)
SELECT count(*) FROM cancelled;

-- name: queued_message_ids
-- The campaign's messages still waiting in the delivery queue, a batch after `after`.
SELECT r.message_id
  FROM campaign_recipients r
  JOIN messages m ON m.tenant_id = r.tenant_id AND m.id = r.message_id
 WHERE r.tenant_id = :tenant_id AND r.campaign_id = :campaign_id AND r.status = 'queued' AND m.status = 'queued'
   AND r.message_id > :after
 ORDER BY r.message_id
 LIMIT :batch;

-- name: finish_if_done!
UPDATE campaigns SET status = 'completed', completed_at = :now, updated_at = clock_timestamp()
 WHERE tenant_id = :tenant_id AND id = :id AND status = 'sending'
   AND NOT EXISTS (SELECT 1 FROM campaign_recipients r
                    WHERE r.tenant_id = :tenant_id AND r.campaign_id = :id AND r.status = 'pending');

-- name: mark_sending!
UPDATE campaigns SET status = 'sending', started_at = coalesce(started_at, :now), updated_at = clock_timestamp()
 WHERE tenant_id = :tenant_id AND id = :id AND status = 'scheduled';

-- name: list_recipients
SELECT r.id, r.contact_id, ct.name AS contact_name, ct.phone AS contact_phone, r.variables,
       CASE WHEN r.status = 'queued' THEN coalesce(m.status, 'failed') ELSE r.status END AS status,
       r.skip_reason, r.conversation_id, r.message_id, m.error_code, m.error_message, r.queued_at, r.created_at
  FROM campaign_recipients r
  JOIN contacts ct ON ct.tenant_id = r.tenant_id AND ct.id = r.contact_id
  LEFT JOIN messages m ON m.tenant_id = r.tenant_id AND m.id = r.message_id
 WHERE r.tenant_id = :tenant_id AND r.campaign_id = :campaign_id
   AND (CASE WHEN r.status = 'queued' THEN coalesce(m.status, 'failed') ELSE r.status END) = :status::text --? status
   AND (r.created_at, r.id) < (:cursor_at, :cursor_id::uuid)                                         --? after_desc
   AND (r.created_at, r.id) > (:cursor_at, :cursor_id::uuid)                                         --? after_asc
 ORDER BY r.created_at DESC, r.id DESC                                                               --? desc
 ORDER BY r.created_at, r.id                                                                         --? asc
 LIMIT :limit
OFFSET :offset                                                                                       --? offset
;

-- name: count_recipients$
SELECT count(*)
  FROM campaign_recipients r
  LEFT JOIN messages m ON m.tenant_id = r.tenant_id AND m.id = r.message_id
 WHERE r.tenant_id = :tenant_id AND r.campaign_id = :campaign_id
   AND (CASE WHEN r.status = 'queued' THEN coalesce(m.status, 'failed') ELSE r.status END) = :status::text --? status
;

-- name: add_recipients
-- New recipients in the given order; a contact already among them is left as it is (not returned).
INSERT INTO campaign_recipients (tenant_id, campaign_id, contact_id, variables)
SELECT :tenant_id, :campaign_id, r.contact_id, r.variables
  FROM unnest(:contact_ids::uuid[], :variables::jsonb[]) WITH ORDINALITY AS r (contact_id, variables, n)
 ORDER BY r.n
    ON CONFLICT (tenant_id, campaign_id, contact_id) DO NOTHING
RETURNING contact_id;

-- name: clear_recipients$
WITH cleared AS (
  DELETE FROM campaign_recipients WHERE tenant_id = :tenant_id AND campaign_id = :campaign_id RETURNING 1
)
SELECT count(*) FROM cleared;

-- name: recipient_count$
SELECT count(*) FROM campaign_recipients WHERE tenant_id = :tenant_id AND campaign_id = :campaign_id;

-- name: claim_pending
-- The next pending recipients in order, locked until the batch commits; rows another worker holds
-- are passed over, and come back if that worker dies before committing.
-- With what the message needs of each contact, and whether they opted out (read as the batch
-- commits, so an opt-out made before it is honoured).
SELECT r.id, r.contact_id, r.variables, ct.name, ct.phone, ct.opted_out
  FROM campaign_recipients r
  JOIN contacts ct ON ct.tenant_id = r.tenant_id AND ct.id = r.contact_id
 WHERE r.tenant_id = :tenant_id AND r.campaign_id = :campaign_id AND r.status = 'pending'
 ORDER BY r.position
 LIMIT :batch
   FOR UPDATE OF r SKIP LOCKED;

-- name: mark_queued!
UPDATE campaign_recipients r
   SET status = 'queued', message_id = q.message_id, conversation_id = q.conversation_id, queued_at = :now
  FROM unnest(:ids::uuid[], :message_ids::uuid[], :conversation_ids::uuid[]) AS q (id, message_id, conversation_id)
 WHERE r.tenant_id = :tenant_id AND r.id = q.id;

-- name: mark_skipped!
UPDATE campaign_recipients SET status = 'skipped', skip_reason = :reason
 WHERE tenant_id = :tenant_id AND id = ANY(:ids::uuid[]);

-- name: ensure_pacing!
-- The account's send budget, made on first use.
INSERT INTO campaign_pacing (tenant_id, account_id, paced_until) VALUES (:tenant_id, :account_id, :start)
    ON CONFLICT DO NOTHING;

-- name: lock_pacing$
-- The account's send budget; while a worker spends it, the others move on.
SELECT paced_until FROM campaign_pacing
 WHERE tenant_id = :tenant_id AND account_id = :account_id
   FOR UPDATE SKIP LOCKED;

-- name: spend_pacing!
UPDATE campaign_pacing SET paced_until = :paced_until WHERE tenant_id = :tenant_id AND account_id = :account_id;

-- name: campaigns_due
SELECT tenant_id, campaign_id FROM campaigns_due(:now, :limit);
