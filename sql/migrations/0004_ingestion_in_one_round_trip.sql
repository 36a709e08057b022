-- Ingestion in one round trip per delivery, and event fingerprints computed where events are written.

-- The fingerprint of an event is the SHA-256 of its payload's jsonb text: PostgreSQL's own
-- normal form (keys once each, ordered shortest first then bytewise, ", " and ": " between
-- items). Every statement that writes events computes it with this one function, so every
-- writer gets the same fingerprint for the same payload. STABLE, as convert_to is: that lets
-- PostgreSQL inline it into those statements instead of calling it row by row.
CREATE FUNCTION payload_fingerprint(payload jsonb) RETURNS text
  LANGUAGE sql STABLE STRICT PARALLEL SAFE
  RETURN encode(sha256(convert_to(payload::text, 'UTF8')), 'hex');
UPDATE automation_events SET payload_hash = payload_fingerprint(payload);

-- An event belongs to its conversation: deleting a contact deletes its conversations' events
-- (their payloads quote the messages), and a deleted tenant's go with its conversations. Messages
-- reach their tenant through their conversation too. A foreign key to the tenant row would make
-- every concurrent write of a busy tenant lock that one row (a multixact per message).
ALTER TABLE automation_events
  ADD CONSTRAINT automation_events_conversation_id_fkey
  FOREIGN KEY (conversation_id) REFERENCES conversations (id) ON DELETE CASCADE;
ALTER TABLE automation_events DROP CONSTRAINT automation_events_tenant_id_fkey;
ALTER TABLE messages DROP CONSTRAINT messages_tenant_id_fkey;

-- One customer message and everything it implies: the contact behind the channel identity
-- (created on first sight), its live conversation on the channel and account (reopened if
-- resolved, opened if there is none), the message stored once per provider id, the
-- conversation's counters, and the automation events. Called by `ingest_inbound` below, in its
-- transaction, with the tenant set.
--
-- A webhook delivered again finds its message and writes nothing (duplicate = true). When a
-- concurrent delivery of the same message stores it first, this one raises SQLSTATE OS001, so
-- the caller's transaction rolls back whatever it made on the way and the caller looks the
-- message up. A concurrent first sight of the identity, or first message of the thread, loses
-- its insert to a unique index (after waiting for the winner to commit) and asks again.
CREATE FUNCTION ingest_inbound_message(
  p_tenant_id uuid, p_channel text, p_account_id uuid, p_external_id text,
  p_contact_name text, p_contact_phone text, p_contact_email text,
  p_type text, p_text text, p_content jsonb, p_provider_message_id text, p_at timestamptz, p_preview text,
  p_source text,
  OUT message_id uuid, OUT conversation_id uuid, OUT contact_id uuid, OUT duplicate boolean,
  OUT conversation_created boolean, OUT event_ids uuid[])
  LANGUAGE plpgsql VOLATILE
  AS $$
DECLARE
  the_contact uuid;
  the_thread uuid;
  attempted_contact uuid;
  contact_created boolean := false;
  opened boolean := false;
  previous_status text;
  after record;
  snapshot jsonb;
  the_message uuid;
