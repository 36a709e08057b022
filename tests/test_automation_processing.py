"""The worker's processing of automation events: matching, acting, recording runs, retrying."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from arq import ArqRedis
from litestar.testing import AsyncTestClient

from omnistream.automation_events import processing
from omnistream.automation_events.processing import Processor
from omnistream.db import Database
from tests.automation_helpers import events_of, make_rule, process_all, runs_of
from tests.conftest import Tenant, create_agent, ingest


async def conversation(client: AsyncTestClient, tenant: Tenant, conversation_id: UUID) -> dict[str, Any]:
    response = await client.get(f"/api/conversations/{conversation_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def messages(client: AsyncTestClient, tenant: Tenant, conversation_id: UUID) -> list[dict[str, Any]]:
    response = await client.get(
        f"/api/conversations/{conversation_id}/messages", params={"sort_order": "asc"}, headers=tenant.headers
    )
    return response.json()["messages"]


async def notes(client: AsyncTestClient, tenant: Tenant, conversation_id: UUID) -> list[dict[str, Any]]:
    response = await client.get(f"/api/conversations/{conversation_id}/notes", headers=tenant.headers)
    return response.json()["notes"]


REFUND = {"message_contains_any": ["refund"]}


async def test_a_matching_rule_acts_and_its_run_says_what_it_did(
    client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis
) -> None:
    rule_id = await make_rule(
        db,
        tenant,
        "message_received_inbound",
        [
            {"type": "add_tags", "tags": ["Refund"]},
            {"type": "set_priority", "priority": "high"},
            {"type": "send_message", "text": "Hi {{contact.name}}, we are on it."},
            {"type": "add_note", "text": "Asked about: {{message.text}}"},
        ],
        name="Refunds",
        conditions=REFUND,
    )
    hit = await ingest(db, tenant, "I want a refund!", contact_name="Dewi")
    miss = await ingest(db, tenant, "where is my parcel?")
    assert await process_all(db, arq) >= 4  # created + inbound for each, then what the actions caused

    after = await conversation(client, tenant, hit.conversation_id)
    assert (after["tags"], after["priority"]) == (["refund"], "high")
    [reply] = [m for m in await messages(client, tenant, hit.conversation_id) if m["direction"] == "outbound"]
    assert (reply["text"], reply["sender_type"], reply["status"]) == ("Hi Dewi, we are on it.", "automation", "queued")
    [note] = await notes(client, tenant, hit.conversation_id)
    assert (note["body"], note["author_type"], note["author_id"]) == (
        "Asked about: I want a refund!",
        "automation",
        None,
    )
    untouched = await conversation(client, tenant, miss.conversation_id)
    assert (untouched["tags"], untouched["priority"]) == ([], "normal")

    [run] = await runs_of(db, tenant)
    assert (run["rule_id"], run["rule_name"], run["matched"], run["executed"]) == (rule_id, "Refunds", True, True)
    assert run["conversation_id"] == hit.conversation_id
    assert run["result"]["outcome"] == "executed"
    assert [a["type"] for a in run["result"]["actions"]] == ["add_tags", "set_priority", "send_message", "add_note"]
    assert all(a["ok"] for a in run["result"]["actions"])
    assert run["rule_snapshot"]["conditions"] == REFUND
    inbound_events = [e for e in await events_of(db, tenant) if e["event_type"] == "message_received_inbound"]
    assert {e["status"] for e in await events_of(db, tenant)} == {"done"}
    assert run["event_id"] in {e["id"] for e in inbound_events}


async def test_rules_run_by_priority_and_stop_on_match_ends_the_evaluation(
    client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis
) -> None:
    low = await make_rule(db, tenant, "conversation_created", [{"type": "add_tags", "tags": ["low"]}], priority=1)
    high = await make_rule(
        db, tenant, "conversation_created", [{"type": "add_tags", "tags": ["high"]}], priority=10, stop_on_match=True
    )
    first = await ingest(db, tenant, "hello")
    await process_all(db, arq)
    assert (await conversation(client, tenant, first.conversation_id))["tags"] == ["high"]
    assert [r["rule_id"] for r in await runs_of(db, tenant)] == [high]

    # Without the stop, both run, the higher priority first.
    async with db.tenant(UUID(tenant.id)) as conn:
        await conn.execute("UPDATE automation_rules SET stop_on_match = false WHERE id = $1", high)
    second = await ingest(db, tenant, "hello")
    await process_all(db, arq)
    assert (await conversation(client, tenant, second.conversation_id))["tags"] == ["high", "low"]
    assert [r["rule_id"] for r in await runs_of(db, tenant, conversation_id=second.conversation_id)] == [high, low]


async def test_a_cooldown_holds_a_rule_back_for_the_conversation(
    client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis
) -> None:
    await make_rule(db, tenant, "message_received_inbound", [{"type": "add_note", "text": "seen"}], cooldown_secs=3600)
    first = await ingest(db, tenant, "one", external_id="628100")
    await process_all(db, arq)
    await ingest(db, tenant, "two", external_id="628100")
    await process_all(db, arq)
    assert len(await notes(client, tenant, first.conversation_id)) == 1
    runs = await runs_of(db, tenant)
    assert [(r["executed"], r["result"]["outcome"]) for r in runs] == [(True, "executed"), (False, "cooldown")]
    # Another conversation is not held back by this one's cooldown.
    other = await ingest(db, tenant, "three", external_id="628200")
    await process_all(db, arq)
    assert len(await notes(client, tenant, other.conversation_id)) == 1


async def test_what_automation_changes_never_triggers_rules(
    client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis
) -> None:
    """A rule on status changes that changes the status would loop; events automation caused match nothing."""
    await make_rule(db, tenant, "conversation_created", [{"type": "set_status", "status": "pending"}])
    flip = await make_rule(db, tenant, "status_changed", [{"type": "set_status", "status": "open"}])
    created = await ingest(db, tenant, "hello")
    await process_all(db, arq)
    assert (await conversation(client, tenant, created.conversation_id))["status"] == "pending"
    events = await events_of(db, tenant)
    caused = [e for e in events if e["event_type"] == "status_changed"]
    assert [e["source"] for e in caused] == ["automation"]
    assert {e["status"] for e in events} == {"done"}
    assert await runs_of(db, tenant, rule_id=flip) == []
    # A person's change of status does trigger it.
    response = await client.patch(
        f"/api/conversations/{created.conversation_id}/status", json={"status": "resolved"}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    await process_all(db, arq)
    assert len(await runs_of(db, tenant, rule_id=flip)) == 1
    assert (await conversation(client, tenant, created.conversation_id))["status"] == "open"


async def test_a_failing_action_undoes_the_run_and_is_recorded(
    client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis
) -> None:
    agent = await create_agent(client, tenant)
    suspended = await client.patch(f"/api/agents/{agent['id']}", json={"status": "suspended"}, headers=tenant.headers)
    assert suspended.status_code == 200, suspended.text
    await make_rule(
        db,
        tenant,
        "conversation_created",
        [{"type": "add_tags", "tags": ["routed"]}, {"type": "assign_agent", "agent_id": agent["id"]}],
    )
    created = await ingest(db, tenant, "hello")
    await process_all(db, arq)
    after = await conversation(client, tenant, created.conversation_id)
    assert (after["tags"], after["assigned_agent_id"]) == ([], None)  # the tag went with the failed run
    [run] = await runs_of(db, tenant)
    assert (run["matched"], run["executed"], run["result"]["outcome"]) == (True, False, "failed")
    tagged, assigned = run["result"]["actions"]
    assert tagged["ok"] is True
    assert assigned["ok"] is False
    assert "active agent" in assigned["error"]
    # The event itself is done: the rule failed, the processing did not.
    assert {e["status"] for e in await events_of(db, tenant)} == {"done"}


async def test_an_event_processed_again_does_not_act_twice(
    client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis
) -> None:
    await make_rule(db, tenant, "conversation_created", [{"type": "add_note", "text": "welcome"}])
    created = await ingest(db, tenant, "hello")
    await process_all(db, arq)
    # As if a worker had died after acting but before its claim ended: the event is due again.
    async with db.tenant(UUID(tenant.id)) as conn:
        await conn.execute(
            "UPDATE automation_events SET status = 'processing', available_at = now() - interval '1 second'"
            " WHERE tenant_id = $1",
            UUID(tenant.id),
        )
    assert await process_all(db, arq) >= 2
    assert len(await notes(client, tenant, created.conversation_id)) == 1
    assert len(await runs_of(db, tenant)) == 1
    assert {(e["status"], e["attempts"]) for e in await events_of(db, tenant)} == {("done", 2)}


async def test_an_event_that_cannot_be_processed_is_retried_then_failed(
    tenant: Tenant, db: Database, arq: ArqRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_rule(db, tenant, "message_received_inbound", [{"type": "add_tags", "tags": ["x"]}])
    await ingest(db, tenant, "hello")

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the database said no")

    monkeypatch.setattr(processing, "act", broken)
    processor = Processor(db, arq)
    assert await processor.process_due() == 2
    [created, inbound] = await events_of(db, tenant)
    assert created["status"] == "done"  # no rule of its type: nothing to do
    assert (inbound["status"], inbound["attempts"]) == ("pending", 1)
    assert inbound["error"] == "RuntimeError: the database said no"
    assert inbound["available_at"] > datetime.now(UTC) + timedelta(seconds=1)  # backing off
    for attempt in range(2, processing.MAX_ATTEMPTS + 1):
        async with db.tenant(UUID(tenant.id)) as conn:
            await conn.execute(
                "UPDATE automation_events SET available_at = now() WHERE tenant_id = $1", UUID(tenant.id)
            )
        assert await processor.process_due() == 1
        [_, inbound] = await events_of(db, tenant)
        assert inbound["attempts"] == attempt
    assert inbound["status"] == "failed"
    assert inbound["processed_at"] is not None
    counters = await processing_counters(db, tenant)
    assert counters["message_received_inbound"] == (processing.MAX_ATTEMPTS, 0, processing.MAX_ATTEMPTS - 1, 1)


async def processing_counters(db: Database, tenant: Tenant) -> dict[str, tuple[int, int, int, int]]:
    async with db.tenant(UUID(tenant.id)) as conn:
        rows = await conn.fetch("SELECT * FROM automation_worker_counters WHERE tenant_id = $1", UUID(tenant.id))
    return {
        r["event_type"]: (r["claimed_events"], r["done_events"], r["retried_events"], r["failed_events"]) for r in rows
    }


def test_backoff_doubles_up_to_five_minutes() -> None:
    assert [processing.backoff(n).total_seconds() for n in (1, 2, 3, 8, 9, 20)] == [2, 4, 8, 256, 300, 300]


async def test_each_tenant_gets_its_own_rules(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant, db: Database, arq: ArqRedis
) -> None:
    await make_rule(db, tenant, "conversation_created", [{"type": "add_tags", "tags": ["ours"]}])
    ours = await ingest(db, tenant, "hello")
    theirs = await ingest(db, other_tenant, "hello")
    await process_all(db, arq)
    assert (await conversation(client, tenant, ours.conversation_id))["tags"] == ["ours"]
    assert (await conversation(client, other_tenant, theirs.conversation_id))["tags"] == []
    assert await runs_of(db, other_tenant) == []


async def test_a_rule_change_reaches_a_running_processor(
    client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis
) -> None:
    processor = Processor(db, arq)
    rule = await make_rule(db, tenant, "conversation_created", [{"type": "add_tags", "tags": ["first"]}])
    one = await ingest(db, tenant, "hello", external_id="628301")
    await process_all(db, arq, processor)
    async with db.tenant(UUID(tenant.id)) as conn:
        await conn.execute(
            """UPDATE automation_rules SET actions = '[{"type": "add_tags", "tags": ["second"]}]' WHERE id = $1""",
            rule,
        )
    two = await ingest(db, tenant, "hello", external_id="628302")
    await process_all(db, arq, processor)
    assert (await conversation(client, tenant, one.conversation_id))["tags"] == ["first"]
    assert (await conversation(client, tenant, two.conversation_id))["tags"] == ["second"]


async def test_round_robin_and_least_busy_choose_among_the_online_agents_of_the_division(
    client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis
) -> None:
    agents = [await create_agent(client, tenant) for _ in range(3)]
    division = await client.post(
        "/api/divisions", json={"name": "Support", "agent_ids": [a["id"] for a in agents]}, headers=tenant.headers
    )
    division_id = division.json()["id"]
    for agent in agents[:2]:
        response = await client.patch(
            f"/api/agents/{agent['id']}/status", json={"status": "online"}, headers=agent["headers"]
        )
        assert response.status_code == 200, response.text
    await make_rule(
        db,
        tenant,
        "conversation_created",
        [{"type": "assign_agent", "strategy": "round_robin", "division_id": division_id}],
    )
    chosen = []
    for n in range(4):
        created = await ingest(db, tenant, "hello", external_id=f"62840{n}")
        await process_all(db, arq)
        chosen.append((await conversation(client, tenant, created.conversation_id))["assigned_agent_id"])
    online = sorted(a["id"] for a in agents[:2])
    assert chosen == [online[0], online[1], online[0], online[1]]

    # least_busy: the online agent with fewer live conversations.
    async with db.tenant(UUID(tenant.id)) as conn:
        await conn.execute("DELETE FROM automation_rules WHERE tenant_id = $1", UUID(tenant.id))
    await make_rule(
        db,
        tenant,
        "conversation_created",
        [{"type": "assign_agent", "strategy": "least_busy", "division_id": division_id}],
    )
    # Two each so far: the tie goes to the smaller id, then the other is the less busy.
    picks = []
    for n in range(2):
        created = await ingest(db, tenant, "hello", external_id=f"62850{n}")
        await process_all(db, arq)
        picks.append((await conversation(client, tenant, created.conversation_id))["assigned_agent_id"])
    assert picks == [online[0], online[1]]


@pytest.mark.parametrize("strategy", ["round_robin", "least_busy"])
async def test_assignments_processed_side_by_side_still_spread_over_the_agents(
    client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis, strategy: str
) -> None:
    """One batch, its conversations' events processed concurrently: each choice sees the one before."""
    agents = [await create_agent(client, tenant) for _ in range(3)]
    division = await client.post(
        "/api/divisions", json={"name": "Support", "agent_ids": [a["id"] for a in agents]}, headers=tenant.headers
    )
    for agent in agents:
        response = await client.patch(
            f"/api/agents/{agent['id']}/status", json={"status": "online"}, headers=agent["headers"]
        )
        assert response.status_code == 200, response.text
    await make_rule(
        db,
        tenant,
        "conversation_created",
        [{"type": "assign_agent", "strategy": strategy, "division_id": division.json()["id"]}],
    )
    created = [await ingest(db, tenant, "hello", external_id=f"62860{n}") for n in range(6)]
    await process_all(db, arq)
    chosen = [(await conversation(client, tenant, c.conversation_id))["assigned_agent_id"] for c in created]
    assert sorted(chosen.count(agent["id"]) for agent in agents) == [2, 2, 2]


