"""SLA policies over HTTP, the clocks the outbox feeds, the breach monitor, and business-hours
arithmetic against a brute-force reference."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from arq import ArqRedis
from hypothesis import given
from hypothesis import strategies as st
from litestar.testing import AsyncTestClient

from omnistream.db import Database
from omnistream.sla import service as sla
from omnistream.working_hours.schedule import Schedule, add_open_time, open_time_between, parse_clock
from tests.automation_helpers import events_of, make_rule, process_all
from tests.conftest import Tenant, create_agent, ingest, problem
from tests.test_schedule import MINUTE, PROPERTY, WALK_LIMIT, Reference, cases, utc

NOWHERE = "00000000-0000-4000-8000-000000000000"
# 2024-06-07 is a Friday.
FRIDAY_NOON = utc("2024-06-07T12:00:00")
NINE_TO_FIVE = [{"weekday": d, "start": "09:00", "end": "17:00"} for d in range(5)]


# ---------------------------------------------------------------- business-hours arithmetic


def reference_add(reference: Reference, zone: ZoneInfo, at: datetime, minutes: int) -> datetime | None:
    """Walk whole minutes from `at`, counting the open ones, until `minutes` are counted."""
    counted, t = 0, at
    while t <= at + WALK_LIMIT:
        if reference.is_open(zone, t):
            counted += 1
            if counted == minutes:
                return t + MINUTE
        t += MINUTE
    return None


@PROPERTY
@given(cases(), st.integers(1, 600))
def test_adding_open_minutes_agrees_with_the_reference(case: Any, minutes: int) -> None:
    zone, reference, schedule, at = case
    at = at.replace(second=0, microsecond=0)  # the reference counts whole minutes
    found = add_open_time(schedule, zone, at, timedelta(minutes=minutes))
    expected = reference_add(reference, zone, at, minutes)
    if expected is None:
        assert found is None or found > at + WALK_LIMIT
        return
    assert found == expected
    assert open_time_between(schedule, zone, at, found) == timedelta(minutes=minutes)


@PROPERTY
@given(cases(), st.integers(0, 3 * 24 * 60))
def test_open_time_between_counts_the_open_minutes(case: Any, span: int) -> None:
    zone, reference, schedule, at = case
    at = at.replace(second=0, microsecond=0)
    end = at + timedelta(minutes=span)
    counted = sum(reference.is_open(zone, at + i * MINUTE) for i in range(span))
    assert open_time_between(schedule, zone, at, end) == timedelta(minutes=counted)


def test_open_minutes_skip_the_weekend_and_a_holiday() -> None:
    weekdays = Schedule.build([(d, parse_clock("09:00"), parse_clock("17:00")) for d in range(5)])
    berlin = ZoneInfo("Europe/Berlin")
    # Friday 16:30 Berlin (14:30 UTC) + 60 open minutes: 30 on Friday, 30 on Monday from 09:00.
    assert add_open_time(weekdays, berlin, utc("2024-06-07T14:30:00"), timedelta(minutes=60)) == utc(
        "2024-06-10T07:30:00"
    )
    with_holiday = Schedule.build(
        [(d, parse_clock("09:00"), parse_clock("17:00")) for d in range(5)], {datetime(2024, 6, 10).date(): []}
    )
    assert add_open_time(with_holiday, berlin, utc("2024-06-07T14:30:00"), timedelta(minutes=60)) == utc(
        "2024-06-11T07:30:00"
    )
    assert add_open_time(Schedule.build([]), berlin, FRIDAY_NOON, timedelta(minutes=1)) is None
    assert add_open_time(weekdays, berlin, FRIDAY_NOON, timedelta(0)) == FRIDAY_NOON


# ---------------------------------------------------------------- helpers


def policy_body(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "Standard",
        "targets": {"first_response_minutes": 60, "next_response_minutes": 30, "resolution_minutes": 480},
    } | overrides


async def create_policy(client: AsyncTestClient, tenant: Tenant, **overrides: Any) -> dict[str, Any]:
    response = await client.post("/api/sla-policies", json=policy_body(**overrides), headers=tenant.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def settle(db: Database, arq: ArqRedis, tenant: Tenant, at: datetime) -> None:
    """Let the pending events have happened from `at` on (keeping their order and spacing), then
    process them as the worker does."""
    async with db.tenant(UUID(tenant.id)) as conn:
        await conn.execute(
            """UPDATE automation_events e SET created_at = $2::timestamptz + (e.created_at - f.first)
                 FROM (SELECT min(created_at) AS first FROM automation_events
                        WHERE tenant_id = $1 AND status = 'pending') f
                WHERE e.tenant_id = $1 AND e.status = 'pending'""",
            UUID(tenant.id),
            at,
        )
    await process_all(db, arq)


async def clocks(db: Database, tenant: Tenant, conversation_id: UUID) -> dict[str, dict[str, Any]]:
    """The conversation's clocks by target (the latest of each)."""
    async with db.tenant(UUID(tenant.id)) as conn:
        rows = await conn.fetch(
            "SELECT * FROM sla_targets WHERE tenant_id = $1 AND conversation_id = $2 ORDER BY started_at",
            UUID(tenant.id),
            conversation_id,
        )
    return {row["target"]: dict(row) for row in rows}


