"""The ingestion service: a customer's message becomes a contact, a conversation, a message and events, once."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import AsyncTestClient

from omnistream.automation.service import Outbox
from omnistream.config import Settings
from omnistream.conversations.service import snapshot
from omnistream.db import Database
from omnistream.messages.schemas import InboundMessage, IngestResult
from omnistream.messages.service import ingest_inbound, ingest_inbound_many
from tests.conftest import Tenant, fingerprint, inbound_message, ingest, register


async def fetch(db: Database, tenant: Tenant, sql: str, *args: Any) -> list[Any]:
    """Rows as the tenant's own connection sees them (row-level security on)."""
    async with db.tenant(UUID(tenant.id)) as conn:
        return await conn.fetch(sql, *args)


async def events(db: Database, tenant: Tenant, conversation_id: UUID | None = None) -> list[Any]:
    return await fetch(
        db,
        tenant,
        "SELECT id, event_type, conversation_id, contact_id, payload, payload::text AS payload_text, payload_hash,"
        " source, status "
        "FROM automation_events WHERE $1::uuid IS NULL OR conversation_id = $1 ORDER BY created_at, id",
        conversation_id,
    )


async def counts(db: Database, tenant: Tenant) -> dict[str, int]:
    row = (
        await fetch(
            db,
            tenant,
            "SELECT (SELECT count(*) FROM contacts) AS contacts,"
            " (SELECT count(*) FROM contact_identities) AS identities,"
            " (SELECT count(*) FROM conversations) AS conversations, (SELECT count(*) FROM messages) AS messages,"
            " (SELECT count(*) FROM automation_events) AS events",
        )
    )[0]
    return dict(row)