BEGIN
  duplicate := false;

  IF p_provider_message_id IS NOT NULL THEN
    SELECT m.id, m.conversation_id INTO message_id, conversation_id
      FROM messages m
     WHERE m.tenant_id = p_tenant_id AND m.channel = p_channel AND m.provider_message_id = p_provider_message_id;
    IF FOUND THEN
      duplicate := true;
      conversation_created := false;
      RETURN;
    END IF;
  END IF;

  FOR attempt IN 1..3 LOOP
    SELECT i.contact_id INTO the_contact
      FROM contact_identities i
     WHERE i.tenant_id = p_tenant_id AND i.channel = p_channel AND i.external_id = p_external_id;
    IF the_contact IS NULL THEN
      INSERT INTO contacts (tenant_id, name, phone, email, last_seen_at)
      VALUES (p_tenant_id, COALESCE(p_contact_name, ''), p_contact_phone, p_contact_email, p_at)
      RETURNING id INTO attempted_contact;
      INSERT INTO contact_identities AS i (tenant_id, channel, external_id, contact_id)
      VALUES (p_tenant_id, p_channel, p_external_id, attempted_contact)
      ON CONFLICT DO NOTHING
      RETURNING i.contact_id INTO the_contact;
      IF the_contact IS NULL THEN
        -- Another delivery saw this identity first: drop this contact and use theirs.
        DELETE FROM contacts c WHERE c.tenant_id = p_tenant_id AND c.id = attempted_contact;
        CONTINUE;
      END IF;
      contact_created := true;
    ELSE
      -- Seen to the minute: a contact writing in a burst is not rewritten on every message.
      UPDATE contacts c
         SET last_seen_at = GREATEST(c.last_seen_at, p_at),
             name = CASE WHEN c.name = '' THEN COALESCE(p_contact_name, '') ELSE c.name END
       WHERE c.tenant_id = p_tenant_id AND c.id = the_contact
         AND (c.last_seen_at IS NULL OR c.last_seen_at < p_at - interval '1 minute'
              OR (c.name = '' AND p_contact_name <> ''));
    END IF;

    SELECT c.id, c.status INTO the_thread, previous_status
      FROM conversations c
     WHERE c.tenant_id = p_tenant_id AND c.contact_id = the_contact AND c.channel = p_channel
       AND c.account_id IS NOT DISTINCT FROM p_account_id AND c.status IN ('open', 'pending', 'resolved')
       FOR UPDATE;
    IF the_thread IS NULL THEN
      INSERT INTO conversations AS c (tenant_id, contact_id, channel, account_id, last_activity_at, created_at)
      VALUES (p_tenant_id, the_contact, p_channel, p_account_id, p_at, p_at)
      ON CONFLICT DO NOTHING
      RETURNING c.id, c.status INTO the_thread, previous_status;
      -- Another delivery opened the thread first: ask again, finding theirs.
      CONTINUE WHEN the_thread IS NULL;
      opened := true;
    END IF;
    EXIT;
  END LOOP;
  IF the_thread IS NULL THEN
    RAISE EXCEPTION 'could not open a conversation thread after three attempts';
  END IF;

  INSERT INTO messages AS m (tenant_id, conversation_id, channel, direction, type, text, content,
                             provider_message_id, status, sender_type, sent_at)
  VALUES (p_tenant_id, the_thread, p_channel, 'inbound', p_type, p_text, p_content, p_provider_message_id,
          'received', 'contact', p_at)
  ON CONFLICT (tenant_id, channel, provider_message_id) WHERE provider_message_id IS NOT NULL DO NOTHING
  RETURNING m.id INTO the_message;
  IF the_message IS NULL THEN
    RAISE EXCEPTION 'message % is already stored', p_provider_message_id USING ERRCODE = 'OS001';
  END IF;

  UPDATE conversations c
     SET message_count = c.message_count + 1,
         unread_count = c.unread_count + 1,
         last_message_at = GREATEST(c.last_message_at, p_at),
         last_inbound_at = GREATEST(c.last_inbound_at, p_at),
         last_activity_at = GREATEST(c.last_activity_at, p_at),
         last_message_preview = CASE WHEN c.last_message_at IS NULL OR p_at >= c.last_message_at
                                     THEN p_preview ELSE c.last_message_preview END,
         status = CASE WHEN c.status = 'resolved' THEN 'open' ELSE c.status END,
         status_changed_at = CASE WHEN c.status = 'resolved' THEN clock_timestamp() ELSE c.status_changed_at END,
         status_changed_by = CASE WHEN c.status = 'resolved' THEN NULL ELSE c.status_changed_by END,
         updated_at = clock_timestamp()
   WHERE c.tenant_id = p_tenant_id AND c.id = the_thread
  RETURNING c.status, c.assigned_agent_id, c.division_id, c.tags, c.priority, c.handled_by INTO after;

  -- The conversation as automation sees it: the shape of the conversations area's snapshots.
  snapshot := jsonb_build_object(
    'conversation_id', the_thread, 'contact_id', the_contact, 'channel', p_channel, 'account_id', p_account_id,
    'status', after.status, 'assigned_agent_id', after.assigned_agent_id, 'division_id', after.division_id,
    'tags', to_jsonb(after.tags), 'priority', after.priority, 'handled_by', after.handled_by);
  WITH events AS (
    INSERT INTO automation_events (tenant_id, event_type, conversation_id, contact_id, payload, payload_hash,
                                   source)
    SELECT p_tenant_id, e.event_type, the_thread, the_contact, e.payload, payload_fingerprint(e.payload), p_source
      FROM (VALUES
        (1, 'conversation_created', opened, snapshot || jsonb_build_object('contact_created', contact_created)),
        (2, 'status_changed', previous_status <> after.status,
         snapshot || jsonb_build_object('previous_status', previous_status, 'changed_by', NULL,
                                        'reason', 'customer wrote again')),
        (3, 'message_received_inbound', true,
         snapshot || jsonb_build_object('message', jsonb_build_object(
           'id', the_message, 'type', p_type, 'text', p_text, 'provider_message_id', p_provider_message_id)))
      ) AS e(position, event_type, wanted, payload)
     WHERE e.wanted
     ORDER BY e.position
    RETURNING id, event_type
  )
  SELECT array_agg(events.id ORDER BY array_position(
           ARRAY['conversation_created', 'status_changed', 'message_received_inbound'], events.event_type))
    INTO event_ids
    FROM events;

  message_id := the_message;
  conversation_id := the_thread;
  contact_id := the_contact;
  conversation_created := opened;
END $$;

-- A delivery of customer messages for one tenant (one message, or the several a webhook or a
-- worker's queue holds) in one statement, so in one transaction and one round trip. Returns a
-- row per message, `item` being its place in the arrays (from 1).
--
-- The messages go identity by identity in a fixed order (one identity's own in their given
-- order), so two deliveries lock threads in the same order and cannot deadlock on them.
-- SECURITY INVOKER: the caller's role, under row-level security for p_tenant_id, which it sets
-- for its own transaction first.
CREATE FUNCTION ingest_inbound(
  p_tenant_id uuid, p_channel text[], p_account_id uuid[], p_external_id text[],
  p_contact_name text[], p_contact_phone text[], p_contact_email text[],
  p_type text[], p_text text[], p_content jsonb[], p_provider_message_id text[], p_at timestamptz[],
  p_preview text[], p_source text[])
  RETURNS TABLE (item integer, message_id uuid, conversation_id uuid, contact_id uuid, duplicate boolean,
                 conversation_created boolean, event_ids uuid[])
  LANGUAGE plpgsql VOLATILE
  AS $$
DECLARE
  i integer;
BEGIN
  PERFORM set_config('app.tenant_id', p_tenant_id::text, true);
  FOR i IN
    SELECT u.n FROM unnest(p_channel, p_external_id) WITH ORDINALITY AS u(channel, external_id, n)
     ORDER BY u.channel, u.external_id, u.n
  LOOP
    RETURN QUERY
      SELECT i, m.* FROM ingest_inbound_message(
        p_tenant_id, p_channel[i], p_account_id[i], p_external_id[i], p_contact_name[i], p_contact_phone[i],
        p_contact_email[i], p_type[i], p_text[i], p_content[i], p_provider_message_id[i], p_at[i], p_preview[i],
        p_source[i]) AS m;
  END LOOP;
END $$;
