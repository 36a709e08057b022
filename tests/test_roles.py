"""Roles: the three built-in levels, custom roles made of permissions, and what they allow."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest
from litestar.testing import AsyncTestClient

from omnistream.security.permissions import PERMISSIONS
from tests.conftest import Tenant, create_agent

ROLE_FIELDS = {
    "id",
    "name",
    "description",
    "base_role",
    "is_builtin",
    "permissions",
    "agent_count",
    "created_at",
    "updated_at",
}


def assert_problem(response: Any, status: int, mentions: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    if mentions is not None:
        fields = {e.get("field") for e in body.get("errors") or []}
        assert mentions in fields or mentions in body["detail"], body


async def roles_of(client: AsyncTestClient, tenant: Tenant) -> list[dict[str, Any]]:
    response = await client.get("/api/roles", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()["roles"]


async def builtin(client: AsyncTestClient, tenant: Tenant) -> dict[str, dict[str, Any]]:
    return {r["base_role"]: r for r in await roles_of(client, tenant) if r["is_builtin"]}


async def make_role(client: AsyncTestClient, tenant: Tenant, **body: Any) -> dict[str, Any]:
    body = {"name": f"Role {uuid4().hex[:6]}"} | body
    response = await client.post("/api/roles", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def test_builtin_roles(client: AsyncTestClient, tenant: Tenant) -> None:
    response = await client.get("/api/roles", headers=tenant.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"roles", "next_cursor", "total"}
    assert body["total"] == 3 == len(body["roles"])
    roles = {r["base_role"]: r for r in body["roles"]}
    assert set(roles) == {"agent", "supervisor", "admin"}
    for role in body["roles"]:
        assert set(role) == ROLE_FIELDS
        assert role["is_builtin"] is True
        assert role["description"]
        assert role["permissions"] == sorted(role["permissions"])
    assert {r["name"] for r in body["roles"]} == {"Agent", "Supervisor", "Admin"}

    agent, supervisor, admin = (set(roles[n]["permissions"]) for n in ("agent", "supervisor", "admin"))
    assert admin == set(PERMISSIONS)
    assert agent < supervisor < admin
    assert {"agents.read", "agents.status", "api_keys.own", "conversations.read"} <= agent
    assert not {"agents.manage", "roles.manage", "automation.manage", "activity_logs.read"} & agent
    assert {"automation.manage", "analytics.read", "conversations.manage"} <= supervisor
    assert not {"agents.manage", "roles.manage", "billing.manage", "activity_logs.read"} & supervisor
    assert roles["admin"]["agent_count"] == 1
    assert roles["agent"]["agent_count"] == 0


async def test_agent_count_follows_agents(client: AsyncTestClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    await create_agent(client, tenant)
    assert (await builtin(client, tenant))["agent"]["agent_count"] == 2
    await client.delete(f"/api/agents/{agent['id']}", headers=tenant.headers)
    assert (await builtin(client, tenant))["agent"]["agent_count"] == 1


async def test_permission_catalogue(client: AsyncTestClient, tenant: Tenant) -> None:
    response = await client.get("/api/permissions", headers=tenant.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    permissions = {p["name"]: p for p in body["permissions"]}
    assert body["total"] == len(body["permissions"]) == len(PERMISSIONS)
    assert set(permissions) == set(PERMISSIONS)
    assert all(p["description"] for p in body["permissions"])
    assert permissions["agents.manage"]["builtin_roles"] == ["admin"]
    assert permissions["agents.read"]["builtin_roles"] == ["agent", "supervisor", "admin"]
    assert permissions["automation.manage"]["builtin_roles"] == ["supervisor", "admin"]
    # The catalogue agrees with what the built-in roles report.
    roles = await builtin(client, tenant)
    for level, role in roles.items():
        assert set(role["permissions"]) == {n for n, p in permissions.items() if level in p["builtin_roles"]}


async def test_create_custom_role(client: AsyncTestClient, tenant: Tenant) -> None:
    response = await client.post(
        "/api/roles",
        json={
            "name": "  Night Shift  ",
            "description": "Reads, answers, nothing else",
            "base_role": "agent",
            "permissions": ["conversations.read", "agents.read", "conversations.read"],
        },
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    role = response.json()
    assert set(role) == ROLE_FIELDS
    assert role["name"] == "Night Shift"
    assert role["description"] == "Reads, answers, nothing else"
    assert role["base_role"] == "agent"
    assert role["is_builtin"] is False
    assert role["permissions"] == ["agents.read", "conversations.read"]
    assert role["agent_count"] == 0

    fetched = await client.get(f"/api/roles/{role['id']}", headers=tenant.headers)
    assert fetched.status_code == 200
    assert fetched.json() == role
    listed = await roles_of(client, tenant)
    assert len(listed) == 4
    assert role in listed


async def test_create_defaults(client: AsyncTestClient, tenant: Tenant) -> None:
    role = await make_role(client, tenant, name="Bare")
    assert role["base_role"] == "agent"
    assert role["permissions"] == []
    assert role["description"] == ""


async def test_unknown_permission_is_400_naming_it(client: AsyncTestClient, tenant: Tenant) -> None:
    response = await client.post(
        "/api/roles",
        json={"name": "Pilot", "permissions": ["agents.read", "planes.fly"]},
        headers=tenant.headers,
    )
    assert_problem(response, 400, "permissions")
    assert "planes.fly" in response.json()["detail"]
    assert len(await roles_of(client, tenant)) == 3


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "Ok", "base_role": "owner"}, "base_role"),
        ({"name": "Ok", "base_role": "super_admin"}, "base_role"),
        ({"name": "Ok", "permissions": "agents.read"}, "permissions"),
        ({"name": "Ok", "is_builtin": True}, "is_builtin"),
    ],
)
async def test_create_rejects_bad_input(
    client: AsyncTestClient, tenant: Tenant, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/api/roles", json=body, headers=tenant.headers)
    assert_problem(response, 400, field)
    assert len(await roles_of(client, tenant)) == 3


@pytest.mark.parametrize("name", ["Auditor", "AUDITOR", "  auditor ", "Agent", "admin"])
async def test_duplicate_role_name_is_409(client: AsyncTestClient, tenant: Tenant, name: str) -> None:
    await make_role(client, tenant, name="Auditor")
    response = await client.post("/api/roles", json={"name": name}, headers=tenant.headers)
    assert_problem(response, 409, "name")
    assert len(await roles_of(client, tenant)) == 4


async def test_same_role_name_in_another_tenant_is_fine(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    await make_role(client, tenant, name="Auditor")
    await make_role(client, other_tenant, name="Auditor")


async def test_custom_role_permissions_govern_access(client: AsyncTestClient, tenant: Tenant) -> None:
    role = await make_role(client, tenant, name="Reader", base_role="agent", permissions=["agents.read"])
    agent = await create_agent(client, tenant)
    response = await client.patch(f"/api/agents/{agent['id']}", json={"role_id": role["id"]}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.json()["role"] == "Reader"
    headers = agent["headers"]

    # What the role grants works; what it lacks is refused, even though the built-in agent role has it.
    assert (await client.get("/api/agents", headers=headers)).status_code == 200
    assert (await client.get(f"/api/agents/{tenant.admin_id}", headers=headers)).status_code == 200
    assert_problem(await client.get("/api/api-keys", headers=headers), 403, "api_keys.own")
    assert_problem(
        await client.patch(f"/api/agents/{agent['id']}/status", json={"status": "online"}, headers=headers),
        403,
    )
    me = (await client.get("/api/auth/me", headers=headers)).json()
    assert me["permissions"] == ["agents.read"]

    # Changing the role changes the agent's rights at once, on the same session.
    response = await client.patch(
        f"/api/roles/{role['id']}", json={"permissions": ["agents.read", "api_keys.own"]}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    assert (await client.get("/api/api-keys", headers=headers)).status_code == 200

    response = await client.patch(f"/api/roles/{role['id']}", json={"permissions": []}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert_problem(await client.get("/api/agents", headers=headers), 403)


async def test_a_permission_does_not_lift_the_minimum_role(client: AsyncTestClient, tenant: Tenant) -> None:
    """agents.manage on an agent-level role is still below the admin minimum of POST /api/agents."""
    role = await make_role(client, tenant, base_role="agent", permissions=["agents.read", "agents.manage"])
    agent = await create_agent(client, tenant, role_id=role["id"])
    response = await client.post(
        "/api/agents",
        json={"email": "made@example.com", "name": "Made", "password": "long enough pw"},
        headers=agent["headers"],
    )
    assert_problem(response, 403)
    assert_problem(await client.get("/api/roles", headers=agent["headers"]), 403)


async def test_an_admin_level_custom_role_needs_the_permission_too(client: AsyncTestClient, tenant: Tenant) -> None:
    role = await make_role(client, tenant, base_role="admin", permissions=["agents.read", "agents.manage"])
    manager = await create_agent(client, tenant, role_id=role["id"])
    # A role within the manager's rights: the default agent role holds more than it does.
    reader = await make_role(client, tenant, permissions=["agents.read"])
    response = await client.post(
        "/api/agents",
        json={"email": "made@example.com", "name": "Made", "password": "long enough pw", "role_id": reader["id"]},
        headers=manager["headers"],
    )
    assert response.status_code == 201, response.text
    assert_problem(await client.get("/api/roles", headers=manager["headers"]), 403, "roles.manage")
    assert_problem(await client.get("/api/activity-logs", headers=manager["headers"]), 403)


async def test_update_custom_role(client: AsyncTestClient, tenant: Tenant) -> None:
    role = await make_role(client, tenant, name="Temp", permissions=["agents.read"])
    response = await client.patch(
        f"/api/roles/{role['id']}",
        json={"name": " Lead ", "description": "Leads the shift", "base_role": "supervisor"},
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["name"] == "Lead"
    assert updated["description"] == "Leads the shift"
    assert updated["base_role"] == "supervisor"
    assert updated["permissions"] == ["agents.read"]  # untouched fields are kept
    assert updated["updated_at"] > role["updated_at"]
    assert (await client.get(f"/api/roles/{role['id']}", headers=tenant.headers)).json() == updated

    response = await client.patch(
        f"/api/roles/{role['id']}", json={"permissions": ["agents.read", "ghost.walk"]}, headers=tenant.headers
    )
    assert_problem(response, 400, "permissions")
    assert "ghost.walk" in response.json()["detail"]

    await make_role(client, tenant, name="Taken")
    assert_problem(
        await client.patch(f"/api/roles/{role['id']}", json={"name": "TAKEN"}, headers=tenant.headers), 409, "name"
    )
    assert_problem(
        await client.patch(f"/api/roles/{role['id']}", json={"name": "supervisor"}, headers=tenant.headers), 409
    )
    assert_problem(
        await client.patch(f"/api/roles/{role['id']}", json={"base_role": "root"}, headers=tenant.headers), 400
    )
    # Renaming to its own name in another case is not a conflict.
    same = await client.patch(f"/api/roles/{role['id']}", json={"name": "LEAD"}, headers=tenant.headers)
    assert same.status_code == 200, same.text
    final = (await client.get(f"/api/roles/{role['id']}", headers=tenant.headers)).json()
    assert final["name"] == "LEAD"
    assert final["permissions"] == ["agents.read"]
    assert final["base_role"] == "supervisor"


async def test_builtin_roles_cannot_be_changed_or_deleted(client: AsyncTestClient, tenant: Tenant) -> None:
    before = await builtin(client, tenant)
    for role in before.values():
        path = f"/api/roles/{role['id']}"
        assert_problem(await client.patch(path, json={"permissions": ["agents.read"]}, headers=tenant.headers), 409)
        assert_problem(await client.patch(path, json={"name": f"{role['name']} 2"}, headers=tenant.headers), 409)
        assert_problem(await client.delete(path, headers=tenant.headers), 409)
    assert await builtin(client, tenant) == before


async def test_a_role_beyond_the_actors_rights_is_not_theirs_to_change(client: AsyncTestClient, tenant: Tenant) -> None:
    """Narrowing a role demotes whoever holds it: a deputy may not narrow, widen or delete a role
    holding rights it lacks."""
    deputy_role = await make_role(client, tenant, base_role="admin", permissions=["roles.manage", "agents.read"])
    deputy = await create_agent(client, tenant, role_id=deputy_role["id"])
    finance = await make_role(client, tenant, name="Finance", permissions=["agents.read", "billing.manage"])
    accountant = await create_agent(client, tenant, role_id=finance["id"])
    unused = await make_role(client, tenant, name="Unused", permissions=["billing.manage"])

    path = f"/api/roles/{finance['id']}"
    assert_problem(await client.patch(path, json={"permissions": ["agents.read"]}, headers=deputy["headers"]), 403)
    assert_problem(await client.patch(path, json={"name": "Demoted"}, headers=deputy["headers"]), 403)
    assert_problem(await client.delete(f"/api/roles/{unused['id']}", headers=deputy["headers"]), 403)
    assert (await client.get(path, headers=tenant.headers)).json() == finance | {"agent_count": 1}
    assert "billing.manage" in (await client.get("/api/auth/me", headers=accountant["headers"])).json()["permissions"]
    assert (await client.get(f"/api/roles/{unused['id']}", headers=tenant.headers)).status_code == 200

    # A role within the deputy's rights is the deputy's to change and delete.
    readers = await make_role(client, tenant, name="Readers", permissions=["agents.read"])
    response = await client.patch(f"/api/roles/{readers['id']}", json={"name": "Lookers"}, headers=deputy["headers"])
    assert response.status_code == 200, response.text
    assert (await client.delete(f"/api/roles/{readers['id']}", headers=deputy["headers"])).status_code == 200


def test_rights_are_within_an_actors_only_at_its_level_or_below() -> None:
    from uuid import uuid4 as new_id

    from omnistream.roles.service import within_rights
    from omnistream.security.permissions import RoleLevel
    from omnistream.security.principal import Actor

    supervisor = Actor(
        user_id=new_id(),
        tenant_id=new_id(),
        email="s@example.com",
        name="S",
        role_id=new_id(),
        role_name="Lead",
        level=RoleLevel.supervisor,
        permissions=frozenset({"agents.read", "agents.manage"}),
    )
    assert within_rights(supervisor, "supervisor", ["agents.read"])
    assert within_rights(supervisor, "agent", ["agents.read", "agents.manage"])
    assert not within_rights(supervisor, "admin", ["agents.read"])  # a higher level, same permissions
    assert not within_rights(supervisor, "agent", ["agents.read", "billing.manage"])


async def test_delete_custom_role(client: AsyncTestClient, tenant: Tenant) -> None:
    role = await make_role(client, tenant, name="Short Lived")
    response = await client.delete(f"/api/roles/{role['id']}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == role["id"]
    assert response.json()["message"]
    assert_problem(await client.get(f"/api/roles/{role['id']}", headers=tenant.headers), 404)
    assert_problem(await client.delete(f"/api/roles/{role['id']}", headers=tenant.headers), 404)
    assert len(await roles_of(client, tenant)) == 3
    # The name is free again.
    await make_role(client, tenant, name="Short Lived")


async def test_a_role_in_use_cannot_be_deleted(client: AsyncTestClient, tenant: Tenant) -> None:
    role = await make_role(client, tenant, permissions=["agents.read"])
    agent = await create_agent(client, tenant, role_id=role["id"])
    assert_problem(await client.delete(f"/api/roles/{role['id']}", headers=tenant.headers), 409)
    fetched = (await client.get(f"/api/roles/{role['id']}", headers=tenant.headers)).json()
    assert fetched["agent_count"] == 1
    assert (await client.get("/api/agents", headers=agent["headers"])).status_code == 200

    # Once its agent moves on, it can go.
    agent_role = (await builtin(client, tenant))["agent"]["id"]
    response = await client.patch(f"/api/agents/{agent['id']}", json={"role_id": agent_role}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert (await client.delete(f"/api/roles/{role['id']}", headers=tenant.headers)).status_code == 200


async def test_a_deleted_agent_does_not_hold_a_role(client: AsyncTestClient, tenant: Tenant) -> None:
    role = await make_role(client, tenant)
    agent = await create_agent(client, tenant, role_id=role["id"])
    assert (await client.delete(f"/api/agents/{agent['id']}", headers=tenant.headers)).status_code == 200
    assert (await client.delete(f"/api/roles/{role['id']}", headers=tenant.headers)).status_code == 200


async def test_another_tenants_role_is_404(client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant) -> None:
    foreign_custom = await make_role(client, other_tenant, name="Theirs", permissions=["agents.read"])
    foreign_admin = (await builtin(client, other_tenant))["admin"]
    for role in (foreign_custom, foreign_admin):
        path = f"/api/roles/{role['id']}"
        assert_problem(await client.get(path, headers=tenant.headers), 404)
        assert_problem(await client.patch(path, json={"name": "Ours"}, headers=tenant.headers), 404)
        assert_problem(await client.delete(path, headers=tenant.headers), 404)
    assert foreign_custom["id"] not in {r["id"] for r in await roles_of(client, tenant)}
    theirs = (await client.get(f"/api/roles/{foreign_custom['id']}", headers=other_tenant.headers)).json()
    assert theirs["name"] == "Theirs"


async def test_unknown_or_malformed_role_id(client: AsyncTestClient, tenant: Tenant) -> None:
    assert_problem(await client.get(f"/api/roles/{uuid4()}", headers=tenant.headers), 404)
    assert_problem(await client.patch(f"/api/roles/{uuid4()}", json={"name": "X"}, headers=tenant.headers), 404)
    for bad in ("nope", "42"):
        response = await client.get(f"/api/roles/{bad}", headers=tenant.headers)
        assert 400 <= response.status_code < 500


@pytest.mark.parametrize("level", ["agent", "supervisor"])
async def test_agents_and_supervisors_cannot_touch_roles(client: AsyncTestClient, tenant: Tenant, level: str) -> None:
    caller = await create_agent(client, tenant, role=level)
    headers = caller["headers"]
    custom = await make_role(client, tenant, name="Existing")
    own_role = caller["role_id"]
    requests = [
        client.get("/api/roles", headers=headers),
        client.get("/api/permissions", headers=headers),
        client.post("/api/roles", json={"name": "Mine", "permissions": list(PERMISSIONS)}, headers=headers),
        client.get(f"/api/roles/{custom['id']}", headers=headers),
        client.patch(f"/api/roles/{custom['id']}", json={"name": "Changed"}, headers=headers),
        client.patch(f"/api/roles/{own_role}", json={"permissions": list(PERMISSIONS)}, headers=headers),
        client.delete(f"/api/roles/{custom['id']}", headers=headers),
    ]
    for request in requests:
        assert_problem(await request, 403)
    roles = await roles_of(client, tenant)
    assert {r["name"] for r in roles} == {"Agent", "Supervisor", "Admin", "Existing"}


async def test_roles_need_authentication(client: AsyncTestClient, tenant: Tenant) -> None:
    assert_problem(await client.get("/api/roles"), 401)
    assert_problem(await client.post("/api/roles", json={"name": "Anon"}), 401)
    assert len(await roles_of(client, tenant)) == 3