async def conversation(client: AsyncTestClient, tenant: Tenant, conversation_id: UUID) -> dict[str, Any]:
    response = await client.get(f"/api/conversations/{conversation_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def set_status(client: AsyncTestClient, tenant: Tenant, conversation_id: UUID, status: str) -> None:
    response = await client.patch(
        f"/api/conversations/{conversation_id}/status", json={"status": status}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == status


# ------------------------------------------------------------------ one message after another


async def test_first_message_creates_contact_conversation_message_and_events(
    client: AsyncTestClient, tenant: Tenant, db: Database
) -> None:
    sent_at = datetime(2024, 8, 25, 15, 0, tzinfo=UTC)
    result = await ingest(
        db,
        tenant,
        "Where is my order?",
        external_id="6281111",
        provider_message_id="wamid.first",
        contact_name="Budi",
        contact_phone="+6281111",
        sent_at=sent_at,
    )
    assert result.duplicate is False
    assert result.conversation_created is True
    assert result.contact_id is not None

    contact = (await fetch(db, tenant, "SELECT id, name, phone, last_seen_at FROM contacts"))[0]
    assert (contact["id"], contact["name"], contact["phone"]) == (result.contact_id, "Budi", "+6281111")
    assert contact["last_seen_at"] == sent_at
    identity = await fetch(db, tenant, "SELECT channel, external_id, contact_id FROM contact_identities")
    assert [tuple(r) for r in identity] == [("whatsapp", "6281111", result.contact_id)]

    conv = await conversation(client, tenant, result.conversation_id)
    assert conv["contact"]["id"] == str(result.contact_id)
    assert conv["channel"] == "whatsapp"
    assert conv["status"] == "open"
    assert (conv["message_count"], conv["unread_count"]) == (1, 1)
    assert conv["last_message_preview"] == "Where is my order?"
    assert conv["last_inbound_at"] == "2024-08-25T15:00:00Z"

    messages = (
        await client.get(f"/api/conversations/{result.conversation_id}/messages", headers=tenant.headers)
    ).json()["messages"]
    assert len(messages) == 1
    message = messages[0]
    assert message["id"] == str(result.message_id)
    assert (message["direction"], message["status"], message["sender_type"]) == ("inbound", "received", "contact")
    assert (message["text"], message["provider_message_id"]) == ("Where is my order?", "wamid.first")

    stored = await events(db, tenant)
    assert [e["event_type"] for e in stored] == ["conversation_created", "message_received_inbound"]
    assert [e["id"] for e in stored] == result.event_ids
    assert all(e["conversation_id"] == result.conversation_id for e in stored)
    assert all(e["contact_id"] == result.contact_id for e in stored)
    assert all((e["status"], e["source"]) == ("pending", "webhook") for e in stored)
    created, received = stored[0]["payload"], stored[1]["payload"]
    assert created["contact_created"] is True
    assert created["conversation_id"] == str(result.conversation_id)
    assert created["status"] == "open"
    assert received["message"] == {
        "id": str(result.message_id),
        "type": "text",
        "text": "Where is my order?",
        "provider_message_id": "wamid.first",
    }


async def test_second_message_from_the_same_identity_appends(
    client: AsyncTestClient, tenant: Tenant, db: Database
) -> None:
    first = await ingest(db, tenant, "hello", external_id="6282222")
    second = await ingest(db, tenant, "anyone there?", external_id="6282222", contact_name="Someone Else")
    assert second.duplicate is False
    assert second.conversation_created is False
    assert (second.conversation_id, second.contact_id) == (first.conversation_id, first.contact_id)
    assert second.message_id != first.message_id

    conv = await conversation(client, tenant, first.conversation_id)
    assert (conv["message_count"], conv["unread_count"]) == (2, 2)
    assert conv["last_message_preview"] == "anyone there?"
    assert conv["contact"]["name"] == "Customer"  # a known contact's name is not overwritten
    assert (await counts(db, tenant))["contacts"] == 1
    assert [e["event_type"] for e in await events(db, tenant)] == [
        "conversation_created",
        "message_received_inbound",
        "message_received_inbound",
    ]
    # The same number on another channel is another identity, hence another contact and thread.
    elsewhere = await ingest(db, tenant, "hi from messenger", external_id="6282222", channel="messenger")
    assert elsewhere.conversation_created is True
    assert elsewhere.contact_id != first.contact_id
    assert elsewhere.conversation_id != first.conversation_id


async def test_a_contact_is_seen_to_the_minute_and_named_once_a_name_arrives(
    client: AsyncTestClient, tenant: Tenant, db: Database
) -> None:
    at = datetime(2024, 8, 25, 15, 0, tzinfo=UTC)

    async def seen() -> tuple[datetime, str]:
        (row,) = await fetch(db, tenant, "SELECT last_seen_at, name FROM contacts")
        return row["last_seen_at"], row["name"]

    await ingest(db, tenant, "hi", external_id="6282223", contact_name=None, sent_at=at)
    assert await seen() == (at, "")
    # Within the minute the contact is not rewritten, unless it learns its name.
    await ingest(db, tenant, "hi", external_id="6282223", contact_name=None, sent_at=at + timedelta(seconds=30))
    assert await seen() == (at, "")
    await ingest(db, tenant, "hi", external_id="6282223", contact_name="Sari", sent_at=at + timedelta(seconds=40))
    assert await seen() == (at + timedelta(seconds=40), "Sari")
    await ingest(db, tenant, "hi", external_id="6282223", sent_at=at + timedelta(seconds=70))
    assert await seen() == (at + timedelta(seconds=40), "Sari")
    await ingest(db, tenant, "hi", external_id="6282223", sent_at=at + timedelta(minutes=2))
    assert await seen() == (at + timedelta(minutes=2), "Sari")
    # A late delivery of an older message never moves it back.
    await ingest(db, tenant, "hi", external_id="6282223", sent_at=at - timedelta(hours=1))
    assert await seen() == (at + timedelta(minutes=2), "Sari")


async def test_a_media_message_without_text_previews_its_type(
    client: AsyncTestClient, tenant: Tenant, db: Database
) -> None:
    result = await ingest(db, tenant, None, type="image", content={"media": {"url": "https://cdn.example.com/a.jpg"}})
    conv = await conversation(client, tenant, result.conversation_id)
    assert conv["last_message_preview"] == "[image]"
    message = (
        await client.get(f"/api/conversations/{result.conversation_id}/messages", headers=tenant.headers)
    ).json()["messages"][0]
    assert (message["type"], message["text"]) == ("image", None)
    assert message["content"] == {"media": {"url": "https://cdn.example.com/a.jpg"}}


async def test_a_resolved_conversation_reopens_with_a_status_changed_event(
    client: AsyncTestClient, tenant: Tenant, db: Database
) -> None:
    first = await ingest(db, tenant, "hello", external_id="6283333")
    await set_status(client, tenant, first.conversation_id, "resolved")
    before = len(await events(db, tenant))

    again = await ingest(db, tenant, "actually, one more thing", external_id="6283333")
    assert again.conversation_id == first.conversation_id
    assert again.conversation_created is False
    conv = await conversation(client, tenant, first.conversation_id)
    assert conv["status"] == "open"
    assert conv["status_changed_by"] is None  # the customer, not an agent, reopened it
    assert conv["message_count"] == 2

    new = (await events(db, tenant))[before:]
    assert [e["event_type"] for e in new] == ["status_changed", "message_received_inbound"]
    changed = new[0]["payload"]
    assert (changed["previous_status"], changed["status"]) == ("resolved", "open")
    assert changed["changed_by"] is None
    assert new[0]["source"] == "webhook"


async def test_a_closed_or_expired_conversation_is_left_and_a_new_one_opens(
    client: AsyncTestClient, tenant: Tenant, db: Database, database: str
) -> None:
    first = await ingest(db, tenant, "hello", external_id="6284444")
    await set_status(client, tenant, first.conversation_id, "closed")

    second = await ingest(db, tenant, "hello again", external_id="6284444")
    assert second.conversation_created is True
    assert second.conversation_id != first.conversation_id
    assert second.contact_id == first.contact_id
    closed = await conversation(client, tenant, first.conversation_id)
    assert (closed["status"], closed["message_count"]) == ("closed", 1)
    new_events = await events(db, tenant, second.conversation_id)
    assert [e["event_type"] for e in new_events] == ["conversation_created", "message_received_inbound"]
    assert new_events[0]["payload"]["contact_created"] is False

    admin = await asyncpg.connect(database)
    try:
        await admin.execute("UPDATE conversations SET status = 'expired' WHERE id = $1", second.conversation_id)
    finally:
        await admin.close()
    third = await ingest(db, tenant, "are you still there?", external_id="6284444")
    assert third.conversation_created is True
    assert third.conversation_id not in (first.conversation_id, second.conversation_id)
    assert (await counts(db, tenant))["conversations"] == 3
    assert (await conversation(client, tenant, second.conversation_id))["status"] == "expired"


async def test_a_redelivered_message_is_stored_once(client: AsyncTestClient, tenant: Tenant, db: Database) -> None:
    first = await ingest(db, tenant, "hello", external_id="6285555", provider_message_id="wamid.same")
    before = await counts(db, tenant)
    again = await ingest(db, tenant, "hello", external_id="6285555", provider_message_id="wamid.same")
    assert again.duplicate is True
    assert (again.message_id, again.conversation_id) == (first.message_id, first.conversation_id)
    assert again.event_ids == []
    assert await counts(db, tenant) == before
    conv = await conversation(client, tenant, first.conversation_id)
    assert (conv["message_count"], conv["unread_count"]) == (1, 1)
    # Provider ids are unique per channel: the same id on another channel is another message.
    other = await ingest(
        db, tenant, "hello", external_id="6285555", channel="instagram", provider_message_id="wamid.same"
    )
    assert other.duplicate is False
    assert other.message_id != first.message_id


async def test_messages_without_a_provider_id_are_each_stored(
    client: AsyncTestClient, tenant: Tenant, db: Database
) -> None:
    results = [await ingest(db, tenant, "ping", external_id="6286666", provider_message_id=None) for _ in range(3)]
    assert len({r.message_id for r in results}) == 3
    assert not any(r.duplicate for r in results)
    assert (await conversation(client, tenant, results[0].conversation_id))["message_count"] == 3


async def test_another_tenant_never_sees_the_ingested_message(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant, db: Database
) -> None:
    mine = await ingest(db, tenant, "private", external_id="6287777", provider_message_id="wamid.shared")
    # The same identity and provider id in another tenant is an unrelated message there.
    theirs = await ingest(db, other_tenant, "private", external_id="6287777", provider_message_id="wamid.shared")
    assert theirs.duplicate is False
    assert theirs.message_id != mine.message_id
    assert theirs.contact_id != mine.contact_id
    response = await client.get(f"/api/conversations/{mine.conversation_id}", headers=other_tenant.headers)
    assert response.status_code == 404
    assert (await counts(db, other_tenant))["messages"] == 1


async def test_ingestion_on_a_connection_serving_another_tenant_writes_only_its_own(
    tenant: Tenant, other_tenant: Tenant, settings: Settings
) -> None:
    """Ingestion borrows connections without setting their tenant: the function sets it for its
    own transaction only. One connection, so the same one serves both tenants in turn."""
    single = await Database.connect(settings.database_url, min_size=1, max_size=1)
    try:
        async with single.tenant(UUID(other_tenant.id)) as conn:
            assert await conn.fetchval("SELECT count(*) FROM messages") == 0
        mine = await ingest(single, tenant, "mine", external_id="6287778")
        assert (await counts(single, tenant))["messages"] == 1
        async with single.tenant(UUID(other_tenant.id)) as conn:
            assert await conn.fetchval("SELECT count(*) FROM messages") == 0
            assert await conn.fetchval("SELECT count(*) FROM messages WHERE id = $1", mine.message_id) == 0
    finally:
        await single.close()


# ------------------------------------------------------------------ concurrency


async def test_twenty_concurrent_deliveries_of_one_message_store_it_once(
    client: AsyncTestClient, tenant: Tenant, db: Database
) -> None:
    sent_at = datetime.now(UTC) - timedelta(seconds=5)
    results = await asyncio.gather(
        *[
            ingest(db, tenant, "hello?", external_id="6288888", provider_message_id="wamid.storm", sent_at=sent_at)
            for _ in range(20)
        ]
    )
    assert len({r.message_id for r in results}) == 1
    assert len({r.conversation_id for r in results}) == 1
    assert sum(not r.duplicate for r in results) == 1
    assert sum(r.conversation_created for r in results) == 1

    assert await counts(db, tenant) == {
        "contacts": 1,
        "identities": 1,
        "conversations": 1,
        "messages": 1,
        "events": 2,
    }
    conv = await conversation(client, tenant, results[0].conversation_id)
    assert (conv["message_count"], conv["unread_count"]) == (1, 1)
    assert [e["event_type"] for e in await events(db, tenant)] == ["conversation_created", "message_received_inbound"]
    winner = next(r for r in results if not r.duplicate)
    assert [e["id"] for e in await events(db, tenant)] == winner.event_ids


async def test_concurrent_first_messages_of_a_new_identity_make_one_contact(
    client: AsyncTestClient, tenant: Tenant, db: Database
) -> None:
    results = await asyncio.gather(
        *[ingest(db, tenant, f"message {i}", external_id="6289999", provider_message_id=f"wamid.{i}") for i in range(2)]
    )
    results += await asyncio.gather(
        *[
            ingest(db, tenant, f"message {i}", external_id="6289999", provider_message_id=f"wamid.{i}")
            for i in range(2, 10)
        ]
    )
    assert len({r.message_id for r in results}) == 10
    assert len({r.contact_id for r in results}) == 1
    assert len({r.conversation_id for r in results}) == 1
    assert sum(r.conversation_created for r in results) == 1
    state = await counts(db, tenant)
    assert (state["contacts"], state["identities"], state["conversations"], state["messages"]) == (1, 1, 1, 10)
    conv = await conversation(client, tenant, results[0].conversation_id)
    assert (conv["message_count"], conv["unread_count"]) == (10, 10)
    kinds = [e["event_type"] for e in await events(db, tenant)]
    assert kinds.count("conversation_created") == 1
    assert kinds.count("message_received_inbound") == 10


async def test_concurrent_first_sight_of_many_identities(client: AsyncTestClient, tenant: Tenant, db: Database) -> None:
    """Ten customers at once, each with two simultaneous messages: ten contacts, ten threads."""
    results = await asyncio.gather(
        *[
            ingest(db, tenant, "hi", external_id=f"62800000{n}", provider_message_id=f"wamid.{n}.{k}")
            for n in range(10)
            for k in range(2)
        ]
    )
    by_identity: dict[int, set[UUID]] = {}
    for index, result in enumerate(results):
        by_identity.setdefault(index // 2, set()).add(result.conversation_id)
    assert all(len(ids) == 1 for ids in by_identity.values())
    state = await counts(db, tenant)
    assert (state["contacts"], state["conversations"], state["messages"]) == (10, 10, 20)


# ------------------------------------------------------------------ event payloads


async def test_stored_payload_hashes_match_their_payloads(
    client: AsyncTestClient, tenant: Tenant, db: Database
) -> None:
    first = await ingest(db, tenant, "héllo — ünïcode ✓", external_id="6281010")
    await set_status(client, tenant, first.conversation_id, "resolved")
    await ingest(db, tenant, None, external_id="6281010", type="location", content={"latitude": 1.5, "longitude": 2})
    stored = await events(db, tenant)
    assert {e["event_type"] for e in stored} == {"conversation_created", "message_received_inbound", "status_changed"}
    for event in stored:
        assert event["payload_hash"] == fingerprint(event["payload_text"])
    # Different payloads, different hashes; the hash is usable to find an event by its payload.
    assert len({e["payload_hash"] for e in stored}) == len(stored)


async def test_the_same_payload_has_the_same_fingerprint_whoever_writes_it(
    client: AsyncTestClient, tenant: Tenant, db: Database
) -> None:
    first = await ingest(db, tenant, "hello", external_id="6281012")
    received = next(e for e in await events(db, tenant) if e["event_type"] == "message_received_inbound")
    # The same payload written from Python, its keys in another order, and one that differs.
    reordered = dict(reversed(list(received["payload"].items())))
    outbox = Outbox(UUID(tenant.id), source="test")
    outbox.add("message_received_inbound", first.conversation_id, first.contact_id, reordered)
    outbox.add("message_received_inbound", first.conversation_id, first.contact_id, {**reordered, "status": "x"})
    async with db.tenant(UUID(tenant.id)) as conn:
        same_id, other_id = await outbox.write(conn)
    by_id = {e["id"]: e for e in await events(db, tenant)}
    assert by_id[same_id]["payload_hash"] == received["payload_hash"]
    assert by_id[other_id]["payload_hash"] != received["payload_hash"]
    assert by_id[other_id]["payload_hash"] == fingerprint(by_id[other_id]["payload_text"])


async def test_event_payloads_carry_the_conversation_as_its_other_events_do(
    client: AsyncTestClient, tenant: Tenant, db: Database
) -> None:
    """Ingestion builds its payloads in SQL; they must keep the shape of the conversations area's
    snapshot, which every other event carries."""
    first = await ingest(db, tenant, "hello", external_id="6281013")
    await set_status(client, tenant, first.conversation_id, "resolved")
    await ingest(db, tenant, "again", external_id="6281013")
    (row,) = await fetch(db, tenant, "SELECT * FROM conversations WHERE id = $1", first.conversation_id)
    expected = msgspec.to_builtins(snapshot(row))
    stored = await events(db, tenant, first.conversation_id)
    reopened = [e for e in stored if e["event_type"] == "status_changed"][-1]["payload"]
    assert {k: reopened[k] for k in expected} == expected
    assert (reopened["previous_status"], reopened["status"]) == ("resolved", "open")
    last = stored[-1]["payload"]
    assert {k: last[k] for k in expected} == expected
    assert set(last) == set(expected) | {"message"}


# ------------------------------------------------------------------ a model of many messages

IDENTITIES = [("whatsapp", "620001"), ("whatsapp", "620002"), ("messenger", "620001")]

message_op = st.tuples(
    st.just("message"),
    st.integers(0, len(IDENTITIES) - 1),
    st.sampled_from(["text", "image"]),
    st.one_of(st.none(), st.integers(0, 5)),  # None: a fresh provider id; n: the n-th id seen so far
)
status_op = st.tuples(st.just("status"), st.integers(0, len(IDENTITIES) - 1), st.sampled_from(["resolved", "closed"]))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.one_of(message_op, message_op, status_op), min_size=1, max_size=12))
async def test_ingestion_matches_a_simple_model(client: AsyncTestClient, db: Database, ops: list[tuple]) -> None:
    tenant = await register(client)
    provider_ids: list[str] = []
    seen: dict[str, UUID] = {}  # provider id -> message id
    live: dict[int, UUID] = {}  # identity -> its live conversation
    model: dict[UUID, dict[str, Any]] = {}  # conversation -> expected state
    contacts: set[int] = set()
    expected_events = {"conversation_created": 0, "message_received_inbound": 0, "status_changed": 0}

    for op in ops:
        if op[0] == "status":
            _, who, status = op
            if who not in live:
                continue
            conversation_id = live[who]
            await set_status(client, tenant, conversation_id, status)
            if model[conversation_id]["status"] != status:
                expected_events["status_changed"] += 1
            model[conversation_id]["status"] = status
            model[conversation_id]["unread"] = 0  # resolving or closing clears what was unread
            if status == "closed":
                del live[who]
            continue

        _, who, kind, reuse = op
        channel, external_id = IDENTITIES[who]
        if reuse is not None and reuse < len(provider_ids):
            provider_id = provider_ids[reuse]
        else:
            provider_id = f"mid.{uuid4().hex}"
            provider_ids.append(provider_id)
        text = f"text {len(provider_ids)}" if kind == "text" else None
        result = await ingest(
            db,
            tenant,
            text,
            external_id=external_id,
            channel=channel,
            type=kind,
            provider_message_id=provider_id,
        )
        # Provider ids are per channel; a reused id on another channel is a new message.
        key = f"{channel}:{provider_id}"
        if key in seen:
            assert result.duplicate
            assert result.message_id == seen[key]
            continue
        assert not result.duplicate
        seen[key] = result.message_id
        contacts.add(IDENTITIES.index((channel, external_id)))
        if who in live:
            assert result.conversation_id == live[who]
            state = model[result.conversation_id]
            if state["status"] == "resolved":
                expected_events["status_changed"] += 1
                state["status"] = "open"
        else:
            assert result.conversation_created
            live[who] = result.conversation_id
            state = model[result.conversation_id] = {"status": "open", "messages": 0, "unread": 0}
            expected_events["conversation_created"] += 1
        state["messages"] += 1
        state["unread"] += 1
        state["preview"] = text or f"[{kind}]"
        expected_events["message_received_inbound"] += 1

    state = await counts(db, tenant)
    assert state["contacts"] == len(contacts)
    assert state["conversations"] == len(model)
    assert state["messages"] == len(seen)
    stored = await events(db, tenant)
    got = {kind: 0 for kind in expected_events}
    for event in stored:
        got[event["event_type"]] += 1
        assert event["payload_hash"] == fingerprint(event["payload_text"])
    assert got == expected_events
    for conversation_id, expected in model.items():
        conv = await conversation(client, tenant, conversation_id)
        assert conv["status"] == expected["status"]
        assert conv["message_count"] == expected["messages"]
        assert conv["unread_count"] == expected["unread"]
        assert conv["last_message_preview"] == expected["preview"]


# ------------------------------------------------------------------ deliveries of many messages


async def stored_by_identity(db: Database, tenant: Tenant) -> dict[tuple[str, str], Any]:
    """What each identity's thread holds: messages in order, counters, status and events."""
    rows = await fetch(
        db,
        tenant,
        """SELECT i.channel, i.external_id, c.status, c.message_count, c.unread_count, c.last_message_preview,
                  (SELECT array_agg(m.text ORDER BY m.created_at) FROM messages m WHERE m.conversation_id = c.id)
                      AS texts,
                  (SELECT array_agg(e.event_type ORDER BY e.created_at) FROM automation_events e
                    WHERE e.conversation_id = c.id) AS events
             FROM contact_identities i JOIN conversations c ON c.contact_id = i.contact_id""",
    )
    return {(r["channel"], r["external_id"]): dict(r) for r in rows}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ops=st.lists(st.tuples(st.integers(0, len(IDENTITIES) - 1), st.one_of(st.none(), st.integers(0, 3))), max_size=14),
    size=st.integers(1, 14),
)
async def test_a_delivery_of_many_stores_what_delivering_them_one_by_one_stores(
    client: AsyncTestClient, db: Database, ops: list[tuple[int, int | None]], size: int
) -> None:
    one_by_one, together = await register(client), await register(client)
    ids: dict[int, list[str]] = {who: [] for who in range(len(IDENTITIES))}
    messages = []  # (identity, provider id, text); a provider id comes again only from its own sender
    for n, (who, again) in enumerate(ops):
        if again is None or again >= len(ids[who]):
            ids[who].append(f"mid.{who}.{n}")
            again = len(ids[who]) - 1
        messages.append((who, ids[who][again], f"text {n}"))

    def for_tenant(tenant: Tenant, who: int, provider_id: str, text: str) -> InboundMessage:
        channel, external_id = IDENTITIES[who]
        return inbound_message(tenant, text, external_id=external_id, provider_message_id=provider_id, channel=channel)

    alone = [await ingest_inbound(db, for_tenant(one_by_one, *m)) for m in messages]
    batched: list[IngestResult] = []
    for start in range(0, len(messages), size):
        batched += await ingest_inbound_many(db, [for_tenant(together, *m) for m in messages[start : start + size]])

    assert [(r.duplicate, r.conversation_created, len(r.event_ids)) for r in batched] == [
        (r.duplicate, r.conversation_created, len(r.event_ids)) for r in alone
    ]
    # A redelivery in a batch points at the message its first delivery stored.
    first_stored = {}
    for (who, provider_id, _), result in zip(messages, batched, strict=True):
        first_stored.setdefault((who, provider_id), result.message_id)
        assert result.message_id == first_stored[(who, provider_id)]
    assert await stored_by_identity(db, together) == await stored_by_identity(db, one_by_one)


