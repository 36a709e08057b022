"""Agents: listing, paging, creating, changing, suspending and deleting the people of a tenant."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest
from litestar.testing import AsyncTestClient

from tests.conftest import PASSWORD, Tenant, create_agent

AGENT_FIELDS = {
    "id",
    "email",
    "name",
    "role_id",
    "role",
    "base_role",
    "status",
    "online_status",
    "last_seen_at",
    "created_at",
    "updated_at",
}


def error_fields(response: Any) -> set[str]:
    return {e.get("field") for e in response.json().get("errors") or []}


def assert_problem(response: Any, status: int, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    if field is not None:
        assert field in error_fields(response) or field in body["detail"], body


async def role_ids(client: AsyncTestClient, tenant: Tenant) -> dict[str, str]:
    roles = (await client.get("/api/roles", headers=tenant.headers)).json()["roles"]
    return {r["base_role"]: r["id"] for r in roles if r["is_builtin"]}


async def list_agents(client: AsyncTestClient, tenant: Tenant, **params: Any) -> dict[str, Any]:
    response = await client.get("/api/agents", params=params, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def login(client: AsyncTestClient, email: str, password: str = PASSWORD) -> Any:
    response = await client.post("/api/auth/login", json={"email": email, "password": password})
    client.cookies.clear()
    return response


async def custom_role(client: AsyncTestClient, tenant: Tenant, base_role: str, permissions: list[str]) -> str:
    response = await client.post(
        "/api/roles",
        json={"name": f"Custom {uuid4().hex[:6]}", "base_role": base_role, "permissions": permissions},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


# ------------------------------------------------------------------ listing


async def test_list_returns_envelope_with_the_registering_admin(client: AsyncTestClient, tenant: Tenant) -> None:
    body = await list_agents(client, tenant)
    assert set(body) == {"agents", "next_cursor", "total"}
    assert body["total"] == 1
    assert body["next_cursor"] is None
    (admin,) = body["agents"]
    assert set(admin) == AGENT_FIELDS  # no password hash, nothing internal
    assert admin["id"] == tenant.admin_id
    assert admin["email"] == tenant.admin_email
    assert admin["base_role"] == "admin"
    assert admin["status"] == "active"


async def test_list_filters(client: AsyncTestClient, tenant: Tenant) -> None:
    zebra = await create_agent(client, tenant, name="Zed Zebra")
    boss = await create_agent(client, tenant, role="supervisor", name="Sue Visor")
    gone = await create_agent(client, tenant, name="Sam Suspended")
    response = await client.patch(f"/api/agents/{gone['id']}", json={"status": "suspended"}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    response = await client.patch(
        f"/api/agents/{zebra['id']}/status", json={"status": "online"}, headers=zebra["headers"]
    )
    assert response.status_code == 200, response.text
    roles = await role_ids(client, tenant)

    def ids(body: dict[str, Any]) -> set[str]:
        assert body["total"] == len(body["agents"])
        return {a["id"] for a in body["agents"]}

    assert ids(await list_agents(client, tenant)) == {tenant.admin_id, zebra["id"], boss["id"], gone["id"]}
    assert ids(await list_agents(client, tenant, status="suspended")) == {gone["id"]}
    assert ids(await list_agents(client, tenant, status="active")) == {tenant.admin_id, zebra["id"], boss["id"]}
    assert ids(await list_agents(client, tenant, online_status="online")) == {zebra["id"]}
    assert ids(await list_agents(client, tenant, role_id=roles["supervisor"])) == {boss["id"]}
    assert ids(await list_agents(client, tenant, role_id=roles["agent"])) == {zebra["id"], gone["id"]}
    assert ids(await list_agents(client, tenant, q="zEbRa")) == {zebra["id"]}  # name, any case
    assert ids(await list_agents(client, tenant, q=boss["email"].split("@")[0].upper())) == {boss["id"]}  # email
    assert ids(await list_agents(client, tenant, q="nobody-has-this")) == set()
    combined = await list_agents(client, tenant, role_id=roles["agent"], status="active")
    assert ids(combined) == {zebra["id"]}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "sleeping"}, "status"),
        ({"online_status": "busy"}, "online_status"),
        ({"role_id": "not-a-uuid"}, "role_id"),
    ],
)
async def test_list_rejects_bad_filters(
    client: AsyncTestClient, tenant: Tenant, params: dict[str, str], field: str
) -> None:
    response = await client.get("/api/agents", params=params, headers=tenant.headers)
    assert_problem(response, 400, field)


async def test_cursor_paging_walks_every_agent_once(client: AsyncTestClient, tenant: Tenant) -> None:
    for i in range(6):
        await create_agent(client, tenant, name=f"Pager {i}")
    everyone = await list_agents(client, tenant, per_page=100)
    assert everyone["total"] == 7
    all_ids = [a["id"] for a in everyone["agents"]]

    for order in ("desc", "asc"):
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params: dict[str, Any] = {"per_page": 2, "sort_order": order}
            if cursor:
                params["cursor"] = cursor
            body = await list_agents(client, tenant, **params)
            assert body["total"] == 7
            assert len(body["agents"]) <= 2
            seen.extend(a["id"] for a in body["agents"])
            pages += 1
            cursor = body["next_cursor"]
            if cursor is None:
                break
            assert pages < 10, "paging does not end"
        assert len(seen) == len(set(seen)) == 7, f"{order}: repeats or gaps in {seen}"
        assert set(seen) == set(all_ids)
        assert pages == 4
        expected = all_ids if order == "desc" else list(reversed(all_ids))
        assert seen == expected, order


async def test_sort_order_asc_and_desc(client: AsyncTestClient, tenant: Tenant) -> None:
    first = await create_agent(client, tenant, name="First")
    last = await create_agent(client, tenant, name="Last")
    desc = [a["id"] for a in (await list_agents(client, tenant, sort_order="desc"))["agents"]]
    asc = [a["id"] for a in (await list_agents(client, tenant, sort_order="asc"))["agents"]]
    assert desc == [last["id"], first["id"], tenant.admin_id]  # newest first is the default
    assert asc == [tenant.admin_id, first["id"], last["id"]]
    default = [a["id"] for a in (await list_agents(client, tenant))["agents"]]
    assert default == desc
    created = [a["created_at"] for a in (await list_agents(client, tenant, sort_order="asc"))["agents"]]
    assert created == sorted(created)


async def test_page_number_paging(client: AsyncTestClient, tenant: Tenant) -> None:
    for i in range(3):
        await create_agent(client, tenant, name=f"Paged {i}")
    all_ids = [a["id"] for a in (await list_agents(client, tenant, sort_order="asc"))["agents"]]
    second = await list_agents(client, tenant, sort_order="asc", per_page=2, page=2)
    assert [a["id"] for a in second["agents"]] == all_ids[2:4]
    assert second["total"] == 4


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"cursor": "garbage"}, "cursor"),
        ({"cursor": "2024-01-01T00:00:00Z|not-a-uuid"}, "cursor"),
        ({"cursor": "yesterday|00000000-0000-0000-0000-000000000000"}, "cursor"),
        ({"per_page": 0}, "per_page"),
        ({"per_page": 101}, "per_page"),
        ({"per_page": "many"}, "per_page"),
        ({"page": 0}, "page"),
        ({"sort_order": "sideways"}, "sort_order"),
    ],
)
async def test_bad_paging_parameters_are_400(
    client: AsyncTestClient, tenant: Tenant, params: dict[str, Any], field: str
) -> None:
    response = await client.get("/api/agents", params=params, headers=tenant.headers)
    assert_problem(response, 400, field)


async def test_per_page_bounds_are_accepted(client: AsyncTestClient, tenant: Tenant) -> None:
    await create_agent(client, tenant)
    one = await list_agents(client, tenant, per_page=1)
    assert len(one["agents"]) == 1
    assert one["next_cursor"] is not None
    hundred = await list_agents(client, tenant, per_page=100)
    assert len(hundred["agents"]) == 2
    assert hundred["next_cursor"] is None


async def test_listing_needs_authentication(client: AsyncTestClient, tenant: Tenant) -> None:
    response = await client.get("/api/agents")
    assert_problem(response, 401)


# ------------------------------------------------------------------ creating


async def test_create_agent(client: AsyncTestClient, tenant: Tenant) -> None:
    roles = await role_ids(client, tenant)
    body = {"email": "New.Person@Example.com", "name": "  New Person  ", "password": PASSWORD}
    response = await client.post("/api/agents", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    agent = response.json()
    assert set(agent) == AGENT_FIELDS
    assert agent["email"] == "new.person@example.com"
    assert agent["name"] == "New Person"
    assert agent["role_id"] == roles["agent"]  # the built-in agent role by default
    assert agent["base_role"] == "agent"
    assert agent["status"] == "active"
    assert agent["online_status"] == "offline"

    fetched = await client.get(f"/api/agents/{agent['id']}", headers=tenant.headers)
    assert fetched.status_code == 200
    assert fetched.json() == agent
    assert (await list_agents(client, tenant))["total"] == 2
    # The new agent can sign in with the password they were given, in any email case.
    signed_in = await login(client, "NEW.PERSON@example.com")
    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.json()["agent"]["id"] == agent["id"]


async def test_create_with_a_role(client: AsyncTestClient, tenant: Tenant) -> None:
    roles = await role_ids(client, tenant)
    supervisor = await create_agent(client, tenant, role="supervisor")
    assert supervisor["role_id"] == roles["supervisor"]
    assert supervisor["base_role"] == "supervisor"
    me = await client.get("/api/auth/me", headers=supervisor["headers"])
    assert me.json()["base_role"] == "supervisor"


async def test_duplicate_email_is_409_case_insensitively(client: AsyncTestClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant, email="dup@example.com")
    for email in ("dup@example.com", "DUP@Example.COM", tenant.admin_email.upper()):
        response = await client.post(
            "/api/agents", json={"email": email, "name": "Copy", "password": PASSWORD}, headers=tenant.headers
        )
        assert_problem(response, 409, "email")
    assert (await list_agents(client, tenant))["total"] == 2
    # The original keeps its password.
    assert (await login(client, agent["email"])).status_code == 200


async def test_same_email_in_another_tenant_is_fine(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    await create_agent(client, tenant, email="shared@example.com")
    response = await client.post(
        "/api/agents",
        json={"email": "shared@example.com", "name": "Twin", "password": PASSWORD},
        headers=other_tenant.headers,
    )
    assert response.status_code == 201, response.text


VALID = {"email": "valid@example.com", "name": "Valid Name", "password": PASSWORD}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({k: v for k, v in VALID.items() if k != "email"}, "email"),
        ({k: v for k, v in VALID.items() if k != "name"}, "name"),
        ({k: v for k, v in VALID.items() if k != "password"}, "password"),
        (VALID | {"email": "not-an-email"}, "email"),
        (VALID | {"email": "a@b"}, "email"),
        (VALID | {"email": 42}, "email"),
        (VALID | {"name": ""}, "name"),
        (VALID | {"name": "   "}, "name"),
        (VALID | {"name": "x" * 201}, "name"),
        (VALID | {"name": "nul\x00byte"}, "name"),
        (VALID | {"password": "short"}, "password"),
        (VALID | {"password": "p" * 129}, "password"),
        (VALID | {"role_id": "not-a-uuid"}, "role_id"),
        (VALID | {"is_superuser": True}, "is_superuser"),
    ],
)
async def test_create_rejects_bad_input_and_stores_nothing(
    client: AsyncTestClient, tenant: Tenant, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/api/agents", json=body, headers=tenant.headers)
    assert_problem(response, 400, field)
    assert (await list_agents(client, tenant))["total"] == 1


async def test_create_rejects_a_body_that_is_not_json(client: AsyncTestClient, tenant: Tenant) -> None:
    response = await client.post(
        "/api/agents", content=b"{not json", headers=tenant.headers | {"content-type": "application/json"}
    )
    assert_problem(response, 400)
    assert (await list_agents(client, tenant))["total"] == 1


async def test_create_with_another_tenants_role_is_422(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    foreign = await role_ids(client, other_tenant)
    for role_id in (foreign["admin"], foreign["agent"], str(uuid4())):
        response = await client.post("/api/agents", json=VALID | {"role_id": role_id}, headers=tenant.headers)
        assert_problem(response, 422, "role_id")
    assert (await list_agents(client, tenant))["total"] == 1
    assert (await list_agents(client, other_tenant))["total"] == 1


# ------------------------------------------------------------------ reading


async def test_get_agent(client: AsyncTestClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    response = await client.get(f"/api/agents/{agent['id']}", headers=agent["headers"])
    assert response.status_code == 200, response.text
    assert response.json()["email"] == agent["email"]
    missing = await client.get(f"/api/agents/{uuid4()}", headers=tenant.headers)
    assert_problem(missing, 404)


# ------------------------------------------------------------------ updating


async def test_update_name_and_email(client: AsyncTestClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    response = await client.patch(
        f"/api/agents/{agent['id']}",
        json={"name": " Renamed ", "email": "Renamed@Example.com"},
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["name"] == "Renamed"
    assert updated["email"] == "renamed@example.com"
    assert updated["updated_at"] > agent["updated_at"]
    assert (await client.get(f"/api/agents/{agent['id']}", headers=tenant.headers)).json() == updated
    # The agent signs in with the new email, not the old one.
    assert (await login(client, "renamed@example.com")).status_code == 200
    assert (await login(client, agent["email"])).status_code == 401


async def test_update_with_nothing_changes_nothing(client: AsyncTestClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    response = await client.patch(f"/api/agents/{agent['id']}", json={}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert {k: response.json()[k] for k in ("name", "email", "role_id", "status")} == {
        k: agent[k] for k in ("name", "email", "role_id", "status")
    }


async def test_update_to_a_taken_email_is_409(client: AsyncTestClient, tenant: Tenant) -> None:
    one = await create_agent(client, tenant)
    two = await create_agent(client, tenant)
    response = await client.patch(
        f"/api/agents/{two['id']}", json={"email": one["email"].upper()}, headers=tenant.headers
    )
    assert_problem(response, 409, "email")
    assert (await client.get(f"/api/agents/{two['id']}", headers=tenant.headers)).json()["email"] == two["email"]
    # Keeping one's own email (in another case) is not a conflict.
    same = await client.patch(f"/api/agents/{two['id']}", json={"email": two["email"].upper()}, headers=tenant.headers)
    assert same.status_code == 200, same.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "nope"}, "email"),
        ({"name": ""}, "name"),
        ({"password": "short"}, "password"),
        ({"status": "deleted"}, "status"),
        ({"role_id": "admin"}, "role_id"),
        ({"tenant_id": "5f0c4a53-2a36-4d4e-8c5e-8d3b0c2f4e11"}, "tenant_id"),
    ],
)
async def test_update_rejects_bad_input(
    client: AsyncTestClient, tenant: Tenant, body: dict[str, Any], field: str
) -> None:
    agent = await create_agent(client, tenant)
    response = await client.patch(f"/api/agents/{agent['id']}", json=body, headers=tenant.headers)
    assert_problem(response, 400, field)
    after = (await client.get(f"/api/agents/{agent['id']}", headers=tenant.headers)).json()
    kept = ("email", "name", "role_id", "status", "updated_at")
    assert {k: after[k] for k in kept} == {k: agent[k] for k in kept}
    assert (await login(client, agent["email"])).status_code == 200  # password unchanged


async def test_change_role(client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    roles = await role_ids(client, tenant)
    response = await client.patch(
        f"/api/agents/{agent['id']}", json={"role_id": roles["supervisor"]}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["base_role"] == "supervisor"
    assert response.json()["role"] == "Supervisor"
    # Takes effect at once for the agent's existing session.
    me = (await client.get("/api/auth/me", headers=agent["headers"])).json()
    assert me["base_role"] == "supervisor"
    assert "automation.manage" in me["permissions"]

    foreign = await role_ids(client, other_tenant)
    response = await client.patch(
        f"/api/agents/{agent['id']}", json={"role_id": foreign["admin"]}, headers=tenant.headers
    )
    assert_problem(response, 422, "role_id")
    after = (await client.get(f"/api/agents/{agent['id']}", headers=tenant.headers)).json()
    assert after["role_id"] == roles["supervisor"]


async def test_password_change_signs_the_agent_out(client: AsyncTestClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    bystander = await create_agent(client, tenant)
    assert (await client.get("/api/auth/me", headers=agent["headers"])).status_code == 200
    response = await client.patch(
        f"/api/agents/{agent['id']}", json={"password": "a brand new secret"}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    assert "password" not in response.json()
    assert_problem(await client.get("/api/auth/me", headers=agent["headers"]), 401)
    assert (await login(client, agent["email"])).status_code == 401
    assert (await login(client, agent["email"], "a brand new secret")).status_code == 200
    # Only that agent's sessions end.
    assert (await client.get("/api/auth/me", headers=bystander["headers"])).status_code == 200
    assert (await client.get("/api/auth/me", headers=tenant.headers)).status_code == 200


async def test_suspend_signs_out_and_blocks_sign_in(client: AsyncTestClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    key = await client.post("/api/api-keys", json={"name": "script"}, headers=agent["headers"])
    assert key.status_code == 201, key.text
    key_headers = {"X-API-Key": key.json()["key"]}
    assert (await client.get("/api/agents", headers=key_headers)).status_code == 200

    response = await client.patch(f"/api/agents/{agent['id']}", json={"status": "suspended"}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "suspended"
    assert_problem(await client.get("/api/auth/me", headers=agent["headers"]), 401)
    assert_problem(await client.get("/api/agents", headers=key_headers), 401)
    assert_problem(await login(client, agent["email"]), 403)  # the right password, for a suspended account

    # Reactivated, the agent signs in again; old sessions and keys stay dead.
    response = await client.patch(f"/api/agents/{agent['id']}", json={"status": "active"}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert (await login(client, agent["email"])).status_code == 200
    assert_problem(await client.get("/api/auth/me", headers=agent["headers"]), 401)
    assert_problem(await client.get("/api/agents", headers=key_headers), 401)


async def test_cannot_suspend_yourself(client: AsyncTestClient, tenant: Tenant) -> None:
    roles = await role_ids(client, tenant)
    second_admin = await create_agent(client, tenant, role="admin")
    assert second_admin["role_id"] == roles["admin"]
    response = await client.patch(
        f"/api/agents/{tenant.admin_id}", json={"status": "suspended"}, headers=tenant.headers
    )
    assert_problem(response, 409)
    assert (await client.get("/api/auth/me", headers=tenant.headers)).status_code == 200


# ------------------------------------------------------------------ the last admin


async def test_the_only_admin_cannot_demote_or_suspend_themselves(client: AsyncTestClient, tenant: Tenant) -> None:
    roles = await role_ids(client, tenant)
    for body in ({"role_id": roles["agent"]}, {"role_id": roles["supervisor"]}, {"status": "suspended"}):
        response = await client.patch(f"/api/agents/{tenant.admin_id}", json=body, headers=tenant.headers)
        assert_problem(response, 409)
    me = (await client.get("/api/auth/me", headers=tenant.headers)).json()
    assert me["base_role"] == "admin"
    assert me["status"] == "active"
    # Keeping the admin role while changing something else is fine.
    response = await client.patch(
        f"/api/agents/{tenant.admin_id}",
        json={"name": "Still Admin", "role_id": roles["admin"]},
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.text


async def full_deputy(client: AsyncTestClient, tenant: Tenant) -> dict[str, Any]:
    """An agent on a custom admin-level role holding every permission: rights equal to the built-in admin's."""
    every = [p["name"] for p in (await client.get("/api/permissions", headers=tenant.headers)).json()["permissions"]]
    return await create_agent(client, tenant, role_id=await custom_role(client, tenant, "admin", every))


