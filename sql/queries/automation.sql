-- name: insert_events*!
-- The outbox rows of one change, written in that change's transaction.
INSERT INTO automation_events (id, tenant_id, event_type, conversation_id, contact_id, payload, payload_hash, source)
VALUES (:id, :tenant_id, :event_type, :conversation_id, :contact_id, :payload, payload_fingerprint(:payload), :source);