async def test_overlapping_deliveries_at_once_store_each_message_once(
    client: AsyncTestClient, tenant: Tenant, db: Database
) -> None:
    """Eight deliveries at once, each of ten messages picked from the same thirty-six in its own
    order: they contend for the same threads and race for the same provider ids."""
    rng = random.Random(3)
    pool = [(f"62899{who:03d}", f"wamid.{who}.{k}") for who in range(12) for k in range(3)]
    deliveries = [rng.sample(pool, 10) for _ in range(8)]
    results = await asyncio.gather(
        *(
            ingest_inbound_many(
                db, [inbound_message(tenant, pid, external_id=who, provider_message_id=pid) for who, pid in d]
            )
            for d in deliveries
        )
    )
    wanted = {pid: who for d in deliveries for who, pid in d}
    by_pid: dict[str, set[tuple[UUID, bool]]] = {}
    for delivery, delivered in zip(deliveries, results, strict=True):
        for (_, pid), result in zip(delivery, delivered, strict=True):
            by_pid.setdefault(pid, set()).add((result.message_id, result.duplicate))
    for pid, outcomes in by_pid.items():
        assert len({message_id for message_id, _ in outcomes}) == 1, pid
        assert (next(iter(outcomes))[0], False) in outcomes, pid  # stored once, by one delivery
    identities = set(wanted.values())
    assert await counts(db, tenant) == {
        "contacts": len(identities),
        "identities": len(identities),
        "conversations": len(identities),
        "messages": len(wanted),
        "events": len(identities) + len(wanted),
    }
    texts = await fetch(db, tenant, "SELECT text FROM messages")
    assert sorted(r["text"] for r in texts) == sorted(wanted)


