"""Scheduled messages: agents schedule, list and cancel them; the worker sends each at its time once."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from omnistream.config import Settings
from omnistream.db import Database
from omnistream.errors import Conflict
from omnistream.scheduled_messages import service
from omnistream.scheduled_messages.schemas import ScheduledMessageCreate
from omnistream.security.principal import Actor
from tests.conftest import Tenant, create_agent, headers_of, ingest, problem
from tests.wa_template_helpers import approved_template

NOWHERE = "00000000-0000-4000-8000-000000000000"


def at(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def later(minutes: float = 10) -> str:
    return at(datetime.now(UTC) + timedelta(minutes=minutes))


def path(conversation_id: Any) -> str:
    return f"/api/conversations/{conversation_id}/scheduled-messages"


async def conversation(db: Database, tenant: Tenant) -> UUID:
    return (await ingest(db, tenant, "hello")).conversation_id


async def schedule(
    client: AsyncTestClient, who: Tenant | dict[str, Any], conversation_id: Any, **fields: Any
) -> dict[str, Any]:
    body = {"text": "Your order shipped", "send_at": later()} | fields
    response = await client.post(path(conversation_id), json=body, headers=headers_of(who))
    assert response.status_code == 201, response.text
    return response.json()


async def listing(client: AsyncTestClient, who: Tenant | dict[str, Any], conversation_id: Any, **params: Any) -> Any:
    response = await client.get(path(conversation_id), params=params, headers=headers_of(who))
    assert response.status_code == 200, response.text
    return response.json()


async def execute(database: str, sql: str, *args: Any) -> None:
    conn = await asyncpg.connect(database)
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


async def outbound_texts(database: str, conversation_id: Any) -> list[tuple[str, str, UUID | None]]:
    conn = await asyncpg.connect(database)
    try:
        rows = await conn.fetch(
            "SELECT text, sender_type, sender_agent_id FROM messages "
            "WHERE conversation_id = $1 AND direction = 'outbound' ORDER BY created_at",
            UUID(str(conversation_id)),
        )
        return [(r["text"], r["sender_type"], r["sender_agent_id"]) for r in rows]
    finally:
        await conn.close()


async def test_a_scheduled_message_goes_out_at_its_time_once_as_its_agent(
    client: AsyncTestClient, db: Database, arq: Any, tenant: Tenant, database: str
) -> None:
    conversation_id = await conversation(db, tenant)
    send_at = datetime.now(UTC) + timedelta(minutes=5)
    scheduled = await schedule(client, tenant, conversation_id, send_at=at(send_at))
    assert scheduled["status"] == "pending"
    assert scheduled["message"]["text"] == "Your order shipped"
    assert scheduled["created_by"] == tenant.admin_id
    assert scheduled["message_id"] is None

    assert await service.send_due(db, arq, send_at - timedelta(seconds=1)) == 0
    assert await outbound_texts(database, conversation_id) == []

    assert await service.send_due(db, arq, send_at) == 1
    assert await outbound_texts(database, conversation_id) == [("Your order shipped", "agent", UUID(tenant.admin_id))]
    (sent,) = (await listing(client, tenant, conversation_id))["scheduled_messages"]
    assert sent["status"] == "sent"
    assert sent["message_id"] is not None
    assert sent["processed_at"] is not None
    history = await client.get(f"/api/conversations/{conversation_id}/messages", headers=tenant.headers)
    assert [m["id"] for m in history.json()["messages"] if m["direction"] == "outbound"] == [sent["message_id"]]
    # The delivery job is queued for the delivery worker.
    assert await arq.exists(f"arq:job:deliver:{sent['message_id']}")

    assert await service.send_due(db, arq, send_at + timedelta(hours=1)) == 0
    assert len(await outbound_texts(database, conversation_id)) == 1


async def test_only_due_messages_go_and_in_order_of_their_time(
    client: AsyncTestClient, db: Database, arq: Any, tenant: Tenant, database: str
) -> None:
    conversation_id = await conversation(db, tenant)
    now = datetime.now(UTC)
    await schedule(client, tenant, conversation_id, text="second", send_at=at(now + timedelta(minutes=20)))
    await schedule(client, tenant, conversation_id, text="first", send_at=at(now + timedelta(minutes=10)))
    await schedule(client, tenant, conversation_id, text="not yet", send_at=at(now + timedelta(days=2)))
    assert await service.send_due(db, arq, now + timedelta(minutes=30)) == 2
    assert [t for t, _, _ in await outbound_texts(database, conversation_id)] == ["first", "second"]
    pending = await listing(client, tenant, conversation_id, status="pending")
    assert [m["message"]["text"] for m in pending["scheduled_messages"]] == ["not yet"]
    assert pending["total"] == 1
    sent = await listing(client, tenant, conversation_id, status="sent", sort_order="asc")
    assert [m["message"]["text"] for m in sent["scheduled_messages"]] == ["first", "second"]


async def test_the_list_pages_by_send_time(client: AsyncTestClient, db: Database, tenant: Tenant) -> None:
    conversation_id = await conversation(db, tenant)
    for minutes in (30, 10, 20):
        await schedule(client, tenant, conversation_id, text=f"in {minutes}", send_at=later(minutes))
    first = await listing(client, tenant, conversation_id, per_page=2, sort_order="asc")
    assert [m["message"]["text"] for m in first["scheduled_messages"]] == ["in 10", "in 20"]
    assert first["total"] == 3
    rest = await listing(client, tenant, conversation_id, per_page=2, sort_order="asc", cursor=first["next_cursor"])
    assert [m["message"]["text"] for m in rest["scheduled_messages"]] == ["in 30"]
    assert rest["next_cursor"] is None


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"text": "hi", "send_at": "tomorrow"}, 400, "send_at"),
        ({"text": "hi"}, 400, "send_at"),
        ({"text": "hi", "send_at": "2030-02-30T10:00:00Z"}, 422, "send_at"),
        ({"text": "hi", "send_at": "2030-01-01T10:00:00Z", "colour": "red"}, 400, "colour"),
        ({"text": "", "send_at": "2030-01-01T10:00:00Z"}, 400, "text"),
        ({"type": "template", "text": "hi", "send_at": "SOON"}, 400, "send_at"),
    ],
)
async def test_malformed_schedules_are_refused_and_nothing_is_stored(
    client: AsyncTestClient, db: Database, tenant: Tenant, body: dict[str, Any], status: int, field: str
) -> None:
    conversation_id = await conversation(db, tenant)
    body = problem(await client.post(path(conversation_id), json=body, headers=tenant.headers), status)
    assert field in str(body)
    assert (await listing(client, tenant, conversation_id))["total"] == 0


async def test_send_at_must_be_a_minute_to_a_year_ahead(client: AsyncTestClient, db: Database, tenant: Tenant) -> None:
    conversation_id = await conversation(db, tenant)
    now = datetime.now(UTC)
    for too_soon in (now - timedelta(hours=1), now + timedelta(seconds=30)):
        body = {"text": "hi", "send_at": at(too_soon)}
        refused = problem(await client.post(path(conversation_id), json=body, headers=tenant.headers), 422)
        assert "at least 60 seconds ahead" in refused["detail"]
    body = {"text": "hi", "send_at": at(now + timedelta(days=366))}
    refused = problem(await client.post(path(conversation_id), json=body, headers=tenant.headers), 422)
    assert "at most a year" in refused["detail"]
    assert (await listing(client, tenant, conversation_id))["total"] == 0
    # Just inside both bounds is accepted.
    await schedule(client, tenant, conversation_id, send_at=at(now + timedelta(seconds=90)))
    await schedule(client, tenant, conversation_id, send_at=at(now + timedelta(days=364)))
    assert (await listing(client, tenant, conversation_id))["total"] == 2


async def test_the_minimum_lead_is_a_setting(db: Database, settings: Settings, tenant: Tenant) -> None:
    conversation_id = await conversation(db, tenant)
    actor = await admin_actor(db, tenant)
    now = datetime.now(UTC)
    data = ScheduledMessageCreate(text="soon", send_at=at(now + timedelta(seconds=5)))
    relaxed = msgspec.structs.replace(settings, scheduled_message_min_lead_seconds=2)
    scheduled = await service.schedule(db, relaxed, actor, conversation_id, data, now=now)
    assert scheduled.status == "pending"


async def admin_actor(db: Database, tenant: Tenant) -> Actor:
    from omnistream.auth import service as auth

    async with db.tenant(UUID(tenant.id)) as conn:
        actor = await auth.active_actor_in(conn, UUID(tenant.id), UUID(tenant.admin_id))
    assert actor is not None
    return actor


async def test_a_message_that_does_not_fit_its_type_is_refused(
    client: AsyncTestClient, db: Database, tenant: Tenant
) -> None:
    conversation_id = await conversation(db, tenant)
    bodies = [
        {"type": "image", "text": "caption only", "send_at": later()},
        {"type": "text", "send_at": later()},
        {"type": "template", "template": {"name": "missing_one", "language": "en"}, "send_at": later()},
        {"type": "text", "text": "hi", "location": {"latitude": 1, "longitude": 2}, "send_at": later()},
    ]
    for body in bodies:
        problem(await client.post(path(conversation_id), json=body, headers=tenant.headers), 422)
    assert (await listing(client, tenant, conversation_id))["total"] == 0


async def test_a_closed_conversation_is_refused_now_and_at_send_time(
    client: AsyncTestClient, db: Database, arq: Any, tenant: Tenant, database: str
) -> None:
    conversation_id = await conversation(db, tenant)
    scheduled = await schedule(client, tenant, conversation_id)
    closed = await client.patch(
        f"/api/conversations/{conversation_id}/status", json={"status": "closed"}, headers=tenant.headers
    )
    assert closed.status_code == 200, closed.text
    problem(
        await client.post(path(conversation_id), json={"text": "x", "send_at": later()}, headers=tenant.headers), 409
    )

    assert await service.send_due(db, arq, datetime.now(UTC) + timedelta(hours=1)) == 0
    (failed,) = (await listing(client, tenant, conversation_id))["scheduled_messages"]
    assert failed["id"] == scheduled["id"]
    assert failed["status"] == "failed"
    assert "closed" in failed["failure_reason"]
    assert failed["message_id"] is None
    assert await outbound_texts(database, conversation_id) == []


async def test_whatsapps_24_hour_window_is_checked_at_send_time(
    client: AsyncTestClient, db: Database, arq: Any, tenant: Tenant, database: str
) -> None:
    conversation_id = await conversation(db, tenant)
    await schedule(client, tenant, conversation_id)
    # The customer's last message is more than a day old when the message falls due.
    await execute(
        database,
        "UPDATE conversations SET last_inbound_at = now() - interval '25 hours' WHERE id = $1",
        conversation_id,
    )
    assert await service.send_due(db, arq, datetime.now(UTC) + timedelta(hours=1)) == 0
    (failed,) = (await listing(client, tenant, conversation_id, status="failed"))["scheduled_messages"]
    assert "24 hours" in failed["failure_reason"]
    assert await outbound_texts(database, conversation_id) == []


async def test_a_suspended_agents_message_fails(
    client: AsyncTestClient, db: Database, arq: Any, tenant: Tenant
) -> None:
    agent = await create_agent(client, tenant)
    conversation_id = await conversation(db, tenant)
    await schedule(client, agent, conversation_id)
    suspended = await client.patch(f"/api/agents/{agent['id']}", json={"status": "suspended"}, headers=tenant.headers)
    assert suspended.status_code == 200, suspended.text
    assert await service.send_due(db, arq, datetime.now(UTC) + timedelta(hours=1)) == 0
    (failed,) = (await listing(client, tenant, conversation_id))["scheduled_messages"]
    assert failed["status"] == "failed"
    assert "no longer active" in failed["failure_reason"]


async def test_cancel_a_pending_message_and_not_twice(
    client: AsyncTestClient, db: Database, arq: Any, tenant: Tenant, database: str
) -> None:
    conversation_id = await conversation(db, tenant)
    scheduled = await schedule(client, tenant, conversation_id)
    cancelled = await client.delete(f"/api/scheduled-messages/{scheduled['id']}", headers=tenant.headers)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json() == {"message": "scheduled message cancelled", "id": scheduled["id"]}
    (row,) = (await listing(client, tenant, conversation_id, status="cancelled"))["scheduled_messages"]
    assert row["cancelled_by"] == tenant.admin_id
    again = problem(await client.delete(f"/api/scheduled-messages/{scheduled['id']}", headers=tenant.headers), 409)
    assert "cancelled" in again["detail"]
    # A cancelled message never goes.
    assert await service.send_due(db, arq, datetime.now(UTC) + timedelta(hours=1)) == 0
    assert await outbound_texts(database, conversation_id) == []


async def test_a_sent_message_cannot_be_cancelled(
    client: AsyncTestClient, db: Database, arq: Any, tenant: Tenant
) -> None:
    conversation_id = await conversation(db, tenant)
    scheduled = await schedule(client, tenant, conversation_id)
    assert await service.send_due(db, arq, datetime.now(UTC) + timedelta(hours=1)) == 1
    refused = problem(await client.delete(f"/api/scheduled-messages/{scheduled['id']}", headers=tenant.headers), 409)
    assert "sent" in refused["detail"]


async def test_cancel_and_send_racing_end_in_exactly_one_of_them(
    client: AsyncTestClient, db: Database, arq: Any, tenant: Tenant, database: str
) -> None:
    conversation_id = await conversation(db, tenant)
    actor = await admin_actor(db, tenant)
    outcomes = {"sent": 0, "cancelled": 0}
    for _ in range(25):
        scheduled = await schedule(client, tenant, conversation_id, text=f"race {uuid4().hex[:6]}")
        scheduled_id = UUID(scheduled["id"])
        due = datetime.now(UTC) + timedelta(hours=1)
        sent, cancel = await asyncio.gather(
            service.send_due(db, arq, due), service.cancel(db, actor, scheduled_id), return_exceptions=True
        )
        (row,) = (await listing(client, tenant, conversation_id, per_page=1))["scheduled_messages"]
        texts = [t for t, _, _ in await outbound_texts(database, conversation_id)]
        if cancel is None:
            assert row["status"] == "cancelled"
            assert row["message_id"] is None
            assert scheduled["message"]["text"] not in texts
            # Skipped while the cancel held it; a later sweep finds nothing either.
            assert await service.send_due(db, arq, due) == 0
            outcomes["cancelled"] += 1
        else:
            assert isinstance(cancel, Conflict), cancel
            assert sent == 1
            assert row["status"] == "sent"
            assert row["message_id"] is not None
            assert texts.count(scheduled["message"]["text"]) == 1
            outcomes["sent"] += 1
    assert sum(outcomes.values()) == 25


async def test_wrong_role_and_permission_are_403(client: AsyncTestClient, db: Database, tenant: Tenant) -> None:
    conversation_id = await conversation(db, tenant)
    scheduled = await schedule(client, tenant, conversation_id)
    role = await client.post(
        "/api/roles",
        json={"name": f"Reader {uuid4().hex[:6]}", "base_role": "agent", "permissions": ["conversations.read"]},
        headers=tenant.headers,
    )
    assert role.status_code == 201, role.text
    reader = await create_agent(client, tenant, role_id=role.json()["id"])
    body = {"text": "hi", "send_at": later()}
    problem(await client.post(path(conversation_id), json=body, headers=reader["headers"]), 403)
    problem(await client.delete(f"/api/scheduled-messages/{scheduled['id']}", headers=reader["headers"]), 403)
    # Reading needs only conversations.read.
    assert (await client.get(path(conversation_id), headers=reader["headers"])).status_code == 200
    assert (await listing(client, tenant, conversation_id, status="pending"))["total"] == 1


async def test_another_tenants_conversation_and_message_are_404(
    client: AsyncTestClient, db: Database, tenant: Tenant, other_tenant: Tenant
) -> None:
    conversation_id = await conversation(db, tenant)
    scheduled = await schedule(client, tenant, conversation_id)
    body = {"text": "hi", "send_at": later()}
    problem(await client.post(path(conversation_id), json=body, headers=other_tenant.headers), 404)
    problem(await client.get(path(conversation_id), headers=other_tenant.headers), 404)
    problem(await client.delete(f"/api/scheduled-messages/{scheduled['id']}", headers=other_tenant.headers), 404)
    problem(await client.delete(f"/api/scheduled-messages/{NOWHERE}", headers=tenant.headers), 404)
    problem(await client.post(path(NOWHERE), json=body, headers=tenant.headers), 404)
    assert (await listing(client, tenant, conversation_id, status="pending"))["total"] == 1


async def test_a_bad_status_filter_is_400(client: AsyncTestClient, db: Database, tenant: Tenant) -> None:
    conversation_id = await conversation(db, tenant)
    problem(await client.get(path(conversation_id), params={"status": "gone"}, headers=tenant.headers), 400)


async def test_a_template_goes_out_past_the_24_hour_window(
    client: AsyncTestClient, db: Database, arq: Any, tenant: Tenant, database: str
) -> None:
    conversation_id = await conversation(db, tenant)
    template = {"name": "follow_up", "language": "en_US"}
    # Unknown (or unapproved) templates are refused when scheduled, not at their time.
    body = {"type": "template", "template": template, "send_at": later()}
    problem(await client.post(path(conversation_id), json=body, headers=tenant.headers), 422)
    await approved_template(database, tenant.id, "follow_up", "en_US")
    scheduled = await schedule(client, tenant, conversation_id, type="template", template=template, text=None)
    assert scheduled["message"]["template"]["name"] == "follow_up"
    await execute(
        database,
        "UPDATE conversations SET last_inbound_at = now() - interval '3 days' WHERE id = $1",
        conversation_id,
    )
    assert await service.send_due(db, arq, datetime.now(UTC) + timedelta(hours=1)) == 1
    (sent,) = (await listing(client, tenant, conversation_id, status="sent"))["scheduled_messages"]
    conn = await asyncpg.connect(database)
    try:
        message = await conn.fetchrow("SELECT type, content FROM messages WHERE id = $1", UUID(sent["message_id"]))
    finally:
        await conn.close()
    assert message["type"] == "template"


async def test_due_messages_are_found_through_the_index_of_pending_ones(database: str, tenant: Tenant) -> None:
    conn = await asyncpg.connect(database)
    try:
        conversation_id = await conn.fetchval(
            "INSERT INTO contacts (tenant_id, name) VALUES ($1, 'C') RETURNING id", UUID(tenant.id)
        )
        conversation_id = await conn.fetchval(
            "INSERT INTO conversations (tenant_id, contact_id, channel) VALUES ($1, $2, 'whatsapp') RETURNING id",
            UUID(tenant.id),
            conversation_id,
        )
        # Many that went, a few that wait: the claim reads the few.
        await conn.execute(
            """INSERT INTO scheduled_messages (tenant_id, conversation_id, body, send_at, status, failure_reason,
                                               created_by)
               SELECT $1, $2, '{}', now() - n * interval '1 minute', 'failed', 'x', $3
                 FROM generate_series(1, 5000) n""",
            UUID(tenant.id),
            conversation_id,
            UUID(tenant.admin_id),
        )
        await conn.execute("ANALYZE scheduled_messages")
        claim = service.repository.queries.claim_due.sql
        plan = await conn.fetchval(
            f"EXPLAIN (FORMAT JSON) {claim.replace(':tenant_id', '$1').replace(':now', '$2')}",
            UUID(tenant.id),
            datetime.now(UTC),
        )
        # Either index of pending rows serves; the 5000 that went are never read.
        assert re.search(r'"Index Name": "scheduled_messages_(tenant_)?due_idx"', plan)
        assert "Seq Scan" not in plan
        sweep = await conn.fetchval(
            "EXPLAIN (FORMAT JSON) SELECT DISTINCT tenant_id FROM scheduled_messages "
            "WHERE status = 'pending' AND send_at <= $1",
            datetime.now(UTC),
        )
        assert '"Index Name": "scheduled_messages_due_idx"' in sweep
        assert "Seq Scan" not in sweep
    finally:
        await conn.close()