async def all_clocks(db: Database, tenant: Tenant, conversation_id: UUID) -> list[dict[str, Any]]:
    async with db.tenant(UUID(tenant.id)) as conn:
        rows = await conn.fetch(
            "SELECT * FROM sla_targets WHERE tenant_id = $1 AND conversation_id = $2 ORDER BY started_at, target",
            UUID(tenant.id),
            conversation_id,
        )
    return [dict(row) for row in rows]


async def reply(client: AsyncTestClient, tenant: Tenant, conversation_id: UUID, text: str = "On it") -> None:
    response = await client.post(
        f"/api/conversations/{conversation_id}/messages", json={"type": "text", "text": text}, headers=tenant.headers
    )
    assert response.status_code in (200, 201), response.text


async def set_status(client: AsyncTestClient, tenant: Tenant, conversation_id: UUID, status: str) -> None:
    response = await client.patch(
        f"/api/conversations/{conversation_id}/status", json={"status": status}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text


async def conversation_sla(client: AsyncTestClient, who: dict[str, str], conversation_id: UUID) -> dict[str, Any]:
    response = await client.get(f"/api/conversations/{conversation_id}/sla", headers=who)
    assert response.status_code == 200, response.text
    return response.json()


async def breaches(client: AsyncTestClient, tenant: Tenant, policy_id: str, **params: Any) -> dict[str, Any]:
    response = await client.get(f"/api/sla-policies/{policy_id}/breaches", params=params, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def new_division(client: AsyncTestClient, tenant: Tenant, name: str = "Billing") -> str:
    response = await client.post("/api/divisions", json={"name": name}, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return response.json()["id"]


# ---------------------------------------------------------------- policies over HTTP


async def test_a_policy_is_created_listed_in_order_updated_and_deleted(client: AsyncTestClient, tenant: Tenant) -> None:
    division = await new_division(client, tenant)
    first = await create_policy(
        client,
        tenant,
        name="VIP WhatsApp",
        business_hours=True,
        conditions={"channels": ["whatsapp"], "division_ids": [division], "priorities": ["urgent", "high"]},
    )
    assert first["position"] == 0
    assert first["enabled"] is True
    assert first["targets"] == {"first_response_minutes": 60, "next_response_minutes": 30, "resolution_minutes": 480}
    assert first["conditions"] == {
        "channels": ["whatsapp"],
        "division_ids": [division],
        "priorities": ["high", "urgent"],
    }
    second = await create_policy(client, tenant, name="Default", targets={"resolution_minutes": 1440})
    assert second["position"] == 1
    assert second["targets"] == {
        "first_response_minutes": None,
        "next_response_minutes": None,
        "resolution_minutes": 1440,
    }
    assert second["conditions"] == {"channels": [], "division_ids": [], "priorities": []}

    listed = (await client.get("/api/sla-policies", headers=tenant.headers)).json()
    assert [p["name"] for p in listed["sla_policies"]] == ["VIP WhatsApp", "Default"]
    assert listed["total"] == 2

    moved = await client.patch(
        f"/api/sla-policies/{second['id']}", json={"position": 0, "enabled": False}, headers=tenant.headers
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["name"] == "Default"  # untouched fields stay
    assert moved.json()["targets"]["resolution_minutes"] == 1440
    # Same position: the older policy comes first.
    listed = (await client.get("/api/sla-policies", headers=tenant.headers)).json()
    assert [p["name"] for p in listed["sla_policies"]] == ["VIP WhatsApp", "Default"]
    only_enabled = (await client.get("/api/sla-policies", params={"enabled": "true"}, headers=tenant.headers)).json()
    assert [p["name"] for p in only_enabled["sla_policies"]] == ["VIP WhatsApp"]
    await client.patch(f"/api/sla-policies/{first['id']}", json={"position": 5}, headers=tenant.headers)
    listed = (await client.get("/api/sla-policies", headers=tenant.headers)).json()
    assert [p["name"] for p in listed["sla_policies"]] == ["Default", "VIP WhatsApp"]

    deleted = await client.delete(f"/api/sla-policies/{first['id']}", headers=tenant.headers)
    assert deleted.status_code == 200
    assert deleted.json() == {"message": "SLA policy deleted", "id": first["id"]}
    listed = (await client.get("/api/sla-policies", headers=tenant.headers)).json()
    assert [p["id"] for p in listed["sla_policies"]] == [second["id"]]
    logged = await client.get("/api/activity-logs", params={"per_page": 100}, headers=tenant.headers)
    actions = {entry["action"] for entry in logged.json()["activity_logs"]}
    assert {"sla_policy.created", "sla_policy.updated", "sla_policy.deleted"} <= actions


BAD_BODIES = {
    "zero minutes": (policy_body(targets={"first_response_minutes": 0}), 400),
    "too many minutes": (policy_body(targets={"resolution_minutes": 43_201}), 400),
    "minutes as text": (policy_body(targets={"resolution_minutes": "60"}), 400),
    "unknown target": (policy_body(targets={"reply_minutes": 5}), 400),
    "unknown field": (policy_body(colour="red"), 400),
    "blank name": (policy_body(name="  "), 400),
    "no name": ({"targets": {"resolution_minutes": 5}}, 400),
    "unknown channel": (policy_body(conditions={"channels": ["fax"]}), 400),
    "unknown priority": (policy_body(conditions={"priorities": ["whenever"]}), 400),
    "bad division id": (policy_body(conditions={"division_ids": ["nope"]}), 400),
    "negative position": (policy_body(position=-1), 400),
    "no target": (policy_body(targets={}), 422),
    "all targets null": (policy_body(targets={"first_response_minutes": None}), 422),
    "another organisation's division": (policy_body(conditions={"division_ids": [NOWHERE]}), 422),
}


@pytest.mark.parametrize("case", BAD_BODIES, ids=list(BAD_BODIES))
async def test_a_bad_policy_is_refused_and_nothing_is_stored(
    client: AsyncTestClient, tenant: Tenant, case: str
) -> None:
    body, status = BAD_BODIES[case]
    problem(await client.post("/api/sla-policies", json=body, headers=tenant.headers), status)
    assert (await client.get("/api/sla-policies", headers=tenant.headers)).json()["total"] == 0


async def test_a_bad_update_changes_nothing(client: AsyncTestClient, tenant: Tenant) -> None:
    policy = await create_policy(client, tenant)
    url = f"/api/sla-policies/{policy['id']}"
    problem(await client.patch(url, json={"targets": {}}, headers=tenant.headers), 422)
    problem(await client.patch(url, json={"conditions": {"division_ids": [NOWHERE]}}, headers=tenant.headers), 422)
    problem(await client.patch(url, json={"name": ""}, headers=tenant.headers), 400)
    problem(await client.patch(url, json={"enabled": "yes"}, headers=tenant.headers), 400)
    listed = (await client.get("/api/sla-policies", headers=tenant.headers)).json()["sla_policies"]
    assert listed == [policy]


async def test_targets_and_conditions_are_replaced_whole(client: AsyncTestClient, tenant: Tenant) -> None:
    policy = await create_policy(client, tenant, conditions={"channels": ["email"], "priorities": ["high"]})
    response = await client.patch(
        f"/api/sla-policies/{policy['id']}",
        json={"targets": {"resolution_minutes": 90}, "conditions": {"channels": ["instagram"]}, "description": "x"},
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["targets"] == {
        "first_response_minutes": None,
        "next_response_minutes": None,
        "resolution_minutes": 90,
    }
    assert updated["conditions"] == {"channels": ["instagram"], "division_ids": [], "priorities": []}
    assert updated["description"] == "x"


async def test_who_may_see_and_change_policies(client: AsyncTestClient, tenant: Tenant) -> None:
    policy = await create_policy(client, tenant)
    agent = await create_agent(client, tenant, "agent")
    supervisor = await create_agent(client, tenant, "supervisor")
    url = f"/api/sla-policies/{policy['id']}"
    problem(await client.get("/api/sla-policies", headers=agent["headers"]), 403)
    problem(await client.get(f"{url}/breaches", headers=agent["headers"]), 403)
    assert (await client.get("/api/sla-policies", headers=supervisor["headers"])).status_code == 200
    assert (await client.get(f"{url}/breaches", headers=supervisor["headers"])).status_code == 200
    problem(await client.post("/api/sla-policies", json=policy_body(), headers=supervisor["headers"]), 403)
    problem(await client.patch(url, json={"enabled": False}, headers=supervisor["headers"]), 403)
    problem(await client.delete(url, headers=supervisor["headers"]), 403)
    listed = (await client.get("/api/sla-policies", headers=tenant.headers)).json()["sla_policies"]
    assert listed == [policy]


async def test_another_organisations_policy_is_not_found(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    policy = await create_policy(client, tenant)
    url = f"/api/sla-policies/{policy['id']}"
    problem(await client.patch(url, json={"enabled": False}, headers=other_tenant.headers), 404)
    problem(await client.delete(url, headers=other_tenant.headers), 404)
    problem(await client.get(f"{url}/breaches", headers=other_tenant.headers), 404)
    problem(await client.delete(f"/api/sla-policies/{NOWHERE}", headers=tenant.headers), 404)
    assert (await client.get("/api/sla-policies", headers=other_tenant.headers)).json()["total"] == 0
    assert (await client.get("/api/sla-policies", headers=tenant.headers)).json()["sla_policies"] == [policy]


async def test_an_organisation_has_a_bounded_number_of_policies(
    client: AsyncTestClient, tenant: Tenant, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sla, "MAX_POLICIES", 2)
    await create_policy(client, tenant)
    await create_policy(client, tenant)
    body = problem(await client.post("/api/sla-policies", json=policy_body(), headers=tenant.headers), 422)
    assert "at most 2" in body["detail"]


# ---------------------------------------------------------------- the clocks


async def test_a_conversation_gets_first_response_and_resolution_due_times(
    client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis
) -> None:
    policy = await create_policy(client, tenant)
    created = await ingest(db, tenant, "hello")
    await settle(db, arq, tenant, FRIDAY_NOON)
    found = await clocks(db, tenant, created.conversation_id)
    assert set(found) == {"first_response", "resolution"}
    assert found["first_response"]["started_at"] == FRIDAY_NOON
    assert found["first_response"]["due_at"] == FRIDAY_NOON + timedelta(minutes=60)
    assert found["resolution"]["due_at"] == FRIDAY_NOON + timedelta(minutes=480)
    assert {c["policy_id"] for c in found.values()} == {UUID(policy["id"])}
    # Processing the same events again (a retry) starts nothing twice.
    async with db.tenant(UUID(tenant.id)) as conn:
        await conn.execute("UPDATE automation_events SET status = 'pending', available_at = now()")
    await process_all(db, arq)
    assert len(await all_clocks(db, tenant, created.conversation_id)) == 2


async def test_business_hours_due_times_skip_the_weekend(
    client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis
) -> None:
    put = await client.put("/api/working-hours", json={"periods": NINE_TO_FIVE}, headers=tenant.headers)
    assert put.status_code == 200, put.text
    await create_policy(client, tenant, business_hours=True, targets={"first_response_minutes": 120})
    created = await ingest(db, tenant, "hello")
    friday_afternoon = utc("2024-06-07T16:00:00")  # one open hour left on Friday
    await settle(db, arq, tenant, friday_afternoon)
    found = await clocks(db, tenant, created.conversation_id)
    assert found["first_response"]["due_at"] == utc("2024-06-10T10:00:00")  # Monday, after one more open hour


async def test_a_division_uses_its_own_hours(
    client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis
) -> None:
    await client.put("/api/working-hours", json={"periods": NINE_TO_FIVE}, headers=tenant.headers)
    division = await new_division(client, tenant, "Weekend crew")
    weekend = [{"weekday": d, "start": "10:00", "end": "12:00"} for d in (5, 6)]
    put = await client.put(
        f"/api/divisions/{division}/working-hours", json={"periods": weekend}, headers=tenant.headers
    )
    assert put.status_code == 200, put.text
    await create_policy(client, tenant, business_hours=True, targets={"resolution_minutes": 180}, position=5)
    routed, unrouted = await ingest(db, tenant, "hello"), await ingest(db, tenant, "hello")
    await settle(db, arq, tenant, FRIDAY_NOON)
    # The organisation's hours: five open hours on Friday afternoon.
    for created in (routed, unrouted):
        resolution = (await clocks(db, tenant, created.conversation_id))["resolution"]
        assert resolution["due_at"] == resolution["started_at"] + timedelta(hours=3)
    response = await client.patch(
        f"/api/conversations/{routed.conversation_id}/assign",
        json={"agent_id": None, "division_id": division},
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.text
    # A second policy for that division makes the routing change the policy: the clock is timed
    # again from its start in the division's hours, Saturday 10-12 and Sunday from 10.
    await create_policy(
        client,
        tenant,
        name="Weekend",
        position=0,
        business_hours=True,
        targets={"resolution_minutes": 180},
        conditions={"division_ids": [division]},
    )
    await settle(db, arq, tenant, FRIDAY_NOON + timedelta(minutes=5))
    assert (await clocks(db, tenant, routed.conversation_id))["resolution"]["due_at"] == utc("2024-06-09T11:00:00")
    resolution = (await clocks(db, tenant, unrouted.conversation_id))["resolution"]
    assert resolution["due_at"] == resolution["started_at"] + timedelta(hours=3)


async def test_each_clock_transition(client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis) -> None:
    await create_policy(client, tenant)
    created = await ingest(db, tenant, "hello", external_id="628111")
    conversation_id = created.conversation_id
    await settle(db, arq, tenant, FRIDAY_NOON)

    # An agent's reply meets first response; next response is not running yet.
    await reply(client, tenant, conversation_id)
    await settle(db, arq, tenant, FRIDAY_NOON + timedelta(minutes=10))
    found = await clocks(db, tenant, conversation_id)
    assert found["first_response"]["met_at"] == FRIDAY_NOON + timedelta(minutes=10)
    assert "next_response" not in found

    # The customer writes again: next response starts, once per turn.
    await ingest(db, tenant, "still there?", external_id="628111")
    await settle(db, arq, tenant, FRIDAY_NOON + timedelta(minutes=20))
    await ingest(db, tenant, "hello??", external_id="628111")
    await settle(db, arq, tenant, FRIDAY_NOON + timedelta(minutes=25))
    found = await clocks(db, tenant, conversation_id)
    assert found["next_response"]["started_at"] == FRIDAY_NOON + timedelta(minutes=20)
    assert found["next_response"]["due_at"] == FRIDAY_NOON + timedelta(minutes=50)
    assert len([c for c in await all_clocks(db, tenant, conversation_id) if c["target"] == "next_response"]) == 1

    # The reply meets it; resolution runs on.
    await reply(client, tenant, conversation_id)
    await settle(db, arq, tenant, FRIDAY_NOON + timedelta(minutes=40))
    found = await clocks(db, tenant, conversation_id)
    assert found["next_response"]["met_at"] == FRIDAY_NOON + timedelta(minutes=40)
    assert found["resolution"]["met_at"] is None

    # A new turn, then resolved: resolution met, the running next response stopped.
    await ingest(db, tenant, "one more thing", external_id="628111")
    await settle(db, arq, tenant, FRIDAY_NOON + timedelta(minutes=50))
    await set_status(client, tenant, conversation_id, "resolved")
    await settle(db, arq, tenant, FRIDAY_NOON + timedelta(minutes=60))
    turns = [c for c in await all_clocks(db, tenant, conversation_id) if c["target"] == "next_response"]
    assert [t["stopped_at"] for t in turns] == [None, FRIDAY_NOON + timedelta(minutes=60)]
    assert [t["met_at"] is not None for t in turns] == [True, False]
    assert (await clocks(db, tenant, conversation_id))["resolution"]["met_at"] == FRIDAY_NOON + timedelta(minutes=60)

    # The customer reopens it: a new resolution clock from the reopening, and next response.
    await ingest(db, tenant, "it broke again", external_id="628111")
    reopened = FRIDAY_NOON + timedelta(minutes=90)
    await settle(db, arq, tenant, reopened)
    everything = await all_clocks(db, tenant, conversation_id)
    resolutions = [c for c in everything if c["target"] == "resolution"]
    assert len(resolutions) == 2
    assert resolutions[1]["started_at"] == reopened
    assert resolutions[1]["due_at"] == reopened + timedelta(minutes=480)
    assert next(c for c in everything if c["target"] == "first_response")["met_at"] is not None  # not asked again
    assert everything[-1]["target"] == "next_response"
    assert everything[-1]["met_at"] is None


async def test_automation_messages_meet_no_response_target(
    client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis
) -> None:
    await create_policy(client, tenant)
    await make_rule(db, tenant, "conversation_created", [{"type": "send_message", "text": "We got your message"}])
    created = await ingest(db, tenant, "hello")
    await settle(db, arq, tenant, FRIDAY_NOON)
    kinds = [e["event_type"] for e in await events_of(db, tenant)]
    assert "message_sent" in kinds
    assert (await clocks(db, tenant, created.conversation_id))["first_response"]["met_at"] is None


async def test_pending_pauses_resolution_and_open_resumes_it(
    client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis
) -> None:
    await create_policy(client, tenant, targets={"resolution_minutes": 60})
    created = await ingest(db, tenant, "hello")
    conversation_id = created.conversation_id
    await settle(db, arq, tenant, FRIDAY_NOON)
    await set_status(client, tenant, conversation_id, "pending")
    await settle(db, arq, tenant, FRIDAY_NOON + timedelta(minutes=20))
    paused = (await clocks(db, tenant, conversation_id))["resolution"]
    assert paused["due_at"] is None
    assert paused["remaining_seconds"] == 40 * 60
    shown = await conversation_sla(client, tenant.headers, conversation_id)
    assert shown["targets"][0]["state"] == "paused"
    assert shown["targets"][0]["seconds_left"] == 40 * 60
    # A paused clock never breaches, however late the monitor runs.
    assert await sla.monitor(db, FRIDAY_NOON + timedelta(days=3)) == 0

    await set_status(client, tenant, conversation_id, "open")
    await settle(db, arq, tenant, FRIDAY_NOON + timedelta(hours=2))
    resumed = (await clocks(db, tenant, conversation_id))["resolution"]
    assert resumed["paused_at"] is None
    assert resumed["due_at"] == FRIDAY_NOON + timedelta(hours=2, minutes=40)


async def test_expiry_stops_every_clock(client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis) -> None:
    await create_policy(client, tenant)
    created = await ingest(db, tenant, "hello")
    await settle(db, arq, tenant, FRIDAY_NOON)
    async with db.tenant(UUID(tenant.id)) as conn:
        await conn.execute(
            """INSERT INTO automation_events (tenant_id, event_type, conversation_id, contact_id, payload,
                                              payload_hash, source)
               SELECT tenant_id, 'status_changed', conversation_id, contact_id,
                      payload || '{"status": "expired", "previous_status": "open"}', 'x', 'api'
                 FROM automation_events WHERE tenant_id = $1 AND event_type = 'conversation_created'""",
            UUID(tenant.id),
        )
    await settle(db, arq, tenant, FRIDAY_NOON + timedelta(minutes=5))
    found = await clocks(db, tenant, created.conversation_id)
    assert {c["stopped_at"] for c in found.values()} == {FRIDAY_NOON + timedelta(minutes=5)}
    assert {c["met_at"] for c in found.values()} == {None}
    assert await sla.monitor(db, FRIDAY_NOON + timedelta(days=30)) == 0  # stopped clocks never breach


async def test_the_first_matching_enabled_policy_applies(
    client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis
) -> None:
    email_only = await create_policy(client, tenant, name="Email", conditions={"channels": ["email"]})
    disabled = await create_policy(client, tenant, name="Off", enabled=False, targets={"resolution_minutes": 5})
    urgent = await create_policy(
        client, tenant, name="Urgent", conditions={"priorities": ["urgent"]}, targets={"resolution_minutes": 15}
    )
    fallback = await create_policy(client, tenant, name="Everything", targets={"resolution_minutes": 999})
    created = await ingest(db, tenant, "hello")  # WhatsApp, normal priority
    await settle(db, arq, tenant, FRIDAY_NOON)
    resolution = (await clocks(db, tenant, created.conversation_id))["resolution"]
    assert resolution["policy_id"] == UUID(fallback["id"])
    assert {email_only["id"], disabled["id"], urgent["id"]}.isdisjoint({str(resolution["policy_id"])})

    # A priority change is seen with the conversation's next event: the running clock is re-timed
    # from its own start by the policy that now applies.
    async with db.tenant(UUID(tenant.id)) as conn:
        await conn.execute("UPDATE conversations SET priority = 'urgent' WHERE id = $1", created.conversation_id)
    await reply(client, tenant, created.conversation_id)
    await settle(db, arq, tenant, FRIDAY_NOON + timedelta(minutes=2))
    resolution = (await clocks(db, tenant, created.conversation_id))["resolution"]
    assert resolution["policy_id"] == UUID(urgent["id"])
    assert resolution["due_at"] == FRIDAY_NOON + timedelta(minutes=15)
    shown = await conversation_sla(client, tenant.headers, created.conversation_id)
    assert shown["policy"] == {"id": urgent["id"], "name": "Urgent", "business_hours": False}

    # No policy matching any more stops what was running.
    for policy in (urgent, fallback):
        await client.patch(f"/api/sla-policies/{policy['id']}", json={"enabled": False}, headers=tenant.headers)
    await set_status(client, tenant, created.conversation_id, "pending")
    await settle(db, arq, tenant, FRIDAY_NOON + timedelta(minutes=3))
    resolution = (await clocks(db, tenant, created.conversation_id))["resolution"]
    assert resolution["stopped_at"] == FRIDAY_NOON + timedelta(minutes=3)


async def test_a_division_condition_applies_once_the_conversation_is_routed(
    client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis
) -> None:
    division = await new_division(client, tenant)
    billing = await create_policy(client, tenant, conditions={"division_ids": [division]})
    created = await ingest(db, tenant, "hello")
    await settle(db, arq, tenant, FRIDAY_NOON)
    assert await clocks(db, tenant, created.conversation_id) == {}
    routed = await client.patch(
        f"/api/conversations/{created.conversation_id}/assign",
        json={"agent_id": None, "division_id": division},
        headers=tenant.headers,
    )
    assert routed.status_code == 200, routed.text
    await settle(db, arq, tenant, FRIDAY_NOON + timedelta(minutes=7))
    found = await clocks(db, tenant, created.conversation_id)
    # Counted from the opening, as if the policy had applied all along.
    assert found["first_response"]["started_at"] == FRIDAY_NOON
    assert found["first_response"]["due_at"] == FRIDAY_NOON + timedelta(minutes=60)
    assert found["first_response"]["policy_id"] == UUID(billing["id"])


# ---------------------------------------------------------------- the monitor


async def due_conversation(client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis) -> tuple[dict, UUID]:
    policy = await create_policy(client, tenant, targets={"first_response_minutes": 1, "resolution_minutes": 60})
    created = await ingest(db, tenant, "hello")
    await settle(db, arq, tenant, FRIDAY_NOON)
    return policy, created.conversation_id


async def breach_events(db: Database, tenant: Tenant) -> list[dict[str, Any]]:
    return [e for e in await events_of(db, tenant) if e["event_type"] == "sla_breached"]


async def test_the_monitor_records_a_breach_once_with_one_event(
    client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis
) -> None:
    policy, conversation_id = await due_conversation(client, tenant, db, arq)
    assert await sla.monitor(db, FRIDAY_NOON + timedelta(seconds=59)) == 0  # not yet due
    later = FRIDAY_NOON + timedelta(minutes=2)
    assert await sla.monitor(db, later) == 1
    assert await sla.monitor(db, later + timedelta(minutes=1)) == 0
    events = await breach_events(db, tenant)
    assert len(events) == 1
    payload = events[0]["payload"]
    assert events[0]["source"] == "sla"
    assert payload["target"] == "first_response"
    assert payload["policy_id"] == policy["id"]
    assert payload["conversation_id"] == str(conversation_id)
    assert payload["channel"] == "whatsapp"
    assert datetime.fromisoformat(payload["due_at"]) == FRIDAY_NOON + timedelta(minutes=1)
    assert datetime.fromisoformat(payload["breached_at"]) == later

    listed = await breaches(client, tenant, policy["id"])
    assert listed["total"] == 1
    assert listed["breaches"][0]["event_id"] == str(events[0]["id"])
    assert listed["breaches"][0]["target"] == "first_response"
    # Late and still running, until an agent replies; the breach stays recorded.
    shown = await conversation_sla(client, tenant.headers, conversation_id)
    first = next(t for t in shown["targets"] if t["target"] == "first_response")
    assert first["state"] == "running"
    assert first["late"] is True
    assert first["seconds_left"] < 0
    assert first["breached_at"] is not None


async def test_concurrent_monitors_write_one_event(
    client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis
) -> None:
    await due_conversation(client, tenant, db, arq)
    later = FRIDAY_NOON + timedelta(hours=2)  # both targets due
    counts = await asyncio.gather(*(sla.monitor(db, later) for _ in range(4)))
    assert sum(counts) == 2
    assert sorted(e["payload"]["target"] for e in await breach_events(db, tenant)) == ["first_response", "resolution"]


async def test_a_target_met_in_time_never_breaches(
    client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis
) -> None:
    policy, conversation_id = await due_conversation(client, tenant, db, arq)
    await reply(client, tenant, conversation_id)
    await settle(db, arq, tenant, FRIDAY_NOON + timedelta(seconds=30))
    assert await sla.monitor(db, FRIDAY_NOON + timedelta(minutes=30)) == 0
    assert (await breaches(client, tenant, policy["id"]))["total"] == 0
    shown = await conversation_sla(client, tenant.headers, conversation_id)
    first = next(t for t in shown["targets"] if t["target"] == "first_response")
    assert (first["state"], first["late"], first["seconds_left"]) == ("met", False, None)


async def test_a_breach_fires_an_sla_rule(client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis) -> None:
    await make_rule(db, tenant, "sla_breached", [{"type": "add_tags", "tags": ["sla-breached"]}])
    _, conversation_id = await due_conversation(client, tenant, db, arq)
    await sla.monitor(db, FRIDAY_NOON + timedelta(minutes=5))
    await process_all(db, arq)
    conversation = (await client.get(f"/api/conversations/{conversation_id}", headers=tenant.headers)).json()
    assert conversation["tags"] == ["sla-breached"]


async def test_the_monitor_reads_only_the_watch_index(database: str) -> None:
    """Among many clocks met, or breached and still open, the monitor's queries read the partial
    index of running, unbreached clocks: never a scan of every open conversation's clocks."""
    tenant_id = UUID(NOWHERE)
    conn = await asyncpg.connect(database)
    try:
        # The rows stand alone: the foreign keys' triggers are off for this session.
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(
            """INSERT INTO sla_targets (tenant_id, conversation_id, policy_id, target, started_at, due_at, met_at,
                                        breached_at)
               SELECT $1, gen_random_uuid(), gen_random_uuid(), 'resolution', now() - interval '1 day',
                      now() - interval '1 hour',
                      CASE WHEN i % 3 = 0 THEN NULL ELSE now() END,
                      CASE WHEN i % 3 = 0 THEN now() - interval '1 hour' END
                 FROM generate_series(1, 6000) AS i""",
            tenant_id,
        )
        await conn.execute(
            """INSERT INTO sla_targets (tenant_id, conversation_id, policy_id, target, started_at, due_at)
               SELECT $1, gen_random_uuid(), gen_random_uuid(), 'first_response', now(), now() + i * interval '1 minute'
                 FROM generate_series(1, 20) AS i""",
            tenant_id,
        )
        await conn.execute("ANALYZE sla_targets")
        body = await conn.fetchval("SELECT prosrc FROM pg_proc WHERE proname = 'sla_tenants_with_due_targets'")
        literals = {"$1": f"'{NOWHERE}'::uuid", "$2": "now()", "$3": "500", "p_now": "now()", "p_limit": "500"}
        plans = []
        for sql in (sla.repository.queries.due_targets.sql, body):
            for name, value in literals.items():
                sql = sql.replace(name, value)
            plans.append("\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {sql}")))
    finally:
        await conn.close()
    for plan in plans:
        assert "sla_targets_watch_idx" in plan, plan
        assert "Seq Scan" not in plan, plan


# ---------------------------------------------------------------- breaches over HTTP


async def test_breaches_filter_and_page(client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis) -> None:
    policy = await create_policy(client, tenant, targets={"first_response_minutes": 1, "resolution_minutes": 2})
    first = await ingest(db, tenant, "hello")
    second = await ingest(db, tenant, "hello")
    await settle(db, arq, tenant, FRIDAY_NOON)
    await sla.monitor(db, FRIDAY_NOON + timedelta(seconds=90))  # both first responses
    await sla.monitor(db, FRIDAY_NOON + timedelta(minutes=3))  # both resolutions
    everything = await breaches(client, tenant, policy["id"])
    assert everything["total"] == 4
    assert [b["target"] for b in everything["breaches"]] == ["resolution"] * 2 + ["first_response"] * 2

    only = await breaches(client, tenant, policy["id"], target="resolution")
    assert only["total"] == 2
    assert {b["target"] for b in only["breaches"]} == {"resolution"}
    mine = await breaches(client, tenant, policy["id"], conversation_id=str(first.conversation_id))
    assert {b["conversation_id"] for b in mine["breaches"]} == {str(first.conversation_id)}
    assert mine["total"] == 2
    early = await breaches(client, tenant, policy["id"], breached_to="2024-06-07T12:02:00Z")
    assert [b["target"] for b in early["breaches"]] == ["first_response"] * 2
    late = await breaches(client, tenant, policy["id"], breached_from="2024-06-07T12:02:00Z")
    assert late["total"] == 2

    page = await breaches(client, tenant, policy["id"], per_page=3)
    assert len(page["breaches"]) == 3
    assert page["next_cursor"]
    rest = await breaches(client, tenant, policy["id"], per_page=3, cursor=page["next_cursor"])
    assert len(rest["breaches"]) == 1
    assert {b["id"] for b in page["breaches"] + rest["breaches"]} == {b["id"] for b in everything["breaches"]}
    unused = await create_policy(client, tenant, name="Unused", enabled=False)
    assert (await breaches(client, tenant, unused["id"]))["total"] == 0  # each policy lists its own
    oldest_first = await breaches(client, tenant, policy["id"], sort_order="asc")
    assert oldest_first["breaches"] == list(reversed(everything["breaches"]))
    assert second.conversation_id != first.conversation_id


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"target": "lunch"}, 400),
        ({"conversation_id": "nope"}, 400),
        ({"breached_from": "yesterday"}, 400),
        ({"breached_from": "2024-02-30T00:00:00Z"}, 422),
        ({"breached_from": "2024-06-08T00:00:00Z", "breached_to": "2024-06-07T00:00:00Z"}, 422),
        ({"per_page": 0}, 400),
        ({"cursor": "not-a-cursor"}, 400),
    ],
)
async def test_bad_breach_filters_are_refused(
    client: AsyncTestClient, tenant: Tenant, params: dict[str, Any], status: int
) -> None:
    policy = await create_policy(client, tenant)
    problem(
        await client.get(f"/api/sla-policies/{policy['id']}/breaches", params=params, headers=tenant.headers), status
    )


# ---------------------------------------------------------------- a conversation's SLA over HTTP


async def test_a_conversations_sla_shows_each_clock(
    client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis
) -> None:
    policy = await create_policy(client, tenant)
    created = await ingest(db, tenant, "hello")
    await settle(db, arq, tenant, FRIDAY_NOON)
    now = FRIDAY_NOON + timedelta(minutes=70)
    from omnistream.security.principal import Actor

    actor = Actor.automation(UUID(tenant.id))
    shown = await sla.conversation_sla(db, actor, created.conversation_id, now=now)
    assert shown.policy is not None
    assert str(shown.policy.id) == policy["id"]
    by_target = {t.target: t for t in shown.targets}
    assert by_target["first_response"].seconds_left == -10 * 60  # ten minutes late
    assert by_target["first_response"].late
    assert by_target["resolution"].seconds_left == (480 - 70) * 60
    assert not by_target["resolution"].late
    assert {t.state for t in shown.targets} == {"running"}

    nothing = await ingest(db, tenant, "hi")
    await client.delete(f"/api/sla-policies/{policy['id']}", headers=tenant.headers)
    assert await conversation_sla(client, tenant.headers, nothing.conversation_id) == {
        "conversation_id": str(nothing.conversation_id),
        "policy": None,
        "targets": [],
    }


async def test_a_conversations_sla_is_for_those_who_see_the_conversation(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant, db: Database, arq: ArqRedis
) -> None:
    await create_policy(client, tenant)
    created = await ingest(db, tenant, "hello")
    await settle(db, arq, tenant, FRIDAY_NOON)
    agent = await create_agent(client, tenant, "agent")
    url = f"/api/conversations/{created.conversation_id}/sla"
    # An unrouted conversation is every agent's to see.
    assert len((await conversation_sla(client, agent["headers"], created.conversation_id))["targets"]) == 2
    division = await new_division(client, tenant)
    await client.patch(
        f"/api/conversations/{created.conversation_id}/assign",
        json={"agent_id": None, "division_id": division},
        headers=tenant.headers,
    )
    problem(await client.get(url, headers=agent["headers"]), 404)
    problem(await client.get(url, headers=other_tenant.headers), 404)
    problem(await client.get(f"/api/conversations/{NOWHERE}/sla", headers=tenant.headers), 404)
    problem(await client.get("/api/conversations/nope/sla", headers=tenant.headers), 404)
    problem(await client.get(url), 401)


async def test_business_hours_without_any_hours_set_count_every_hour(
    client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis
) -> None:
    await create_policy(client, tenant, business_hours=True, targets={"first_response_minutes": 120})
    created = await ingest(db, tenant, "hello")
    saturday = utc("2024-06-08T12:00:00")
    await settle(db, arq, tenant, saturday)
    assert (await clocks(db, tenant, created.conversation_id))["first_response"]["due_at"] == saturday + timedelta(
        hours=2
    )


async def test_an_event_handled_late_decides_by_its_own_time(
    client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis
) -> None:
    """A retry may bring an older event after newer ones: it meets no clock started after it, and
    its out-of-date snapshot changes neither the status the clocks know nor the policy."""
    from omnistream.automation_events.processing import Claim

    await create_policy(client, tenant)
    created = await ingest(db, tenant, "hello", external_id="628222")
    await settle(db, arq, tenant, FRIDAY_NOON)
    await reply(client, tenant, created.conversation_id)
    await settle(db, arq, tenant, FRIDAY_NOON + timedelta(minutes=10))
    await ingest(db, tenant, "and?", external_id="628222")
    await settle(db, arq, tenant, FRIDAY_NOON + timedelta(minutes=20))
    [opened] = [e for e in await events_of(db, tenant) if e["event_type"] == "conversation_created"]

    def late(event_type: str, minutes: int, **payload: Any) -> Claim:
        return Claim(
            tenant_id=UUID(tenant.id),
            id=UUID(NOWHERE),
            event_type=event_type,
            conversation_id=created.conversation_id,
            contact_id=opened["contact_id"],
            payload=opened["payload"] | payload,
            source="api",
            attempts=1,
            created_at=FRIDAY_NOON + timedelta(minutes=minutes),
            rules_version=1,
        )

    async with db.tenant(UUID(tenant.id)) as conn:
        await sla.on_events(
            conn,
            UUID(tenant.id),
            [
                late("message_sent", 15, sender_type="agent"),
                late("status_changed", 16, status="resolved", previous_status="open"),
            ],
        )
    found = await clocks(db, tenant, created.conversation_id)
    assert found["next_response"]["met_at"] is None
    assert found["resolution"]["met_at"] is None
    assert found["next_response"]["started_at"] == FRIDAY_NOON + timedelta(minutes=20)


async def test_an_organisation_without_policies_keeps_no_clocks(
    client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis
) -> None:
    created = await ingest(db, tenant, "hello")
    await settle(db, arq, tenant, FRIDAY_NOON)
    await create_policy(client, tenant)
    await set_status(client, tenant, created.conversation_id, "pending")
    await settle(db, arq, tenant, FRIDAY_NOON + timedelta(minutes=1))
    async with db.tenant(UUID(tenant.id)) as conn:
        assert await conn.fetchval("SELECT count(*) FROM sla_conversations") == 0
    assert await clocks(db, tenant, created.conversation_id) == {}


async def test_whole_minutes_written_as_decimals_are_minutes(client: AsyncTestClient, tenant: Tenant) -> None:
    """JSON has one number type: 60.0 is 60, and an optional target may be given so too."""
    created = await create_policy(client, tenant, targets={"resolution_minutes": 60.0, "first_response_minutes": None})
    assert created["targets"]["resolution_minutes"] == 60
    problem(
        await client.post(
            "/api/sla-policies", json=policy_body(targets={"resolution_minutes": 60.5}), headers=tenant.headers
        ),
        400,
    )
