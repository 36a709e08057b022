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

-- A delivery of customer messages for one tenant (one message, or the several a webhook or a
-- worker's queue holds) in one statement, so in one transaction and one round trip. For each
-- message: the contact behind the channel identity (created on first sight), its live
-- conversation on the channel and account (reopened if resolved, opened if there is none), the
-- message stored once per provider id, the conversation's counters, and the automation events.
-- Returns a row per message, `item` being its place in the arrays (from 1).
--
-- A webhook delivered again finds its message and writes nothing (duplicate = true). When a
-- concurrent delivery of the same message stores it first, this one raises SQLSTATE OS001, so
-- the caller's transaction rolls back whatever it made on the way and the caller looks the
-- message up. A concurrent first sight of the identity, or first message of the thread, loses
-- its insert to a unique index (after waiting for the winner to commit) and asks again.
--
-- The messages go thread by thread (identity, then account) in a fixed order, each thread's own
-- in their given order, so two deliveries lock threads in the same order and cannot deadlock on
-- them. The lock is FOR NO KEY UPDATE: it excludes every other writer of the conversation but
-- not the foreign-key checks of rows added to it (notes, reads, events) meanwhile.
-- SECURITY INVOKER: the caller's role, under row-level security for p_tenant_id, which it sets
-- for its own transaction first. One function, not one per message called from a loop: a
-- nested call costs a query of its own per message.
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
  tenant_setting text;
  in_order integer[];
  -- The message at hand.
  channel_ text;
  account uuid;
  external_id_ text;
  at timestamptz;
  provider_id text;
  -- What it finds or makes.
  the_contact uuid;
  the_thread uuid;
  attempted_contact uuid;
  contact_created boolean;
  previous_status text;
  after record;
  snapshot jsonb;
BEGIN
  -- An assignment, not PERFORM: PL/pgSQL evaluates it without a query of its own.
  tenant_setting := set_config('app.tenant_id', p_tenant_id::text, true);
  IF cardinality(p_channel) = 1 THEN
    in_order := ARRAY[1];
  ELSE
    SELECT array_agg(u.n ORDER BY u.channel, u.external_id, u.account NULLS FIRST, u.n) INTO in_order
      FROM unnest(p_channel, p_external_id, p_account_id) WITH ORDINALITY AS u(channel, external_id, account, n);
  END IF;

  FOREACH item IN ARRAY in_order LOOP
    channel_ := p_channel[item];
    account := p_account_id[item];
    external_id_ := p_external_id[item];
    at := p_at[item];
    provider_id := p_provider_message_id[item];
    message_id := NULL;
    conversation_id := NULL;
    contact_id := NULL;
    duplicate := false;
    conversation_created := false;
    event_ids := NULL;

    IF provider_id IS NOT NULL THEN
      SELECT m.id, m.conversation_id INTO message_id, conversation_id
        FROM messages m
       WHERE m.tenant_id = p_tenant_id AND m.channel = channel_ AND m.provider_message_id = provider_id;
      IF FOUND THEN
        duplicate := true;
        RETURN NEXT;
        CONTINUE;
      END IF;
    END IF;

    the_contact := NULL;
    the_thread := NULL;
    contact_created := false;
    FOR attempt IN 1..3 LOOP
      SELECT i.contact_id INTO the_contact
        FROM contact_identities i
       WHERE i.tenant_id = p_tenant_id AND i.channel = channel_ AND i.external_id = external_id_;
      IF the_contact IS NULL THEN
        INSERT INTO contacts (tenant_id, name, phone, email, last_seen_at)
        VALUES (p_tenant_id, COALESCE(p_contact_name[item], ''), p_contact_phone[item], p_contact_email[item], at)
        RETURNING id INTO attempted_contact;
        INSERT INTO contact_identities AS i (tenant_id, channel, external_id, contact_id)
        VALUES (p_tenant_id, channel_, external_id_, attempted_contact)
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
           SET last_seen_at = GREATEST(c.last_seen_at, at),
               name = CASE WHEN c.name = '' THEN COALESCE(p_contact_name[item], '') ELSE c.name END
         WHERE c.tenant_id = p_tenant_id AND c.id = the_contact
           AND (c.last_seen_at IS NULL OR c.last_seen_at < at - interval '1 minute'
                OR (c.name = '' AND p_contact_name[item] <> ''));
      END IF;

      SELECT c.id, c.status INTO the_thread, previous_status
        FROM conversations c
       WHERE c.tenant_id = p_tenant_id AND c.contact_id = the_contact AND c.channel = channel_
         AND c.account_id IS NOT DISTINCT FROM account AND c.status IN ('open', 'pending', 'resolved')
         FOR NO KEY UPDATE;
      IF the_thread IS NULL THEN
        INSERT INTO conversations AS c (tenant_id, contact_id, channel, account_id, last_activity_at, created_at)
        VALUES (p_tenant_id, the_contact, channel_, account, at, at)
        ON CONFLICT DO NOTHING
        RETURNING c.id, c.status INTO the_thread, previous_status;
        -- Another delivery opened the thread first: ask again, finding theirs.
        CONTINUE WHEN the_thread IS NULL;
        conversation_created := true;
      END IF;
      EXIT;
    END LOOP;
    IF the_thread IS NULL THEN
      RAISE EXCEPTION 'could not open a conversation thread after three attempts';
    END IF;

    INSERT INTO messages AS m (tenant_id, conversation_id, channel, direction, type, text, content,
                               provider_message_id, status, sender_type, sent_at)
    VALUES (p_tenant_id, the_thread, channel_, 'inbound', p_type[item], p_text[item], p_content[item], provider_id,
            'received', 'contact', at)
    ON CONFLICT (tenant_id, channel, provider_message_id) WHERE provider_message_id IS NOT NULL DO NOTHING
    RETURNING m.id INTO message_id;
    IF message_id IS NULL THEN
      RAISE EXCEPTION 'message % is already stored', provider_id USING ERRCODE = 'OS001';
    END IF;

    UPDATE conversations c
       SET message_count = c.message_count + 1,
           unread_count = c.unread_count + 1,
           last_message_at = GREATEST(c.last_message_at, at),
           last_inbound_at = GREATEST(c.last_inbound_at, at),
           last_activity_at = GREATEST(c.last_activity_at, at),
           last_message_preview = CASE WHEN c.last_message_at IS NULL OR at >= c.last_message_at
                                       THEN p_preview[item] ELSE c.last_message_preview END,
           status = CASE WHEN c.status = 'resolved' THEN 'open' ELSE c.status END,
           status_changed_at = CASE WHEN c.status = 'resolved' THEN clock_timestamp() ELSE c.status_changed_at END,
           status_changed_by = CASE WHEN c.status = 'resolved' THEN NULL ELSE c.status_changed_by END,
           updated_at = clock_timestamp()
     WHERE c.tenant_id = p_tenant_id AND c.id = the_thread
    RETURNING c.status, c.assigned_agent_id, c.division_id, c.tags, c.priority, c.handled_by INTO after;

    -- The conversation as automation sees it: the shape of the conversations area's snapshots.
    snapshot := jsonb_build_object(
      'conversation_id', the_thread, 'contact_id', the_contact, 'channel', channel_, 'account_id', account,
      'status', after.status, 'assigned_agent_id', after.assigned_agent_id, 'division_id', after.division_id,
      'tags', to_jsonb(after.tags), 'priority', after.priority, 'handled_by', after.handled_by);
    WITH events AS (
      INSERT INTO automation_events (tenant_id, event_type, conversation_id, contact_id, payload, payload_hash,
                                     source)
      SELECT p_tenant_id, e.event_type, the_thread, the_contact, e.payload, payload_fingerprint(e.payload),
             p_source[item]
        FROM (VALUES
          (1, 'conversation_created', conversation_created,
           snapshot || jsonb_build_object('contact_created', contact_created)),
          (2, 'status_changed', previous_status <> after.status,
           snapshot || jsonb_build_object('previous_status', previous_status, 'changed_by', NULL,
                                          'reason', 'customer wrote again')),
          (3, 'message_received_inbound', true,
           snapshot || jsonb_build_object('message', jsonb_build_object(
             'id', message_id, 'type', p_type[item], 'text', p_text[item], 'provider_message_id', provider_id)))
        ) AS e(position, event_type, wanted, payload)
       WHERE e.wanted
       ORDER BY e.position
      RETURNING id, event_type
    )
    SELECT array_agg(events.id ORDER BY array_position(
             ARRAY['conversation_created', 'status_changed', 'message_received_inbound'], events.event_type))
      INTO event_ids
      FROM events;

    conversation_id := the_thread;
    contact_id := the_contact;
    RETURN NEXT;
  END LOOP;
END $$;
