"""Chat expiration rules per channel, over HTTP and for the conversations area."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from litestar.testing import AsyncTestClient

from omnistream.chat_expiration import service as chat_expiration
from omnistream.config import Settings
from omnistream.db import Database
from tests.conftest import Tenant, create_agent, problem

RULES = "/api/chat-expiration-rules"


async def list_rules(client: AsyncTestClient, tenant: Tenant) -> dict[str, Any]:
    response = await client.get(RULES, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def put_rule(client: AsyncTestClient, tenant: Tenant, channel: str, **body: Any) -> dict[str, Any]:
    response = await client.put(f"{RULES}/{channel}", json=body, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def logged(client: AsyncTestClient, tenant: Tenant) -> list[dict[str, Any]]:
    response = await client.get(
        "/api/activity-logs", params={"action": "chat_expiration_rule.updated"}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    return response.json()["activity_logs"]


async def test_no_rules_at_first(client: AsyncTestClient, tenant: Tenant) -> None:
    assert await list_rules(client, tenant) == {"rules": [], "next_cursor": None, "total": 0}


async def test_put_creates_then_replaces_the_channels_rule(client: AsyncTestClient, tenant: Tenant) -> None:
    created = await put_rule(client, tenant, "whatsapp", enabled=True, inactivity_minutes=60)
    assert created["channel"] == "whatsapp"
    assert created["enabled"] is True
    assert created["inactivity_minutes"] == 60
    assert created["statuses"] == ["open", "pending"]  # both by default
    assert created["updated_by"] == tenant.admin_id
    assert abs(datetime.fromisoformat(created["updated_at"].replace("Z", "+00:00")) - datetime.now(UTC)) < timedelta(
        minutes=1
    )

    replaced = await put_rule(client, tenant, "whatsapp", enabled=False, inactivity_minutes=1440, statuses=["pending"])
    assert (replaced["enabled"], replaced["inactivity_minutes"], replaced["statuses"]) == (False, 1440, ["pending"])
    assert await list_rules(client, tenant) == {"rules": [replaced], "next_cursor": None, "total": 1}

    entries = await logged(client, tenant)
    assert len(entries) == 2
    assert entries[0]["details"] == {
        "channel": "whatsapp",
        "enabled": False,
        "inactivity_minutes": 1440,
        "statuses": ["pending"],
    }


async def test_each_channel_has_its_own_rule(client: AsyncTestClient, tenant: Tenant) -> None:
    for minutes, channel in enumerate(["whatsapp", "messenger", "instagram", "email"], start=1):
        await put_rule(client, tenant, channel, inactivity_minutes=minutes * 10)
    body = await list_rules(client, tenant)
    assert body["total"] == 4
    assert [(r["channel"], r["inactivity_minutes"]) for r in body["rules"]] == [
        ("email", 40),
        ("instagram", 30),
        ("messenger", 20),
        ("whatsapp", 10),
    ]
    assert all(r["enabled"] for r in body["rules"])  # enabled unless said otherwise


async def test_statuses_are_deduplicated_in_a_stable_order(client: AsyncTestClient, tenant: Tenant) -> None:
    assert (await put_rule(client, tenant, "email", inactivity_minutes=5, statuses=["pending", "open"]))[
        "statuses"
    ] == [
        "open",
        "pending",
    ]
    assert (await put_rule(client, tenant, "email", inactivity_minutes=5, statuses=["open", "open"]))["statuses"] == [
        "open"
    ]


@pytest.mark.parametrize("minutes", [1, 525_600])
async def test_inactivity_bounds_are_accepted(client: AsyncTestClient, tenant: Tenant, minutes: int) -> None:
    assert (await put_rule(client, tenant, "instagram", inactivity_minutes=minutes))["inactivity_minutes"] == minutes


BAD_BODIES = {
    "zero minutes": ({"inactivity_minutes": 0}, "inactivity_minutes"),
    "negative minutes": ({"inactivity_minutes": -5}, "inactivity_minutes"),
    "more than a year": ({"inactivity_minutes": 525_601}, "inactivity_minutes"),
    "fractional minutes": ({"inactivity_minutes": 1.5}, "inactivity_minutes"),
    "minutes as words": ({"inactivity_minutes": "an hour"}, "inactivity_minutes"),
    "minutes missing": ({"enabled": True}, "inactivity_minutes"),
    "minutes null": ({"inactivity_minutes": None}, "inactivity_minutes"),
    "no statuses": ({"inactivity_minutes": 60, "statuses": []}, "statuses"),
    "closed is not expirable": ({"inactivity_minutes": 60, "statuses": ["closed"]}, "statuses"),
    "too many statuses": ({"inactivity_minutes": 60, "statuses": ["open", "pending", "open"]}, "statuses"),
    "statuses as text": ({"inactivity_minutes": 60, "statuses": "open"}, "statuses"),
    "enabled as words": ({"inactivity_minutes": 60, "enabled": "yes please"}, "enabled"),
    "enabled null": ({"inactivity_minutes": 60, "enabled": None}, "enabled"),
    "unknown field": ({"inactivity_minutes": 60, "channel": "email"}, "channel"),
}


@pytest.mark.parametrize(("body", "field"), BAD_BODIES.values(), ids=BAD_BODIES.keys())
async def test_bad_bodies_are_refused_and_nothing_changes(
    client: AsyncTestClient, tenant: Tenant, body: dict[str, Any], field: str
) -> None:
    before = await put_rule(client, tenant, "whatsapp", inactivity_minutes=30)
    for channel in ("whatsapp", "email"):
        refused = problem(await client.put(f"{RULES}/{channel}", json=body, headers=tenant.headers), 400)
        fields = {e["field"] for e in refused["errors"]}
        assert any(f == field or f.startswith(f"{field}[") for f in fields), refused
    assert await list_rules(client, tenant) == {"rules": [before], "next_cursor": None, "total": 1}
    assert len(await logged(client, tenant)) == 1


@pytest.mark.parametrize("channel", ["sms", "WhatsApp", "telegram", "%20"])
async def test_unknown_channels_are_refused(client: AsyncTestClient, tenant: Tenant, channel: str) -> None:
    response = await client.put(f"{RULES}/{channel}", json={"inactivity_minutes": 60}, headers=tenant.headers)
    problem(response, 400)
    assert (await list_rules(client, tenant))["total"] == 0


async def test_supervisors_read_and_only_admins_change(client: AsyncTestClient, tenant: Tenant) -> None:
    rule = await put_rule(client, tenant, "messenger", inactivity_minutes=120)
    supervisor = (await create_agent(client, tenant, "supervisor"))["headers"]
    agent = (await create_agent(client, tenant, "agent"))["headers"]

    response = await client.get(RULES, headers=supervisor)
    assert response.status_code == 200, response.text
    assert response.json()["rules"] == [rule]
    problem(await client.get(RULES, headers=agent), 403)
    for headers in (supervisor, agent):
        problem(await client.put(f"{RULES}/messenger", json={"inactivity_minutes": 1}, headers=headers), 403)
    assert (await list_rules(client, tenant))["rules"] == [rule]
    assert (await client.get(RULES)).status_code == 401


async def test_tenants_see_only_their_own_rules(client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant) -> None:
    await put_rule(client, tenant, "whatsapp", inactivity_minutes=30)
    await put_rule(client, other_tenant, "whatsapp", inactivity_minutes=90)
    assert [r["inactivity_minutes"] for r in (await list_rules(client, tenant))["rules"]] == [30]
    assert [r["inactivity_minutes"] for r in (await list_rules(client, other_tenant))["rules"]] == [90]


@pytest.fixture
async def app_db(settings: Settings) -> AsyncIterator[Database]:
    """A pool of the app's own role on this test's event loop (the app's pool lives on the client's)."""
    db = await Database.connect(settings.database_url, min_size=1, max_size=1)
    yield db
    await db.close()


async def test_enabled_rules_for_the_conversations_area(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant, app_db: Database
) -> None:
    await put_rule(client, tenant, "whatsapp", inactivity_minutes=30, statuses=["open"])
    await put_rule(client, tenant, "email", inactivity_minutes=60, enabled=False)
    await put_rule(client, tenant, "instagram", inactivity_minutes=90)
    await put_rule(client, other_tenant, "messenger", inactivity_minutes=15)

    tenant_id = UUID(tenant.id)
    async with app_db.tenant(tenant_id) as conn:
        rules = await chat_expiration.enabled_rules(conn, tenant_id)
    assert [(r.channel, r.inactivity_minutes, r.statuses) for r in rules] == [
        ("instagram", 90, ["open", "pending"]),
        ("whatsapp", 30, ["open"]),
    ]
