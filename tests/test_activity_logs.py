"""The activity log: every change and sign-in event, with who, what, which object and from where."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import pytest
from litestar.testing import AsyncTestClient

from omnistream.app import create_app
from omnistream.config import Settings
from tests.conftest import PASSWORD, Tenant, create_agent, register

PEER_IP = "203.0.113.7"
ENTRY_FIELDS = {
    "id",
    "actor_type",
    "actor_id",
    "actor_email",
    "action",
    "object_type",
    "object_id",
    "ip",
    "request_id",
    "details",
    "created_at",
}


@pytest.fixture
async def peer(settings: Settings) -> AsyncIterator[AsyncTestClient]:
    """A client whose requests come from a real IP address (the stock test client has none)."""
    app = create_app(settings)

    async def from_peer(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = {**scope, "client": (PEER_IP, 40123)}
        await app(scope, receive, send)

    async with AsyncTestClient(app=from_peer) as test_client:
        yield test_client


async def logs(client: AsyncTestClient, tenant: Tenant, **params: Any) -> dict[str, Any]:
    response = await client.get("/api/activity-logs", params=params, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


def one(entries: list[dict[str, Any]], action: str, object_id: str | None = None) -> dict[str, Any]:
    found = [e for e in entries if e["action"] == action and (object_id is None or e["object_id"] == object_id)]
    assert len(found) == 1, f"{action} {object_id}: {found}"
    return found[0]


async def test_changes_are_recorded_with_actor_object_and_address(peer: AsyncTestClient) -> None:
    tenant = await register(peer)
    created = await peer.post(
        "/api/agents",
        json={"email": "logged@example.com", "name": "Logged Agent", "password": PASSWORD},
        headers=tenant.headers,
    )
    assert created.status_code == 201, created.text
    agent_id = created.json()["id"]
    updated = await peer.patch(
        f"/api/agents/{agent_id}", json={"name": "Renamed", "password": "another secret pw"}, headers=tenant.headers
    )
    assert updated.status_code == 200, updated.text
    role = await peer.post(
        "/api/roles", json={"name": "Auditor", "permissions": ["agents.read"]}, headers=tenant.headers
    )
    role_id = role.json()["id"]
    await peer.patch(f"/api/roles/{role_id}", json={"description": "Looks"}, headers=tenant.headers)
    await peer.delete(f"/api/roles/{role_id}", headers=tenant.headers)
    key = await peer.post("/api/api-keys", json={"name": "ci"}, headers=tenant.headers)
    key_id = key.json()["id"]
    await peer.delete(f"/api/api-keys/{key_id}", headers=tenant.headers)
    await peer.patch(f"/api/agents/{agent_id}/status", json={"status": "away"}, headers=tenant.headers)
    deleted = await peer.delete(f"/api/agents/{agent_id}", headers=tenant.headers)
    assert deleted.status_code == 200, deleted.text

    body = await logs(peer, tenant, per_page=100)
    entries = body["activity_logs"]
    assert set(body) == {"activity_logs", "next_cursor", "total"}
    assert body["total"] == len(entries)
    expected = [
        ("tenant.registered", "tenant", tenant.id),
        ("agent.created", "agent", agent_id),
        ("agent.updated", "agent", agent_id),
        ("role.created", "role", role_id),
        ("role.updated", "role", role_id),
        ("role.deleted", "role", role_id),
        ("api_key.created", "api_key", key_id),
        ("api_key.revoked", "api_key", key_id),
        ("agent.status_changed", "agent", agent_id),
        ("agent.deleted", "agent", agent_id),
    ]
    for action, object_type, object_id in expected:
        entry = one(entries, action, object_id)
        assert set(entry) == ENTRY_FIELDS
        assert entry["object_type"] == object_type
        assert entry["actor_type"] == "user"
        assert entry["actor_id"] == tenant.admin_id
        assert entry["actor_email"] == tenant.admin_email
        assert entry["ip"] == PEER_IP
        assert entry["request_id"]
    # Newest first by default, in the order things happened.
    order = [e["action"] for e in entries if (e["action"], e["object_type"], e["object_id"]) in set(expected)]
    assert order == [a for a, _, _ in reversed(expected)]

    # The entry tells what changed, never a secret.
    assert one(entries, "agent.created")["details"]["email"] == "logged@example.com"
    changes = one(entries, "agent.updated")["details"]["changes"]
    assert changes["name"] == "Renamed"
    assert changes["password"] == "changed"
    assert one(entries, "role.created")["details"]["permissions"] == ["agents.read"]
    text = json.dumps(entries)
    assert "another secret pw" not in text
    assert PASSWORD not in text
    assert key.json()["key"] not in text


async def test_entry_carries_the_request_id_of_the_change(peer: AsyncTestClient) -> None:
    tenant = await register(peer)
    request_id = uuid4().hex
    response = await peer.post(
        "/api/roles", json={"name": "Traced"}, headers=tenant.headers | {"X-Request-ID": request_id}
    )
    assert response.status_code == 201, response.text
    assert response.headers["x-request-id"] == request_id
    entry = one((await logs(peer, tenant))["activity_logs"], "role.created")
    assert entry["request_id"] == request_id


async def test_sign_in_events_are_recorded(peer: AsyncTestClient) -> None:
    tenant = await register(peer)
    agent = await create_agent(peer, tenant)
    failed = await peer.post("/api/auth/login", json={"email": agent["email"], "password": "wrong password"})
    assert failed.status_code == 401
    ok = await peer.post("/api/auth/login", json={"email": agent["email"], "password": PASSWORD})
    assert ok.status_code == 200
    peer.cookies.clear()
    out = await peer.post("/api/auth/logout", headers={"Authorization": f"Bearer {ok.json()['access_token']}"})
    assert out.status_code == 200, out.text
    peer.cookies.clear()

    entries = (await logs(peer, tenant, actor_id=agent["id"], per_page=100))["activity_logs"]
    assert [e["action"] for e in entries] == ["auth.logout", "auth.login", "auth.login_failed", "auth.login"]
    for entry in entries:
        assert entry["actor_id"] == agent["id"]
        assert entry["actor_email"] == agent["email"]
        assert entry["object_type"] == "agent"
        assert entry["object_id"] == agent["id"]
        assert entry["ip"] == PEER_IP
    # An unknown email is logged nowhere (there is no tenant to log it in), and leaks nothing.
    unknown = await peer.post("/api/auth/login", json={"email": "ghost@example.com", "password": "whatever"})
    assert unknown.status_code == 401
    assert "ghost@example.com" not in json.dumps((await logs(peer, tenant, per_page=100))["activity_logs"])


async def test_actions_through_an_api_key_name_the_key(client: AsyncTestClient, tenant: Tenant) -> None:
    key = await client.post("/api/api-keys", json={"name": "automation"}, headers=tenant.headers)
    assert key.status_code == 201, key.text
    response = await client.post("/api/roles", json={"name": "Via Key"}, headers={"X-API-Key": key.json()["key"]})
    assert response.status_code == 201, response.text
    entry = one((await logs(client, tenant))["activity_logs"], "role.created")
    assert entry["actor_type"] == "api_key"
    assert entry["actor_id"] == tenant.admin_id


async def test_filters(client: AsyncTestClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)  # admin: agent.created; agent: auth.login
    await client.patch(f"/api/agents/{agent['id']}/status", json={"status": "online"}, headers=agent["headers"])
    role = (await client.post("/api/roles", json={"name": "Filtered"}, headers=tenant.headers)).json()
    await client.patch(f"/api/agents/{agent['id']}", json={"name": "Changed"}, headers=tenant.headers)

    def actions(body: dict[str, Any]) -> list[str]:
        assert body["total"] == len(body["activity_logs"])
        return [e["action"] for e in body["activity_logs"]]

    everything = actions(await logs(client, tenant))
    assert everything == [
        "agent.updated",
        "role.created",
        "agent.status_changed",
        "auth.login",
        "agent.created",
        "tenant.registered",
    ]
    assert actions(await logs(client, tenant, actor_id=agent["id"])) == ["agent.status_changed", "auth.login"]
    assert actions(await logs(client, tenant, actor_id=tenant.admin_id)) == [
        "agent.updated",
        "role.created",
        "agent.created",
        "tenant.registered",
    ]
    assert actions(await logs(client, tenant, actor_id=str(uuid4()))) == []
    # An action matches itself and, as a prefix, its family; never a mere substring.
    assert actions(await logs(client, tenant, action="agent.created")) == ["agent.created"]
    assert actions(await logs(client, tenant, action="agent")) == [
        "agent.updated",
        "agent.status_changed",
        "agent.created",
    ]
    assert actions(await logs(client, tenant, action="age")) == []
    assert actions(await logs(client, tenant, action="auth")) == ["auth.login"]
    assert actions(await logs(client, tenant, object_type="role")) == ["role.created"]
    assert actions(await logs(client, tenant, object_id=role["id"])) == ["role.created"]
    assert actions(await logs(client, tenant, object_id=agent["id"])) == [
        "agent.updated",
        "agent.status_changed",
        "auth.login",
        "agent.created",
    ]
    assert actions(await logs(client, tenant, object_type="agent", actor_id=agent["id"], action="agent")) == [
        "agent.status_changed"
    ]


async def test_date_range(client: AsyncTestClient, tenant: Tenant) -> None:
    await client.post("/api/roles", json={"name": "Dated"}, headers=tenant.headers)
    entries = (await logs(client, tenant, sort_order="asc"))["activity_logs"]
    assert len(entries) == 2
    first, second = (datetime.fromisoformat(e["created_at"].replace("Z", "+00:00")) for e in entries)
    assert first < second

    def iso(moment: datetime) -> str:
        return moment.isoformat()

    def count(**params: Any) -> Any:
        return logs(client, tenant, **params)

    assert (await count(created_from=iso(second)))["total"] == 1  # from is inclusive
    assert (await count(created_to=iso(second)))["total"] == 1  # to is exclusive
    assert (await count(created_from=iso(first), created_to=iso(second + timedelta(microseconds=1))))["total"] == 2
    now = datetime.now(UTC)
    assert (await count(created_from=iso(now + timedelta(hours=1))))["total"] == 0
    assert (await count(created_to=iso(now - timedelta(days=1))))["total"] == 0
    assert (await count(created_from=iso(now - timedelta(days=1)), created_to=iso(now + timedelta(hours=1))))[
        "total"
    ] == 2
    # Other offsets and offset-less times (read as UTC) are understood too.
    east = (now + timedelta(hours=1)).astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert (await count(created_to=east.isoformat()))["total"] == 2
    assert (await count(created_from=east.isoformat()))["total"] == 0
    naive_past = (now - timedelta(days=1)).replace(tzinfo=None).isoformat()
    assert (await count(created_from=naive_past, created_to=iso(now + timedelta(hours=1))))["total"] == 2


async def test_reversed_date_range_is_422(client: AsyncTestClient, tenant: Tenant) -> None:
    now = datetime.now(UTC)
    for created_from, created_to in (
        ((now + timedelta(days=1)).isoformat(), now.isoformat()),
        ((now + timedelta(days=1)).replace(tzinfo=None).isoformat(), now.isoformat()),
    ):
        response = await client.get(
            "/api/activity-logs",
            params={"created_from": created_from, "created_to": created_to},
            headers=tenant.headers,
        )
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "created_from" in {e["field"] for e in response.json()["errors"]}


@pytest.mark.parametrize(
    "params",
    [
        {"created_from": "last tuesday"},
        {"actor_id": "me"},
        {"object_id": "123"},
        {"cursor": "nope"},
        {"per_page": 101},
        {"action": "x" * 101},
    ],
)
async def test_bad_query_parameters_are_400(client: AsyncTestClient, tenant: Tenant, params: dict[str, Any]) -> None:
    response = await client.get("/api/activity-logs", params=params, headers=tenant.headers)
    assert response.status_code == 400, response.text
    field = next(iter(params))
    assert field in {e["field"] for e in response.json()["errors"]}


async def test_cursor_paging(client: AsyncTestClient, tenant: Tenant) -> None:
    for i in range(6):
        await client.post("/api/roles", json={"name": f"Paged {i}"}, headers=tenant.headers)
    all_entries = (await logs(client, tenant, per_page=100))["activity_logs"]
    assert len(all_entries) == 7
    for order in ("desc", "asc"):
        seen: list[str] = []
        cursor = None
        for _ in range(10):
            params: dict[str, Any] = {"per_page": 3, "sort_order": order}
            if cursor:
                params["cursor"] = cursor
            body = await logs(client, tenant, **params)
            assert body["total"] == 7
            seen.extend(e["id"] for e in body["activity_logs"])
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) == 7
        expected = [e["id"] for e in all_entries]
        assert seen == (expected if order == "desc" else expected[::-1])
    # Paging composes with a filter.
    filtered = await logs(client, tenant, action="role", per_page=4)
    assert filtered["total"] == 6
    rest = await logs(client, tenant, action="role", per_page=4, cursor=filtered["next_cursor"])
    assert len(filtered["activity_logs"]) + len(rest["activity_logs"]) == 6
    assert rest["next_cursor"] is None
    assert {e["action"] for e in rest["activity_logs"]} == {"role.created"}


@pytest.mark.parametrize("role", ["agent", "supervisor"])
async def test_only_admins_read_the_log(client: AsyncTestClient, tenant: Tenant, role: str) -> None:
    caller = await create_agent(client, tenant, role=role)
    response = await client.get("/api/activity-logs", headers=caller["headers"])
    assert response.status_code == 403, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert (await client.get("/api/activity-logs")).status_code == 401


async def test_another_tenants_log_is_never_visible(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    ours = await create_agent(client, tenant)
    await client.post("/api/roles", json={"name": "Ours"}, headers=tenant.headers)
    await client.post("/api/auth/login", json={"email": ours["email"], "password": "wrong password"})
    client.cookies.clear()

    theirs = await logs(client, other_tenant, per_page=100)
    assert [e["action"] for e in theirs["activity_logs"]] == ["tenant.registered"]
    assert theirs["activity_logs"][0]["object_id"] == other_tenant.id
    text = json.dumps(theirs)
    for secret in (tenant.id, tenant.admin_id, tenant.admin_email, ours["id"], ours["email"]):
        assert secret not in text
    for params in ({"actor_id": tenant.admin_id}, {"object_id": ours["id"]}, {"action": "agent"}):
        assert (await logs(client, other_tenant, **params))["total"] == 0
    # And this tenant sees only its own.
    mine = (await logs(client, tenant, per_page=100))["activity_logs"]
    assert other_tenant.id not in json.dumps(mine)
    assert len(mine) == 5  # registered, agent created, login, role created, failed login