async def test_a_delivery_is_of_one_tenant(tenant: Tenant, other_tenant: Tenant, db: Database) -> None:
    assert await ingest_inbound_many(db, []) == []
    with pytest.raises(ValueError, match="one tenant"):
        await ingest_inbound_many(
            db,
            [inbound_message(tenant, "a", external_id="6281"), inbound_message(other_tenant, "b", external_id="6281")],
        )
    assert (await counts(db, tenant))["messages"] == 0
    assert (await counts(db, other_tenant))["messages"] == 0


async def test_a_nul_character_from_a_provider_is_dropped_not_refused(
    client: AsyncTestClient, tenant: Tenant, db: Database
) -> None:
    """Neither text nor jsonb can hold NUL; refusing would refuse every redelivery too."""
    result = await ingest(
        db,
        tenant,
        "hel\x00lo",
        external_id="628\x003456",
        contact_name="Bu\x00di",
        provider_message_id="wamid.\x00nul",
        type="location",
        content={"name": "Toko\x00", "nested": [{"k\x00": "v\x00"}], "note": "a literal \\u0000 stays"},
    )
    (message,) = await fetch(db, tenant, "SELECT text, content, provider_message_id FROM messages")
    assert (message["text"], message["provider_message_id"]) == ("hello", "wamid.nul")
    assert message["content"] == {"name": "Toko", "nested": [{"k": "v"}], "note": "a literal \\u0000 stays"}
    (identity,) = await fetch(db, tenant, "SELECT external_id FROM contact_identities")
    assert identity["external_id"] == "6283456"
    again = await ingest(db, tenant, "hel\x00lo", external_id="628\x003456", provider_message_id="wamid.\x00nul")
    assert again.duplicate
    assert again.message_id == result.message_id


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"channel": "fax"}, "unknown channel 'fax'"),
        ({"type": "hologram"}, "unknown message type 'hologram'"),
        ({"external_id": " \x00 "}, "external_id"),
    ],
)
async def test_what_no_channel_may_send_is_refused_and_stores_nothing(
    tenant: Tenant, db: Database, change: dict[str, str], complaint: str
) -> None:
    good = inbound_message(tenant, "fine", external_id="6281")
    bad = inbound_message(tenant, "bad", **{"external_id": "6282", **change})
    with pytest.raises(ValueError, match=complaint):
        await ingest_inbound_many(db, [good, bad])
    assert await counts(db, tenant) == {"contacts": 0, "identities": 0, "conversations": 0, "messages": 0, "events": 0}


