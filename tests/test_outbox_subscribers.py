"""The outbox beyond automation rules: the events agents' sends and assignments write, and the
subscribers (SLA clocks, outgoing webhooks) fed in the transaction that marks events done."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import pytest
from arq import ArqRedis
from arq.jobs import Job, JobStatus
from litestar.testing import AsyncTestClient

from omnistream.automation_events import subscribers
from omnistream.automation_events.processing import Claim, Processor
from omnistream.db import Database
from tests.automation_helpers import events_of, process_all
from tests.conftest import Tenant, create_agent, ingest


async def test_an_agents_reply_is_a_message_sent_event(client: AsyncTestClient, tenant: Tenant, db: Database) -> None:
    inbound = await ingest(db, tenant, "hello")
    response = await client.post(
        f"/api/conversations/{inbound.conversation_id}/messages",
        json={"type": "text", "text": "Hi, how can I help?"},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    [sent] = [e for e in await events_of(db, tenant) if e["event_type"] == "message_sent"]
    assert sent["conversation_id"] == inbound.conversation_id
    assert sent["source"] == "api"
    payload = sent["payload"]
    assert (payload["message"]["id"], payload["message"]["text"]) == (response.json()["id"], "Hi, how can I help?")
    assert (payload["sender_type"], payload["sender_agent_id"]) == ("agent", tenant.admin_id)
    assert payload["channel"] == "whatsapp"


async def test_an_assignment_is_an_event_and_assigning_the_same_agent_again_is_not(
    client: AsyncTestClient, tenant: Tenant, db: Database
) -> None:
    agent = await create_agent(client, tenant)
    inbound = await ingest(db, tenant, "hello")
    url = f"/api/conversations/{inbound.conversation_id}/assign"
    for _ in range(2):
        response = await client.patch(url, json={"agent_id": agent["id"]}, headers=tenant.headers)
        assert response.status_code == 200, response.text
    [assigned] = [e for e in await events_of(db, tenant) if e["event_type"] == "conversation_assigned"]
    payload = assigned["payload"]
    assert (payload["assigned_agent_id"], payload["previous_agent_id"]) == (agent["id"], None)
    assert payload["assigned_by"] == tenant.admin_id

    assert (await client.patch(url, json={"agent_id": None}, headers=tenant.headers)).status_code == 200
    unassigned = [e for e in await events_of(db, tenant) if e["event_type"] == "conversation_assigned"][-1]
    assert (unassigned["payload"]["assigned_agent_id"], unassigned["payload"]["previous_agent_id"]) == (
        None,
        agent["id"],
    )


@pytest.fixture
def fed(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A subscriber that records what it is fed and can be told to fail for one conversation or to
    queue a message."""
    state: dict[str, Any] = {"seen": [], "fail_for": None, "queue": []}

    async def subscriber(conn: Any, tenant_id: UUID, events: Sequence[Claim]) -> list[UUID]:
        if any(e.conversation_id == state["fail_for"] for e in events):
            raise RuntimeError("cannot take this one")
        state["seen"].extend((e.event_type, e.conversation_id) for e in events)
        return state["queue"]

    monkeypatch.setattr(subscribers, "subscribers", lambda: (subscriber,))
    return state


async def test_subscribers_get_every_processed_event_once(
    tenant: Tenant, db: Database, arq: ArqRedis, fed: dict[str, Any]
) -> None:
    first = await ingest(db, tenant, "hello")
    second = await ingest(db, tenant, "hello again", contact_phone="+15550000002")
    await process_all(db, arq)
    assert sorted(fed["seen"], key=str) == sorted(
        [
            ("conversation_created", first.conversation_id),
            ("message_received_inbound", first.conversation_id),
            ("conversation_created", second.conversation_id),
            ("message_received_inbound", second.conversation_id),
        ],
        key=str,
    )
    assert await process_all(db, arq) == 0  # nothing is fed twice


async def test_an_event_a_subscriber_cannot_take_is_retried_alone(
    tenant: Tenant, db: Database, arq: ArqRedis, fed: dict[str, Any]
) -> None:
    good = await ingest(db, tenant, "hello")
    bad = await ingest(db, tenant, "hello again", contact_phone="+15550000002")
    fed["fail_for"] = bad.conversation_id
    assert await Processor(db, arq).process_due() == 4
    statuses = {(e["conversation_id"], e["event_type"]): e for e in await events_of(db, tenant)}
    assert {k[1] for k in statuses if k[0] == good.conversation_id} == {
        "conversation_created",
        "message_received_inbound",
    }
    assert all(e["status"] == "done" for k, e in statuses.items() if k[0] == good.conversation_id)
    failing = [e for k, e in statuses.items() if k[0] == bad.conversation_id]
    assert [(e["status"], e["attempts"]) for e in failing] == [("pending", 1), ("pending", 1)]
    assert all("cannot take this one" in e["error"] for e in failing)
    assert {c for _, c in fed["seen"]} == {good.conversation_id}


async def test_messages_a_subscriber_queued_are_enqueued_after_commit(
    client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis, fed: dict[str, Any]
) -> None:
    inbound = await ingest(db, tenant, "hello")
    reply = await client.post(
        f"/api/conversations/{inbound.conversation_id}/messages",
        json={"type": "text", "text": "queued by a subscriber, say"},
        headers=tenant.headers,
    )
    message_id = UUID(reply.json()["id"])
    await arq.delete(f"arq:job:deliver:{message_id}")  # as if the API's own nudge were lost
    await arq.zrem(arq.default_queue_name, f"deliver:{message_id}")
    assert await Job(f"deliver:{message_id}", arq, _queue_name=arq.default_queue_name).status() == JobStatus.not_found
    fed["queue"] = [message_id]
    await process_all(db, arq)
    assert await Job(f"deliver:{message_id}", arq, _queue_name=arq.default_queue_name).status() == JobStatus.queued