async def test_last_active_admin_is_protected_from_other_managers(client: AsyncTestClient, tenant: Tenant) -> None:
    """A manager whose rights equal the built-in admin's still cannot remove the last built-in admin."""
    roles = await role_ids(client, tenant)
    deputy = await full_deputy(client, tenant)
    target = f"/api/agents/{tenant.admin_id}"
    assert_problem(await client.delete(target, headers=deputy["headers"]), 409)
    assert_problem(await client.patch(target, json={"status": "suspended"}, headers=deputy["headers"]), 409)
    assert_problem(await client.patch(target, json={"role_id": roles["agent"]}, headers=deputy["headers"]), 409)
    assert_problem(await client.patch(target, json={"role_id": deputy["role_id"]}, headers=deputy["headers"]), 409)
    me = await client.get("/api/auth/me", headers=tenant.headers)
    assert me.status_code == 200
    assert me.json()["base_role"] == "admin"

    # With a second active admin, the first may go.
    await create_agent(client, tenant, role="admin")
    response = await client.patch(target, json={"role_id": roles["agent"]}, headers=deputy["headers"])
    assert response.status_code == 200, response.text
    assert response.json()["base_role"] == "agent"


async def test_a_suspended_admin_does_not_count(client: AsyncTestClient, tenant: Tenant) -> None:
    second = await create_agent(client, tenant, role="admin")
    response = await client.patch(f"/api/agents/{second['id']}", json={"status": "suspended"}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    deputy = await full_deputy(client, tenant)
    response = await client.delete(f"/api/agents/{tenant.admin_id}", headers=deputy["headers"])
    assert_problem(response, 409)


# ------------------------------------------------------------------ who may change whom


async def restricted_deputy(client: AsyncTestClient, tenant: Tenant) -> dict[str, Any]:
    """An admin-level agent holding the built-in agent role's permissions plus agents.manage."""
    listed = (await client.get("/api/roles", headers=tenant.headers)).json()["roles"]
    agent_permissions = next(r["permissions"] for r in listed if r["is_builtin"] and r["base_role"] == "agent")
    return await create_agent(
        client, tenant, role_id=await custom_role(client, tenant, "admin", [*agent_permissions, "agents.manage"])
    )


TAKEOVERS = {
    "password": {"password": "the deputy's choice"},
    "email": {"email": "deputy-inbox@example.com"},
    "role": {"role": "agent"},
    "suspension": {"status": "suspended"},
    "name": {"name": "Renamed by the deputy"},
}


@pytest.mark.parametrize("second_admin", [False, True], ids=["only admin", "one of two admins"])
@pytest.mark.parametrize("change", TAKEOVERS.values(), ids=TAKEOVERS.keys())
async def test_a_restricted_admin_cannot_change_the_owner(
    client: AsyncTestClient, tenant: Tenant, change: dict[str, str], second_admin: bool
) -> None:
    """The built-in admin holds every right; a deputy holding fewer may not touch that account."""
    if second_admin:
        await create_agent(client, tenant, role="admin")
    deputy = await restricted_deputy(client, tenant)
    roles = await role_ids(client, tenant)
    body = {"role_id": roles[change["role"]]} if "role" in change else change
    before = (await client.get(f"/api/agents/{tenant.admin_id}", headers=tenant.headers)).json()
    response = await client.patch(f"/api/agents/{tenant.admin_id}", json=body, headers=deputy["headers"])
    assert_problem(response, 403)
    assert "rights beyond your own" in response.json()["detail"]
    assert (await client.get(f"/api/agents/{tenant.admin_id}", headers=tenant.headers)).json() == before
    # The owner still signs in with their own password and is still signed in; the deputy cannot.
    assert (await login(client, tenant.admin_email)).status_code == 200
    assert (await login(client, tenant.admin_email, "the deputy's choice")).status_code == 401
    assert (await client.get("/api/auth/me", headers=tenant.headers)).status_code == 200


async def test_a_restricted_admin_cannot_delete_the_owner(client: AsyncTestClient, tenant: Tenant) -> None:
    await create_agent(client, tenant, role="admin")  # the owner is not the last admin: 403, not 409
    deputy = await restricted_deputy(client, tenant)
    assert_problem(await client.delete(f"/api/agents/{tenant.admin_id}", headers=deputy["headers"]), 403)
    assert (await client.get(f"/api/agents/{tenant.admin_id}", headers=tenant.headers)).status_code == 200
    assert (await client.get("/api/auth/me", headers=tenant.headers)).status_code == 200


async def test_a_restricted_admin_cannot_change_anyone_with_a_right_it_lacks(
    client: AsyncTestClient, tenant: Tenant
) -> None:
    deputy = await restricted_deputy(client, tenant)
    supervisor = await create_agent(client, tenant, role="supervisor")  # automation.manage and more
    # An agent-level account holding just one permission the deputy lacks.
    billing = await create_agent(
        client, tenant, role_id=await custom_role(client, tenant, "agent", ["agents.read", "billing.manage"])
    )
    for target in (supervisor, billing):
        path = f"/api/agents/{target['id']}"
        assert_problem(await client.patch(path, json={"password": "reset by deputy"}, headers=deputy["headers"]), 403)
        assert_problem(await client.patch(path, json={"status": "suspended"}, headers=deputy["headers"]), 403)
        assert_problem(await client.delete(path, headers=deputy["headers"]), 403)
        assert (await client.get("/api/auth/me", headers=target["headers"])).status_code == 200
        assert (await login(client, target["email"])).status_code == 200


async def test_a_restricted_admin_manages_accounts_within_its_rights(client: AsyncTestClient, tenant: Tenant) -> None:
    deputy = await restricted_deputy(client, tenant)
    agent = await create_agent(client, tenant)
    path = f"/api/agents/{agent['id']}"
    response = await client.patch(path, json={"password": "reset by deputy"}, headers=deputy["headers"])
    assert response.status_code == 200, response.text
    assert (await login(client, agent["email"], "reset by deputy")).status_code == 200
    response = await client.patch(path, json={"status": "suspended"}, headers=deputy["headers"])
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "suspended"
    assert (await client.delete(path, headers=deputy["headers"])).status_code == 200
    # And itself: its own rights are within its own.
    response = await client.patch(
        f"/api/agents/{deputy['id']}", json={"name": "Deputy Dawg"}, headers=deputy["headers"]
    )
    assert response.status_code == 200, response.text


async def test_an_account_with_rights_equal_to_the_owners_may_change_the_owner(
    client: AsyncTestClient, tenant: Tenant
) -> None:
    deputy = await full_deputy(client, tenant)
    response = await client.patch(
        f"/api/agents/{tenant.admin_id}", json={"password": "set by an equal"}, headers=deputy["headers"]
    )
    assert response.status_code == 200, response.text
    assert (await login(client, tenant.admin_email, "set by an equal")).status_code == 200


async def test_a_narrowly_scoped_key_of_the_owner_cannot_change_another_admin(
    client: AsyncTestClient, tenant: Tenant
) -> None:
    """A key acts with its scopes only: the rights compared are the key's, not its owner's."""
    other_admin = await create_agent(client, tenant, role="admin")
    created = await client.post(
        "/api/api-keys", json={"name": "hr sync", "scopes": ["agents.read", "agents.manage"]}, headers=tenant.headers
    )
    assert created.status_code == 201, created.text
    key = {"X-API-Key": created.json()["key"]}
    path = f"/api/agents/{other_admin['id']}"
    assert_problem(await client.patch(path, json={"password": "set by a script"}, headers=key), 403)
    assert (await login(client, other_admin["email"])).status_code == 200
    # The same change through the owner's session is theirs to make.
    assert (await client.patch(path, json={"password": "set by the owner"}, headers=tenant.headers)).status_code == 200


async def test_nobody_creates_an_account_with_rights_they_lack(client: AsyncTestClient, tenant: Tenant) -> None:
    """Not even through the default role: a manager without the agent role's rights cannot hand them out."""
    manager = await create_agent(
        client, tenant, role_id=await custom_role(client, tenant, "admin", ["agents.read", "agents.manage"])
    )
    body = {"email": "default-role@example.com", "name": "Default Role", "password": PASSWORD}
    assert_problem(await client.post("/api/agents", json=body, headers=manager["headers"]), 403)
    assert (await list_agents(client, tenant))["total"] == 2
    deputy = await restricted_deputy(client, tenant)
    response = await client.post("/api/agents", json=body, headers=deputy["headers"])
    assert response.status_code == 201, response.text
    assert response.json()["base_role"] == "agent"


# ------------------------------------------------------------------ deleting


async def test_delete_agent(client: AsyncTestClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant, email="leaver@example.com")
    response = await client.delete(f"/api/agents/{agent['id']}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == agent["id"]
    assert body["message"]
    assert_problem(await client.get(f"/api/agents/{agent['id']}", headers=tenant.headers), 404)
    assert agent["id"] not in {a["id"] for a in (await list_agents(client, tenant))["agents"]}
    assert (await list_agents(client, tenant))["total"] == 1
    assert_problem(await client.delete(f"/api/agents/{agent['id']}", headers=tenant.headers), 404)
    assert_problem(await client.patch(f"/api/agents/{agent['id']}", json={"name": "x"}, headers=tenant.headers), 404)
    # The deleted agent is signed out and cannot sign in; the email is free again.
    assert_problem(await client.get("/api/auth/me", headers=agent["headers"]), 401)
    assert (await login(client, "leaver@example.com")).status_code == 401
    again = await client.post(
        "/api/agents",
        json={"email": "leaver@example.com", "name": "Returner", "password": PASSWORD},
        headers=tenant.headers,
    )
    assert again.status_code == 201, again.text
    assert again.json()["id"] != agent["id"]


async def test_cannot_delete_yourself(client: AsyncTestClient, tenant: Tenant) -> None:
    await create_agent(client, tenant, role="admin")
    response = await client.delete(f"/api/agents/{tenant.admin_id}", headers=tenant.headers)
    assert_problem(response, 409)
    assert (await client.get("/api/auth/me", headers=tenant.headers)).status_code == 200


# ------------------------------------------------------------------ online status


async def test_agent_sets_own_online_status(client: AsyncTestClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    for status in ("online", "away", "offline"):
        response = await client.patch(
            f"/api/agents/{agent['id']}/status", json={"status": status}, headers=agent["headers"]
        )
        assert response.status_code == 200, response.text
        assert response.json()["online_status"] == status
        assert response.json()["last_seen_at"] is not None
    fetched = (await client.get(f"/api/agents/{agent['id']}", headers=tenant.headers)).json()
    assert fetched["online_status"] == "offline"


async def test_only_managers_set_someone_elses_status(client: AsyncTestClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    colleague = await create_agent(client, tenant)
    supervisor = await create_agent(client, tenant, role="supervisor")
    for caller in (colleague, supervisor):
        response = await client.patch(
            f"/api/agents/{agent['id']}/status", json={"status": "online"}, headers=caller["headers"]
        )
        assert_problem(response, 403)
    fetched = (await client.get(f"/api/agents/{agent['id']}", headers=tenant.headers)).json()
    assert fetched["online_status"] == "offline"

    response = await client.patch(f"/api/agents/{agent['id']}/status", json={"status": "away"}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.json()["online_status"] == "away"


@pytest.mark.parametrize("body", [{"status": "busy"}, {}, {"status": "online", "extra": 1}, {"online_status": "away"}])
async def test_bad_online_status_is_400(client: AsyncTestClient, tenant: Tenant, body: dict[str, Any]) -> None:
    response = await client.patch(f"/api/agents/{tenant.admin_id}/status", json=body, headers=tenant.headers)
    assert_problem(response, 400)
    assert (await client.get(f"/api/agents/{tenant.admin_id}", headers=tenant.headers)).json()[
        "online_status"
    ] == "offline"


# ------------------------------------------------------------------ who may do what


@pytest.mark.parametrize("role", ["agent", "supervisor"])
async def test_non_admins_cannot_manage_agents(client: AsyncTestClient, tenant: Tenant, role: str) -> None:
    caller = await create_agent(client, tenant, role=role)
    victim = await create_agent(client, tenant)
    headers = caller["headers"]
    assert (await client.get("/api/agents", headers=headers)).status_code == 200
    assert (await client.get(f"/api/agents/{victim['id']}", headers=headers)).status_code == 200

    response = await client.post(
        "/api/agents", json={"email": "sneaky@example.com", "name": "Sneaky", "password": PASSWORD}, headers=headers
    )
    assert_problem(response, 403)
    assert_problem(
        await client.patch(f"/api/agents/{victim['id']}", json={"name": "Hacked"}, headers=headers),
        403,
    )
    # Not even on oneself: an agent cannot promote themselves.
    roles = await role_ids(client, tenant)
    assert_problem(
        await client.patch(f"/api/agents/{caller['id']}", json={"role_id": roles["admin"]}, headers=headers),
        403,
    )
    assert_problem(await client.delete(f"/api/agents/{victim['id']}", headers=headers), 403)

    listing = await list_agents(client, tenant)
    assert listing["total"] == 3
    stored = {a["id"]: a for a in listing["agents"]}
    assert stored[victim["id"]]["name"] == victim["name"]
    assert stored[caller["id"]]["base_role"] == role


# ------------------------------------------------------------------ tenancy and paths


async def test_another_tenants_agent_is_404(client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant) -> None:
    foreign = await create_agent(client, other_tenant)
    for agent_id in (other_tenant.admin_id, foreign["id"]):
        path = f"/api/agents/{agent_id}"
        assert_problem(await client.get(path, headers=tenant.headers), 404)
        assert_problem(await client.patch(path, json={"name": "Mine now"}, headers=tenant.headers), 404)
        assert_problem(
            await client.patch(path, json={"status": "suspended"}, headers=tenant.headers),
            404,
        )
        assert_problem(await client.delete(path, headers=tenant.headers), 404)
        assert_problem(await client.patch(f"{path}/status", json={"status": "online"}, headers=tenant.headers), 404)
    # Nothing in the other tenant changed and nobody there was signed out.
    theirs = await list_agents(client, other_tenant)
    assert theirs["total"] == 2
    assert {a["name"] for a in theirs["agents"]} == {"Ada Admin", foreign["name"]}
    assert {a["status"] for a in theirs["agents"]} == {"active"}
    assert {a["online_status"] for a in theirs["agents"]} == {"offline"}
    assert (await client.get("/api/auth/me", headers=foreign["headers"])).status_code == 200
    # And the other tenant never appears in this one's list.
    assert {a["id"] for a in (await list_agents(client, tenant))["agents"]} == {tenant.admin_id}


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "123", "00000000-0000-0000-0000-00000000000g", "%27%20OR%201=1"])
async def test_malformed_id_in_path_is_a_client_error(client: AsyncTestClient, tenant: Tenant, bad_id: str) -> None:
    path = f"/api/agents/{bad_id}"
    responses = [
        await client.get(path, headers=tenant.headers),
        await client.patch(path, json={"name": "x"}, headers=tenant.headers),
        await client.delete(path, headers=tenant.headers),
        await client.patch(f"{path}/status", json={"status": "online"}, headers=tenant.headers),
    ]
    for response in responses:
        assert 400 <= response.status_code < 500, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
