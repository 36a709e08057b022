"""API keys: shown once, act as their owner, never beyond the owner's current rights."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from litestar.testing import AsyncTestClient

from tests.conftest import PASSWORD, PROBLEM_JSON, Tenant, create_agent, problem


def error_fields(body: dict[str, Any]) -> set[str]:
    return {error["field"] for error in body.get("errors") or []}


async def create_key(client: AsyncTestClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await client.post("/api/api-keys", json={"name": "integration"} | body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def list_keys(client: AsyncTestClient, headers: dict[str, str], include_revoked: bool = False) -> list[dict]:
    params = {"include_revoked": "true"} if include_revoked else {}
    response = await client.get("/api/api-keys", headers=headers, params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == len(body["api_keys"])
    return body["api_keys"]


def key_headers(key: dict[str, Any] | str) -> dict[str, str]:
    return {"X-API-Key": key if isinstance(key, str) else key["key"]}


async def set_agent(client: AsyncTestClient, tenant: Tenant, agent_id: str, **changes: Any) -> None:
    response = await client.patch(f"/api/agents/{agent_id}", json=changes, headers=tenant.headers)
    assert response.status_code == 200, response.text


async def builtin_role_id(client: AsyncTestClient, tenant: Tenant, base_role: str) -> str:
    roles = (await client.get("/api/roles", headers=tenant.headers)).json()["roles"]
    return next(r["id"] for r in roles if r["is_builtin"] and r["base_role"] == base_role)


# --- create and list --------------------------------------------------------------------------


async def test_create_shows_the_key_once(client: AsyncTestClient, tenant: Tenant) -> None:
    response = await client.post("/api/api-keys", json={"name": "  Zapier  "}, headers=tenant.headers)
    assert response.status_code == 201, response.text
    created = response.json()
    UUID(created["id"])
    assert created["name"] == "Zapier"
    assert created["key"].startswith("osk_")
    # The key names its tenant, then its prefix.
    assert created["key"].startswith(f"osk_{UUID(tenant.id).hex}_{created['prefix']}_")
    assert len(created["key"]) > 40
    assert created["scopes"] is None
    assert created["expires_at"] is None
    assert created["last_used_at"] is None
    assert created["revoked_at"] is None
    assert not any("hash" in field for field in created)

    second = await create_key(client, tenant.headers, name="Other")
    assert second["key"] != created["key"]
    assert second["prefix"] != created["prefix"]

    response = await client.get("/api/api-keys", headers=tenant.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == 2
    assert body["next_cursor"] is None
    listed = {k["id"]: k for k in body["api_keys"]}
    assert set(listed) == {created["id"], second["id"]}
    assert listed[created["id"]]["prefix"] == created["prefix"]
    assert listed[created["id"]]["name"] == "Zapier"
    assert "last_used_at" in listed[created["id"]]
    for item in body["api_keys"]:
        assert "key" not in item
        assert not any("hash" in field for field in item)
    # Neither secret appears anywhere in the listing.
    for secret in (created["key"], second["key"]):
        assert secret not in response.text
        assert secret.split("_", 2)[2] not in response.text


async def test_create_with_scopes_and_expiry(client: AsyncTestClient, tenant: Tenant) -> None:
    expires = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    created = await create_key(
        client,
        tenant.headers,
        scopes=["agents.read", "agents.read", "activity_logs.read"],
        expires_at=expires.isoformat(),
    )
    assert created["scopes"] == ["activity_logs.read", "agents.read"]
    assert datetime.fromisoformat(created["expires_at"]) == expires
    [listed] = await list_keys(client, tenant.headers)
    assert listed["scopes"] == ["activity_logs.read", "agents.read"]
    assert datetime.fromisoformat(listed["expires_at"]) == expires
    assert (await client.get("/api/agents", headers=key_headers(created))).status_code == 200


async def test_list_shows_only_the_callers_keys(client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    mine = await create_key(client, tenant.headers, name="admin's")
    theirs = await create_key(client, agent["headers"], name="agent's")
    foreign = await create_key(client, other_tenant.headers, name="other org's")
    assert [k["id"] for k in await list_keys(client, tenant.headers)] == [mine["id"]]
    assert [k["id"] for k in await list_keys(client, agent["headers"])] == [theirs["id"]]
    assert [k["id"] for k in await list_keys(client, other_tenant.headers)] == [foreign["id"]]


# --- using a key ------------------------------------------------------------------------------


async def test_key_acts_as_its_owner(client: AsyncTestClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    created = await create_key(client, agent["headers"])
    response = await client.get("/api/auth/me", headers=key_headers(created))
    assert response.status_code == 200, response.text
    me = response.json()
    assert me["id"] == agent["id"]
    assert me["email"] == agent["email"]
    assert me["auth_method"] == "api_key"
    assert me["tenant"]["id"] == tenant.id
    session_me = (await client.get("/api/auth/me", headers=agent["headers"])).json()
    assert me["permissions"] == session_me["permissions"]
    # The header name is case-insensitive, as HTTP headers are.
    assert (await client.get("/api/auth/me", headers={"x-api-key": created["key"]})).status_code == 200


async def test_actions_through_a_key_are_logged_as_the_key(client: AsyncTestClient, tenant: Tenant) -> None:
    created = await create_key(client, tenant.headers)
    body = {"email": f"via-key-{uuid4().hex[:6]}@example.com", "name": "Via Key", "password": PASSWORD}
    response = await client.post("/api/agents", json=body, headers=key_headers(created))
    assert response.status_code == 201, response.text
    logs = (await client.get("/api/activity-logs", headers=tenant.headers, params={"action": "agent.created"})).json()
    [entry] = [log for log in logs["activity_logs"] if log["object_id"] == response.json()["id"]]
    assert entry["actor_type"] == "api_key"
    assert entry["actor_email"] == tenant.admin_email


async def test_last_used_at_is_set_when_the_key_is_used(client: AsyncTestClient, tenant: Tenant) -> None:
    created = await create_key(client, tenant.headers)
    [before] = await list_keys(client, tenant.headers)
    assert before["last_used_at"] is None
    started = datetime.now(UTC) - timedelta(seconds=5)
    assert (await client.get("/api/agents", headers=key_headers(created))).status_code == 200
    [after] = await list_keys(client, tenant.headers)
    assert after["last_used_at"] is not None
    assert started <= datetime.fromisoformat(after["last_used_at"]) <= datetime.now(UTC) + timedelta(seconds=5)
    # A failed attempt with a wrong secret for the same prefix is not a use of the key.
    other = await create_key(client, tenant.headers, name="unused")
    assert (await client.get("/api/agents", headers=key_headers(other["key"] + "x"))).status_code == 401
    unused = next(k for k in await list_keys(client, tenant.headers) if k["id"] == other["id"])
    assert unused["last_used_at"] is None


async def test_scopes_restrict_the_key(client: AsyncTestClient, tenant: Tenant) -> None:
    created = await create_key(client, tenant.headers, scopes=["agents.read"])
    headers = key_headers(created)
    response = await client.get("/api/agents", headers=headers)
    assert response.status_code == 200, response.text
    assert tenant.admin_id in {a["id"] for a in response.json()["agents"]}
    assert (await client.get(f"/api/agents/{tenant.admin_id}", headers=headers)).status_code == 200
    problem(await client.get("/api/api-keys", headers=headers), 403)
    problem(await client.get("/api/roles", headers=headers), 403)
    problem(await client.get("/api/activity-logs", headers=headers), 403)
    body = {"email": f"nope-{uuid4().hex[:6]}@example.com", "name": "Nope", "password": PASSWORD}
    problem(await client.post("/api/agents", json=body, headers=headers), 403)
    agents = (await client.get("/api/agents", headers=tenant.headers)).json()["agents"]
    assert body["email"] not in {a["email"] for a in agents}
    me = (await client.get("/api/auth/me", headers=headers)).json()
    assert me["permissions"] == ["agents.read"]


async def test_empty_scopes_allow_nothing_that_needs_a_permission(client: AsyncTestClient, tenant: Tenant) -> None:
    created = await create_key(client, tenant.headers, scopes=[])
    assert created["scopes"] == []
    problem(await client.get("/api/agents", headers=key_headers(created)), 403)
    me = await client.get("/api/auth/me", headers=key_headers(created))
    assert me.status_code == 200
    assert me.json()["permissions"] == []


async def test_scopes_beyond_the_owners_rights_are_403(client: AsyncTestClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    response = await client.post(
        "/api/api-keys", json={"name": "escalate", "scopes": ["agents.read", "roles.manage"]}, headers=agent["headers"]
    )
    body = problem(response, 403)
    assert "scopes" in error_fields(body)
    assert "roles.manage" in body["detail"]
    assert await list_keys(client, agent["headers"], include_revoked=True) == []


async def test_unknown_scope_is_400(client: AsyncTestClient, tenant: Tenant) -> None:
    response = await client.post(
        "/api/api-keys", json={"name": "typo", "scopes": ["agents.reed"]}, headers=tenant.headers
    )
    body = problem(response, 400)
    assert "scopes" in error_fields(body)
    assert "agents.reed" in body["detail"]
    assert await list_keys(client, tenant.headers, include_revoked=True) == []


@pytest.mark.parametrize(
    "expires_at",
    [
        "a day ago",
        "a second ago",
        "2000-01-01T00:00:00Z",
        "2030-01-01T00:00:00",  # no time zone: ambiguous
    ],
)
async def test_expires_at_in_the_past_is_422_and_without_zone_400(
    client: AsyncTestClient, tenant: Tenant, expires_at: str
) -> None:
    ago = {"a day ago": timedelta(days=1), "a second ago": timedelta(seconds=1)}
    if expires_at in ago:
        expires_at = (datetime.now(UTC) - ago[expires_at]).isoformat()
    response = await client.post(
        "/api/api-keys", json={"name": "late", "expires_at": expires_at}, headers=tenant.headers
    )
    # Without a zone it does not match the schema (RFC 3339); in the past it breaks a rule.
    status = 400 if expires_at.endswith("00:00:00") else 422
    assert "expires_at" in error_fields(problem(response, status))
    assert await list_keys(client, tenant.headers, include_revoked=True) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "n" * 10_000}, "name"),
        ({"name": 5}, "name"),
        ({"name": "ok", "scopes": "agents.read"}, "scopes"),
        ({"name": "ok", "scopes": ["agents.read"] * 101}, "scopes"),
        ({"name": "ok", "scopes": ["s" * 10_000]}, "scopes"),
        ({"name": "ok", "expires_at": "tomorrow"}, "expires_at"),
        ({"name": "ok", "key": "osk_aaaaaaaaaaaa_chosen-by-me"}, "key"),
        ({"name": "ok", "user_id": str(uuid4())}, "user_id"),
    ],
)
async def test_create_bad_input_is_400_and_stores_nothing(
    client: AsyncTestClient, tenant: Tenant, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/api/api-keys", json=body, headers=tenant.headers)
    assert field in {f.split("[")[0].split(".")[0] for f in error_fields(problem(response, 400))}
    assert await list_keys(client, tenant.headers, include_revoked=True) == []


async def test_create_needs_authentication(client: AsyncTestClient) -> None:
    problem(await client.post("/api/api-keys", json={"name": "anon"}), 401)
    problem(await client.get("/api/api-keys"), 401)


# --- revoking ---------------------------------------------------------------------------------


async def test_revoke_ends_the_key(client: AsyncTestClient, tenant: Tenant) -> None:
    created = await create_key(client, tenant.headers)
    kept = await create_key(client, tenant.headers, name="kept")
    assert (await client.get("/api/auth/me", headers=key_headers(created))).status_code == 200
    response = await client.delete(f"/api/api-keys/{created['id']}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == created["id"]
    assert response.json()["message"]
    problem(await client.get("/api/auth/me", headers=key_headers(created)), 401)
    problem(await client.get("/api/agents", headers=key_headers(created)), 401)
    assert [k["id"] for k in await list_keys(client, tenant.headers)] == [kept["id"]]
    revoked = next(k for k in await list_keys(client, tenant.headers, include_revoked=True) if k["id"] == created["id"])
    assert revoked["revoked_at"] is not None
    # Revoking twice finds nothing left to revoke; the other key is untouched.
    problem(await client.delete(f"/api/api-keys/{created['id']}", headers=tenant.headers), 404)
    assert (await client.get("/api/auth/me", headers=key_headers(kept))).status_code == 200


async def test_revoking_another_agents_key_is_404(client: AsyncTestClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    theirs = await create_key(client, agent["headers"])
    # Not even the organisation's admin revokes someone else's key through this endpoint.
    for headers in (tenant.headers, (await create_agent(client, tenant))["headers"]):
        problem(await client.delete(f"/api/api-keys/{theirs['id']}", headers=headers), 404)
    assert (await client.get("/api/auth/me", headers=key_headers(theirs))).status_code == 200
    [listed] = await list_keys(client, agent["headers"])
    assert listed["revoked_at"] is None


async def test_revoking_another_tenants_key_is_404(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    foreign = await create_key(client, other_tenant.headers)
    problem(await client.delete(f"/api/api-keys/{foreign['id']}", headers=tenant.headers), 404)
    me = await client.get("/api/auth/me", headers=key_headers(foreign))
    assert me.status_code == 200
    assert me.json()["tenant"]["id"] == other_tenant.id


async def test_revoking_unknown_or_malformed_id(client: AsyncTestClient, tenant: Tenant) -> None:
    problem(await client.delete(f"/api/api-keys/{uuid4()}", headers=tenant.headers), 404)
    response = await client.delete("/api/api-keys/not-a-uuid", headers=tenant.headers)
    assert response.status_code == 404, response.text  # nothing is at a path whose id is not a UUID
    assert response.headers["content-type"].startswith(PROBLEM_JSON)


async def test_a_key_cannot_create_keys(client: AsyncTestClient, tenant: Tenant) -> None:
    created = await create_key(client, tenant.headers)
    response = await client.post("/api/api-keys", json={"name": "child"}, headers=key_headers(created))
    problem(response, 403)
    assert "key" not in response.json()
    assert [k["id"] for k in await list_keys(client, tenant.headers, include_revoked=True)] == [created["id"]]


async def test_a_key_can_list_and_revoke_its_owners_keys(client: AsyncTestClient, tenant: Tenant) -> None:
    created = await create_key(client, tenant.headers)
    other = await create_key(client, tenant.headers, name="other")
    assert {k["id"] for k in await list_keys(client, key_headers(created))} == {created["id"], other["id"]}
    response = await client.delete(f"/api/api-keys/{other['id']}", headers=key_headers(created))
    assert response.status_code == 200, response.text
    problem(await client.get("/api/auth/me", headers=key_headers(other)), 401)


# --- the owner's rights change ----------------------------------------------------------------


async def test_key_of_demoted_agent_loses_the_rights(client: AsyncTestClient, tenant: Tenant) -> None:
    admin = await create_agent(client, tenant, role="admin")
    unscoped = await create_key(client, admin["headers"], name="all of mine")
    scoped = await create_key(client, admin["headers"], name="scoped", scopes=["roles.manage", "agents.read"])
    for key in (unscoped, scoped):
        assert (await client.get("/api/roles", headers=key_headers(key))).status_code == 200
    await set_agent(client, tenant, admin["id"], role_id=await builtin_role_id(client, tenant, "agent"))
    for key in (unscoped, scoped):
        problem(await client.get("/api/roles", headers=key_headers(key)), 403)
        assert (await client.get("/api/agents", headers=key_headers(key))).status_code == 200
    me = (await client.get("/api/auth/me", headers=key_headers(scoped))).json()
    assert me["permissions"] == ["agents.read"]
    assert me["base_role"] == "agent"


async def test_key_follows_changes_to_a_custom_role(client: AsyncTestClient, tenant: Tenant) -> None:
    response = await client.post(
        "/api/roles",
        json={"name": "Readers", "base_role": "agent", "permissions": ["agents.read", "api_keys.own"]},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    role_id = response.json()["id"]
    agent = await create_agent(client, tenant, role_id=role_id)
    created = await create_key(client, agent["headers"])
    assert (await client.get("/api/agents", headers=key_headers(created))).status_code == 200
    response = await client.patch(
        f"/api/roles/{role_id}", json={"permissions": ["api_keys.own"]}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    problem(await client.get("/api/agents", headers=key_headers(created)), 403)


async def test_key_of_suspended_agent_is_401(client: AsyncTestClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    created = await create_key(client, agent["headers"])
    assert (await client.get("/api/agents", headers=key_headers(created))).status_code == 200
    await set_agent(client, tenant, agent["id"], status="suspended")
    problem(await client.get("/api/agents", headers=key_headers(created)), 401)
    problem(await client.get("/api/auth/me", headers=key_headers(created)), 401)
    # The key was revoked, not just paused: reactivating the agent does not bring it back.
    await set_agent(client, tenant, agent["id"], status="active")
    problem(await client.get("/api/auth/me", headers=key_headers(created)), 401)
    login = await client.post("/api/auth/login", json={"email": agent["email"], "password": PASSWORD})
    client.cookies.clear()
    assert login.status_code == 200, login.text
    fresh = {"Authorization": f"Bearer {login.json()['access_token']}"}
    assert await list_keys(client, fresh) == []
    [revoked] = await list_keys(client, fresh, include_revoked=True)
    assert revoked["id"] == created["id"]
    assert revoked["revoked_at"] is not None


async def test_a_password_reset_revokes_the_agents_keys_and_sessions_at_once(
    client: AsyncTestClient, tenant: Tenant
) -> None:
    """Whoever held the old password may have made a key with it: the reset ends both, at once."""
    agent = await create_agent(client, tenant)
    bystander = await create_agent(client, tenant)
    created = await create_key(client, agent["headers"])
    kept = await create_key(client, bystander["headers"])
    # Both used a moment ago, so both are in the identity cache.
    assert (await client.get("/api/auth/me", headers=key_headers(created))).status_code == 200
    assert (await client.get("/api/auth/me", headers=agent["headers"])).status_code == 200
    await set_agent(client, tenant, agent["id"], password="a brand new secret")
    problem(await client.get("/api/auth/me", headers=key_headers(created)), 401)
    problem(await client.get("/api/agents", headers=key_headers(created)), 401)
    problem(await client.get("/api/auth/me", headers=agent["headers"]), 401)
    # Only that agent's credentials ended.
    assert (await client.get("/api/auth/me", headers=key_headers(kept))).status_code == 200
    assert (await client.get("/api/auth/me", headers=bystander["headers"])).status_code == 200
    login = await client.post("/api/auth/login", json={"email": agent["email"], "password": "a brand new secret"})
    client.cookies.clear()
    assert login.status_code == 200, login.text
    fresh = {"Authorization": f"Bearer {login.json()['access_token']}"}
    [revoked] = await list_keys(client, fresh, include_revoked=True)
    assert (revoked["id"], revoked["revoked_at"] is not None) == (created["id"], True)
    # A key made after the reset works.
    assert (await client.get("/api/auth/me", headers=key_headers(await create_key(client, fresh)))).status_code == 200


async def test_key_of_deleted_agent_is_401(client: AsyncTestClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    created = await create_key(client, agent["headers"])
    assert (await client.get("/api/auth/me", headers=key_headers(created))).status_code == 200
    assert (await client.get("/api/auth/me", headers=agent["headers"])).status_code == 200
    response = await client.delete(f"/api/agents/{agent['id']}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    problem(await client.get("/api/auth/me", headers=key_headers(created)), 401)
    problem(await client.get("/api/agents", headers=key_headers(created)), 401)
    problem(await client.get("/api/auth/me", headers=agent["headers"]), 401)


async def test_expired_key_is_401(client: AsyncTestClient, tenant: Tenant) -> None:
    """A key stops working the moment it expires, even right after a request that used it."""
    created = await create_key(
        client, tenant.headers, expires_at=(datetime.now(UTC) + timedelta(seconds=1.5)).isoformat()
    )
    assert (await client.get("/api/auth/me", headers=key_headers(created))).status_code == 200
    await asyncio.sleep(1.6)
    problem(await client.get("/api/auth/me", headers=key_headers(created)), 401)


# --- malformed keys ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mangle",
    [
        lambda key: "garbage",
        lambda key: "osk_",
        lambda key: "osk__",
        lambda key: "osk_short_secret",
        lambda key: "sk_live_" + key[4:],
        lambda key: "OSK_" + key[4:],
        lambda key: "xsk_" + key[4:],
        lambda key: key[:-1],
        lambda key: key + "x",
        lambda key: key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB"),
        lambda key: "osk_000000000000_" + key.split("_", 3)[3],
        lambda key: "_".join([*key.split("_", 3)[:2], "000000000000", key.split("_", 3)[3]]),
        lambda key: "_".join(["osk", uuid4().hex, *key.split("_", 3)[2:]]),
        lambda key: "_".join(["osk", "not-hex" * 4 + "abcd", *key.split("_", 3)[2:]]),
        lambda key: key.rsplit("_", 1)[0] + "_",
        lambda key: key + "x" * 10_000,
        lambda key: "x" * 10_000,
    ],
)
async def test_malformed_key_is_401(client: AsyncTestClient, tenant: Tenant, mangle: Any) -> None:
    created = await create_key(client, tenant.headers)
    bad = mangle(created["key"])
    assert bad != created["key"]
    body = problem(await client.get("/api/auth/me", headers=key_headers(bad)), 401)
    assert created["key"] not in str(body)
    assert (await client.get("/api/auth/me", headers=key_headers(created))).status_code == 200


async def test_invalid_key_is_not_rescued_by_a_valid_session(client: AsyncTestClient, tenant: Tenant) -> None:
    headers = tenant.headers | key_headers("osk_000000000000_not-a-real-secret")
    problem(await client.get("/api/auth/me", headers=headers), 401)