async def test_conditions_on_contact_tags_and_business_hours(
    client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis
) -> None:
    await make_rule(
        db,
        tenant,
        "message_received_inbound",
        [{"type": "add_tags", "tags": ["vip"]}],
        conditions={"contact_has_any_tags": ["VIP"]},
    )
    await make_rule(
        db,
        tenant,
        "message_received_inbound",
        [{"type": "add_tags", "tags": ["after-hours"]}],
        conditions={"outside_business_hours_only": True},
    )
    plain = await ingest(db, tenant, "hello", external_id="628600")
    vip = await ingest(db, tenant, "hello", external_id="628601")
    response = await client.patch(f"/api/contacts/{vip.contact_id}", json={"tags": ["vip"]}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    await process_all(db, arq)
    # No working hours are set: always closed, so both are after hours; the VIP's first message came
    # before the contact was tagged, so only its conversation's later events see the tag.
    again = await ingest(db, tenant, "hello again", external_id="628601")
    await process_all(db, arq)
    assert sorted((await conversation(client, tenant, plain.conversation_id))["tags"]) == ["after-hours"]
    assert sorted((await conversation(client, tenant, again.conversation_id))["tags"]) == ["after-hours", "vip"]
    # Open all week: the after-hours rule no longer matches.
    periods = [{"weekday": d, "start": "00:00", "end": "24:00"} for d in range(7)]
    response = await client.put("/api/working-hours", json={"periods": periods}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    daytime = await ingest(db, tenant, "hello", external_id="628602")
    await process_all(db, arq)
    assert (await conversation(client, tenant, daytime.conversation_id))["tags"] == []


async def test_a_lease_that_ran_out_is_claimed_again(tenant: Tenant, db: Database, arq: ArqRedis) -> None:
    await ingest(db, tenant, "hello")
    async with db.anonymous() as conn:
        from omnistream.automation_events import repository

        first = await repository.claim_due(conn, 10, timedelta(minutes=5))
        assert len(first) == 2
        assert await repository.claim_due(conn, 10, timedelta(minutes=5)) == []  # held by their lease
    async with db.tenant(UUID(tenant.id)) as conn:
        await conn.execute("UPDATE automation_events SET available_at = now() - interval '1 second'")
    async with db.anonymous() as conn:
        again = await repository.claim_due(conn, 10, timedelta(minutes=5))
    assert sorted((r["id"], r["attempts"]) for r in again) == sorted((r["id"], 2) for r in first)