async def test_deliveries_reaching_one_sender_through_two_accounts_in_opposite_orders_do_not_deadlock(
    tenant: Tenant, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Threads are locked in one order (sender, then account) whatever order a delivery holds
    them in; a deadlock would show as deliveries falling back to one message at a time."""
    from omnistream.messages import service

    alone = []

    async def one_at_a_time(db: Database, message: InboundMessage) -> IngestResult:
        alone.append(message)
        return await ingest_inbound_many(db, [message])

    monkeypatch.setattr(service, "ingest_inbound", one_at_a_time)
    first, second = UUID(int=1), UUID(int=2)

    def via(account: UUID, n: int) -> InboundMessage:
        return inbound_message(
            tenant, "hi", external_id="6285550", provider_message_id=f"m.{account.int}.{n}", account_id=account
        )

    for n in range(0, 10, 2):
        await asyncio.gather(
            ingest_inbound_many(db, [via(first, n), via(second, n)]),
            ingest_inbound_many(db, [via(second, n + 1), via(first, n + 1)]),
        )
    assert alone == []
    assert (await counts(db, tenant))["messages"] == 20
    assert (await counts(db, tenant))["conversations"] == 2


async def test_ingestion_does_not_wait_for_a_note_being_written_to_the_conversation(
    client: AsyncTestClient, tenant: Tenant, db: Database
) -> None:
    first = await ingest(db, tenant, "hello", external_id="6285551")
    async with db.tenant(UUID(tenant.id)) as conn:
        # An agent's transaction adds a note and has not committed yet.
        await conn.execute(
            "INSERT INTO notes (tenant_id, conversation_id, author_id, body) VALUES ($1, $2, $3, 'pending')",
            UUID(tenant.id),
            first.conversation_id,
            UUID(tenant.admin_id),
        )
        second = await asyncio.wait_for(ingest(db, tenant, "again", external_id="6285551"), timeout=5)
    assert second.conversation_id == first.conversation_id
