"""Registration, sign-in, sessions and tokens, as a client of the HTTP API sees them."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import jwt
import pytest
from litestar.testing import AsyncTestClient

from omnistream.config import Settings
from omnistream.db import Database
from omnistream.tenants import service as tenants
from tests.conftest import PASSWORD, Tenant, create_agent, problem, register


def error_fields(body: dict[str, Any]) -> set[str]:
    return {error["field"] for error in body.get("errors") or []}


def registration(**overrides: Any) -> dict[str, Any]:
    return {
        "organization_name": f"Org {uuid4().hex[:8]}",
        "name": "Ada Admin",
        "email": f"admin-{uuid4().hex[:8]}@example.com",
        "password": PASSWORD,
    } | overrides


def set_cookies(response: httpx.Response) -> list[str]:
    return [c for c in response.headers.get_list("set-cookie") if c.startswith("omnistream_session=")]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def login(client: AsyncTestClient, email: str, password: str = PASSWORD, **extra: Any) -> httpx.Response:
    response = await client.post("/api/auth/login", json={"email": email, "password": password} | extra)
    client.cookies.clear()
    return response


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def forge(settings: Settings, tenant: Tenant, secret: str | None = None, **changes: Any) -> str:
    """A token like the service's own, with some claims changed, signed with `secret` (default: the real one)."""
    claims = claims_of(tenant.token) | changes
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, secret or settings.jwt_secret, "HS256")


def walk(value: Any) -> list[tuple[str, Any]]:
    """Every (key, value) pair anywhere in a JSON document."""
    found: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found.append((key, item))
            found.extend(walk(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(walk(item))
    return found


def assert_no_secrets(response: httpx.Response, *passwords: str) -> None:
    """No password, hash or anything like them anywhere in the body."""
    for secret in ("argon2", PASSWORD, *passwords):
        assert secret not in response.text
    for key, _ in walk(response.json()):
        assert "password" not in key.lower(), key
        assert "hash" not in key.lower(), key


# --- register ---------------------------------------------------------------------------------


async def test_register_creates_organisation_and_signs_in(client: AsyncTestClient) -> None:
    body = registration(organization_name="Acme Support", slug="acme-support", timezone="Europe/Berlin")
    response = await client.post("/api/auth/register", json=body)
    assert response.status_code == 201, response.text
    data = response.json()
    assert data["token_type"] == "bearer"
    assert data["access_token"].count(".") == 2
    assert datetime.fromisoformat(data["expires_at"]) > datetime.now(UTC) + timedelta(hours=1)
    agent = data["agent"]
    assert agent["email"] == body["email"]
    assert agent["name"] == "Ada Admin"
    assert agent["base_role"] == "admin"
    assert agent["status"] == "active"
    assert agent["auth_method"] == "session"
    assert agent["tenant"]["name"] == "Acme Support"
    assert agent["tenant"]["slug"] == "acme-support"
    assert agent["tenant"]["timezone"] == "Europe/Berlin"
    assert agent["tenant"]["status"] == "active"
    assert "roles.manage" in agent["permissions"]
    assert_no_secrets(response)

    cookies = set_cookies(response)
    assert len(cookies) == 1
    cookie = cookies[0].lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    assert "path=/" in cookie
    assert data["access_token"].lower() in cookie

    client.cookies.clear()
    me = await client.get("/api/auth/me", headers=bearer(data["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["id"] == agent["id"]
    # The new admin can sign in with what they registered.
    assert (await login(client, body["email"])).status_code == 200


async def test_register_derives_a_free_slug_from_the_name(client: AsyncTestClient) -> None:
    first = await register(client, "Café Zürich GmbH")
    second = await register(client, "Café Zürich GmbH")
    assert first.slug == "cafe-zurich-gmbh"
    assert second.slug != first.slug
    assert second.slug.startswith("cafe-zurich-gmbh")
    assert second.id != first.id


async def test_organisations_of_one_name_signing_up_at_once_each_get_a_slug(settings: Settings) -> None:
    """The second sign-up finds the slug free, then loses it to the first one's commit: it takes
    the next slug instead of failing with a conflict about a slug its client never chose."""
    db = await Database.connect(settings.database_url, min_size=2, max_size=2)
    first_id, second_id = uuid4(), uuid4()
    try:
        async with db.tenant(first_id) as first:
            await tenants.create(first, first_id, "Same Name Ltd", None, "UTC")
            second = asyncio.create_task(_create_tenant(db, second_id, "Same Name Ltd"))
            await asyncio.sleep(0.5)  # the second now waits on the first's uncommitted slug
            assert not second.done()
        slug = await second
        async with db.tenant(first_id) as conn:
            first_slug = (await tenants.get_in(conn, first_id)).slug
    finally:
        await db.close()
    assert (first_slug, slug) == ("same-name-ltd", "same-name-ltd-2")


async def _create_tenant(db: Database, tenant_id: UUID, name: str) -> str:
    async with db.tenant(tenant_id) as conn:
        return (await tenants.create(conn, tenant_id, name, None, "UTC")).slug


async def test_register_defaults_timezone_to_utc(client: AsyncTestClient) -> None:
    response = await client.post("/api/auth/register", json=registration())
    assert response.status_code == 201, response.text
    assert response.json()["agent"]["tenant"]["timezone"] == "UTC"


async def test_register_duplicate_slug_is_409(client: AsyncTestClient) -> None:
    taken = await register(client, slug="taken-slug")
    body = registration(slug="taken-slug")
    response = await client.post("/api/auth/register", json=body)
    assert "slug" in error_fields(problem(response, 409))
    assert set_cookies(response) == []
    # The refused registration left no account behind.
    assert (await login(client, body["email"])).status_code == 401
    # And the slug still belongs to the first organisation.
    me = await client.get("/api/auth/me", headers=taken.headers)
    assert me.json()["tenant"]["slug"] == "taken-slug"


@pytest.mark.parametrize("missing", ["organization_name", "name", "email", "password"])
async def test_register_missing_field_is_400_naming_it(client: AsyncTestClient, missing: str) -> None:
    body = registration()
    del body[missing]
    body_problem = problem(await client.post("/api/auth/register", json=body), 400)
    assert missing in error_fields(body_problem)
    assert missing in body_problem["detail"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("organization_name", 42),
        ("name", ["Ada"]),
        ("email", {"address": "a@example.com"}),
        ("password", 12345678),
        ("slug", 7),
        ("timezone", None),
    ],
)
async def test_register_wrong_type_is_400_naming_field(client: AsyncTestClient, field: str, value: Any) -> None:
    slug = f"wrong-type-{uuid4().hex[:8]}"
    body = registration(slug=slug) | {field: value}
    assert field in error_fields(problem(await client.post("/api/auth/register", json=body), 400))
    # Nothing was stored: the slug is still free.
    assert (await client.post("/api/auth/register", json=registration(slug=slug))).status_code == 201


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", "not-an-email"),
        ("email", "two@@example.com"),
        ("email", "spaces in@example.com"),
        ("email", "a" * 10_000 + "@example.com"),
        ("password", "short"),
        ("password", "x" * 10_000),
        ("name", "x" * 10_000),
        ("name", "   "),
        ("name", ""),
        ("name", "Ada\x00Admin"),
        ("organization_name", "y" * 10_000),
        ("organization_name", "\t\n"),
        ("slug", "Upper-Case"),
        ("slug", "has space"),
        ("slug", "-leading-dash"),
        ("slug", "trailing-dash-"),
        ("slug", "a" * 64),
        ("slug", ""),
        ("timezone", "Mars/Olympus_Mons"),  # well-formed, but no such zone: 422
        ("timezone", "z" * 10_000),
    ],
)
async def test_register_invalid_value_is_refused_naming_field(client: AsyncTestClient, field: str, value: str) -> None:
    email = f"bad-{uuid4().hex[:8]}@example.com"
    slug = f"bad-{uuid4().hex[:8]}"
    body = registration(email=email, slug=slug) | {field: value}
    response = await client.post("/api/auth/register", json=body)
    assert field in error_fields(problem(response, 422 if value == "Mars/Olympus_Mons" else 400))
    assert set_cookies(response) == []
    # Nothing was stored: neither an account to sign in to nor the organisation's slug.
    assert (await login(client, email)).status_code == 401
    assert (await client.post("/api/auth/register", json=registration(email=email, slug=slug))).status_code == 201


async def test_register_unknown_field_is_400_naming_it(client: AsyncTestClient) -> None:
    slug = f"unknown-{uuid4().hex[:8]}"
    body = registration(slug=slug, role="superuser")
    body_problem = problem(await client.post("/api/auth/register", json=body), 400)
    assert "role" in error_fields(body_problem)
    assert (await login(client, body["email"])).status_code == 401
    assert (await client.post("/api/auth/register", json=registration(slug=slug))).status_code == 201


@pytest.mark.parametrize("content", [b"{not json", b"[]", b'"a string"', b"", b"null"])
async def test_register_body_that_is_not_an_object_is_400(client: AsyncTestClient, content: bytes) -> None:
    response = await client.post("/api/auth/register", content=content, headers={"content-type": "application/json"})
    problem(response, 400)


async def test_register_email_is_stored_lowercase_and_login_ignores_case(client: AsyncTestClient) -> None:
    local = uuid4().hex[:8]
    response = await client.post("/api/auth/register", json=registration(email=f"Mixed.{local}@Example.COM"))
    assert response.status_code == 201, response.text
    assert response.json()["agent"]["email"] == f"mixed.{local}@example.com"
    assert (await login(client, f"MIXED.{local}@example.com")).status_code == 200


# --- login ------------------------------------------------------------------------------------


async def test_login_returns_working_token_and_cookie(client: AsyncTestClient, tenant: Tenant) -> None:
    response = await client.post("/api/auth/login", json={"email": tenant.admin_email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["token_type"] == "bearer"
    assert data["access_token"] != tenant.token
    assert data["agent"]["id"] == tenant.admin_id
    assert data["agent"]["tenant"]["id"] == tenant.id
    assert data["agent"]["last_seen_at"] is not None
    assert_no_secrets(response)
    cookie = set_cookies(response)[0].lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    client.cookies.clear()
    me = await client.get("/api/auth/me", headers=bearer(data["access_token"]))
    assert me.status_code == 200
    assert me.json()["id"] == tenant.admin_id


async def test_cookie_alone_authenticates(client: AsyncTestClient, tenant: Tenant) -> None:
    assert (await client.get("/api/auth/me")).status_code == 401
    response = await client.post("/api/auth/login", json={"email": tenant.admin_email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    me = await client.get("/api/auth/me")  # no Authorization header: the cookie from the login
    assert me.status_code == 200, me.text
    assert me.json()["email"] == tenant.admin_email
    assert me.json()["auth_method"] == "session"
    client.cookies.clear()
    assert (await client.get("/api/auth/me")).status_code == 401


async def test_login_wrong_password_is_401(client: AsyncTestClient, tenant: Tenant) -> None:
    response = await login(client, tenant.admin_email, "wrong password!")
    body = problem(response, 401)
    assert set_cookies(response) == []
    assert "access_token" not in body


async def test_login_unknown_email_is_401_and_indistinguishable(client: AsyncTestClient, tenant: Tenant) -> None:
    unknown = problem(await login(client, f"nobody-{uuid4().hex[:8]}@example.com"), 401)
    wrong = problem(await login(client, tenant.admin_email, "wrong password!"), 401)
    assert unknown["detail"] == wrong["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {"email": "a@example.com"},
        {"password": PASSWORD},
        {"email": "not-an-email", "password": PASSWORD},
        {"email": "a@example.com", "password": ""},
        {"email": "a@example.com", "password": "p" * 10_000},
        {"email": "a@example.com", "password": PASSWORD, "remember_me": True},
        {"email": "a@example.com", "password": PASSWORD, "tenant": "Not A Slug"},
    ],
)
async def test_login_bad_input_is_400(client: AsyncTestClient, body: dict[str, Any]) -> None:
    problem(await client.post("/api/auth/login", json=body), 400)


async def test_login_throttled_after_five_failures_per_email(client: AsyncTestClient, tenant: Tenant) -> None:
    for _ in range(5):
        problem(await login(client, tenant.admin_email, "wrong password!"), 401)
    # The sixth attempt is refused before the password is checked, even the right one.
    response = await login(client, tenant.admin_email)
    body = problem(response, 429)
    retry_after = int(response.headers["retry-after"])
    assert 0 < retry_after <= 900
    assert body["retry_after"] == retry_after
    assert set_cookies(response) == []
    # The email is throttled however it is spelt.
    problem(await login(client, tenant.admin_email.upper()), 429)
    # Other accounts are not affected, and sessions already open keep working.
    other = await register(client)
    assert (await login(client, other.admin_email)).status_code == 200
    assert (await client.get("/api/auth/me", headers=tenant.headers)).status_code == 200


async def test_successful_login_resets_the_failure_count(client: AsyncTestClient, tenant: Tenant) -> None:
    for _ in range(4):
        problem(await login(client, tenant.admin_email, "wrong password!"), 401)
    assert (await login(client, tenant.admin_email)).status_code == 200
    for _ in range(4):
        problem(await login(client, tenant.admin_email, "wrong password!"), 401)
    assert (await login(client, tenant.admin_email)).status_code == 200


async def test_login_throttled_per_client_address(client: AsyncTestClient, tenant: Tenant) -> None:
    # 20 failures from one address (settings default), each for a different email.
    for n in range(20):
        problem(await login(client, f"guess-{n}-{uuid4().hex[:6]}@example.com", "wrong password!"), 401)
    response = await login(client, tenant.admin_email)
    problem(response, 429)
    assert int(response.headers["retry-after"]) > 0


async def test_suspended_agent_cannot_login(client: AsyncTestClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    assert (await client.get("/api/auth/me", headers=agent["headers"])).status_code == 200
    response = await client.patch(f"/api/agents/{agent['id']}", json={"status": "suspended"}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    refused = await login(client, agent["email"])
    problem(refused, 403)
    assert set_cookies(refused) == []
    # The session the agent had is gone too.
    problem(await client.get("/api/auth/me", headers=agent["headers"]), 401)
    # A wrong password for a suspended account is still just a wrong password.
    problem(await login(client, agent["email"], "wrong password!"), 401)


async def test_deleted_agent_cannot_login(client: AsyncTestClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    assert (await client.delete(f"/api/agents/{agent['id']}", headers=tenant.headers)).status_code == 200
    problem(await login(client, agent["email"]), 401)
    problem(await client.get("/api/auth/me", headers=agent["headers"]), 401)


async def test_email_in_several_organisations_needs_tenant(client: AsyncTestClient) -> None:
    email = f"shared-{uuid4().hex[:8]}@example.com"
    first = await register(client, email=email)
    second = await register(client, email=email)
    body = problem(await login(client, email), 422)
    assert "tenant" in error_fields(body)
    for org in (first, second):
        response = await login(client, email, tenant=org.slug)
        assert response.status_code == 200, response.text
        assert response.json()["agent"]["tenant"]["id"] == org.id
    problem(await login(client, email, tenant=f"nope-{uuid4().hex[:6]}"), 401)


async def test_an_email_in_several_organisations_needs_the_tenant_whatever_the_password(
    client: AsyncTestClient,
) -> None:
    """Trying the password on every organisation's account would be an oracle: whoever registers an
    organisation under someone's email could learn whether that person's password equals theirs."""
    email = f"shared-{uuid4().hex[:8]}@example.com"
    victim = await register(client, email=email)
    attacker = await register(client, email=email, password="another secret phrase")
    same = problem(await login(client, email, PASSWORD), 422)  # the victim's password
    different = problem(await login(client, email, "another secret phrase"), 422)  # the attacker's own
    wrong = problem(await login(client, email, "neither of the two"), 422)
    assert same == different == wrong
    assert "tenant" in error_fields(same)
    for org, password in ((victim, PASSWORD), (attacker, "another secret phrase")):
        response = await login(client, email, password, tenant=org.slug)
        assert response.status_code == 200, response.text
        assert response.json()["agent"]["tenant"]["id"] == org.id
    problem(await login(client, email, PASSWORD, tenant=attacker.slug), 401)


async def failed_logins(client: AsyncTestClient, tenant: Tenant) -> list[dict[str, Any]]:
    response = await client.get("/api/activity-logs", params={"action": "auth.login_failed"}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()["activity_logs"]


async def test_a_failed_login_is_recorded_only_where_it_was_addressed(client: AsyncTestClient) -> None:
    """Someone who registers an organisation under a victim's email learns nothing of the victim's
    sign-in attempts: an attempt is recorded only in the organisation it named."""
    email = f"shared-{uuid4().hex[:8]}@example.com"
    victim = await register(client, email=email)
    attacker = await register(client, email=email, password="another secret phrase")

    problem(await login(client, email, "victim mistyped", tenant=victim.slug), 401)
    [entry] = await failed_logins(client, victim)
    assert (entry["object_id"], entry["actor_id"]) == (victim.admin_id, victim.admin_id)
    assert await failed_logins(client, attacker) == []

    problem(await login(client, email, "addressed to nobody"), 422)  # several organisations, none named
    problem(await login(client, email, "unknown organisation", tenant=f"nope-{uuid4().hex[:6]}"), 401)
    assert len(await failed_logins(client, victim)) == 1
    assert await failed_logins(client, attacker) == []

    problem(await login(client, email, "attacker mistyped", tenant=attacker.slug), 401)
    [own] = await failed_logins(client, attacker)
    assert own["object_id"] == attacker.admin_id
    assert len(await failed_logins(client, victim)) == 1


async def test_a_failed_login_to_the_only_account_of_an_email_is_recorded_there(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    problem(await login(client, tenant.admin_email, "wrong password!"), 401)
    [entry] = await failed_logins(client, tenant)
    assert entry["object_id"] == tenant.admin_id
    assert await failed_logins(client, other_tenant) == []


# --- logout -----------------------------------------------------------------------------------


async def test_logout_revokes_that_session_and_clears_cookie(client: AsyncTestClient, tenant: Tenant) -> None:
    other_session = (await login(client, tenant.admin_email)).json()["access_token"]
    response = await client.post("/api/auth/logout", headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.json()["message"]
    cookies = set_cookies(response)
    assert len(cookies) == 1
    cleared = cookies[0].lower()
    assert cleared.startswith('omnistream_session="";') or cleared.startswith("omnistream_session=;")
    assert "max-age=0" in cleared or "expires=" in cleared
    problem(await client.get("/api/auth/me", headers=tenant.headers), 401)
    problem(await client.post("/api/auth/logout", headers=tenant.headers), 401)
    problem(await client.get("/api/auth/token", headers=tenant.headers), 401)
    # Only that session ended: another sign-in of the same agent still works.
    assert (await client.get("/api/auth/me", headers=bearer(other_session))).status_code == 200


async def test_logout_with_cookie_ends_cookie_session(client: AsyncTestClient, tenant: Tenant) -> None:
    assert (await client.post("/api/auth/login", json={"email": tenant.admin_email, "password": PASSWORD})).is_success
    token = client.cookies.get("omnistream_session", "").strip('"').removeprefix("Bearer ")
    assert token
    response = await client.post("/api/auth/logout", headers={"X-CSRF-Token": client.cookies["omnistream_csrf"]})
    assert response.status_code == 200, response.text
    assert [c for c in response.headers.get_list("set-cookie") if c.startswith("omnistream_csrf=")]
    assert "omnistream_csrf" not in client.cookies
    assert (await client.get("/api/auth/me")).status_code == 401
    client.cookies.clear()
    problem(await client.get("/api/auth/me", headers=bearer(token)), 401)


async def test_logout_needs_authentication(client: AsyncTestClient) -> None:
    response = await client.post("/api/auth/logout")
    problem(response, 401)
    assert set_cookies(response) == []


# --- token refresh ----------------------------------------------------------------------------


async def test_token_issues_new_token_for_same_session(client: AsyncTestClient, tenant: Tenant) -> None:
    response = await client.get("/api/auth/token", headers=tenant.headers)
    assert response.status_code == 200, response.text
    data = response.json()
    client.cookies.clear()
    assert data["token_type"] == "bearer"
    assert data["agent"]["id"] == tenant.admin_id
    assert set_cookies(response)
    new_token = data["access_token"]
    assert claims_of(new_token)["jti"] == claims_of(tenant.token)["jti"]
    assert claims_of(new_token)["exp"] >= claims_of(tenant.token)["exp"]
    me = await client.get("/api/auth/me", headers=bearer(new_token))
    assert me.status_code == 200
    assert me.json()["id"] == tenant.admin_id
    # Same session: ending it through the new token ends the old token too.
    assert (await client.post("/api/auth/logout", headers=bearer(new_token))).status_code == 200
    problem(await client.get("/api/auth/me", headers=tenant.headers), 401)
    problem(await client.get("/api/auth/me", headers=bearer(new_token)), 401)


async def test_token_with_api_key_is_403(client: AsyncTestClient, tenant: Tenant) -> None:
    created = await client.post("/api/api-keys", json={"name": "ci"}, headers=tenant.headers)
    assert created.status_code == 201, created.text
    key_headers = {"X-API-Key": created.json()["key"]}
    response = await client.get("/api/auth/token", headers=key_headers)
    problem(response, 403)
    assert set_cookies(response) == []
    # Nor can a key "log out".
    assert (await client.post("/api/auth/logout", headers=key_headers)).status_code == 403
    assert (await client.get("/api/auth/me", headers=key_headers)).status_code == 200


async def test_token_needs_authentication(client: AsyncTestClient) -> None:
    problem(await client.get("/api/auth/token"), 401)


# --- me ---------------------------------------------------------------------------------------


async def test_me_shows_permissions_and_tenant(client: AsyncTestClient, tenant: Tenant) -> None:
    response = await client.get("/api/auth/me", headers=tenant.headers)
    assert response.status_code == 200, response.text
    me = response.json()
    assert me["id"] == tenant.admin_id
    assert me["email"] == tenant.admin_email
    assert me["base_role"] == "admin"
    assert me["auth_method"] == "session"
    assert me["tenant"]["id"] == tenant.id
    assert me["tenant"]["slug"] == tenant.slug
    assert {"roles.manage", "agents.manage", "api_keys.own", "agents.read"} <= set(me["permissions"])
    assert me["permissions"] == sorted(me["permissions"])


async def test_me_of_an_agent_has_only_agent_permissions(client: AsyncTestClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    me = (await client.get("/api/auth/me", headers=agent["headers"])).json()
    assert me["id"] == agent["id"]
    assert me["base_role"] == "agent"
    assert me["tenant"]["id"] == tenant.id
    assert {"agents.read", "api_keys.own", "conversations.read"} <= set(me["permissions"])
    assert not {"roles.manage", "agents.manage", "billing.manage", "automation.manage"} & set(me["permissions"])


async def test_me_needs_authentication(client: AsyncTestClient) -> None:
    problem(await client.get("/api/auth/me"), 401)


async def test_no_response_carries_a_password_or_hash(client: AsyncTestClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant, role="supervisor")
    responses = [
        await client.post("/api/auth/register", json=registration()),
        await client.post("/api/auth/login", json={"email": tenant.admin_email, "password": PASSWORD}),
        await client.get("/api/auth/me", headers=tenant.headers),
        await client.get("/api/auth/token", headers=tenant.headers),
        await client.get("/api/agents", headers=tenant.headers),
        await client.get(f"/api/agents/{agent['id']}", headers=tenant.headers),
        await client.patch(
            f"/api/agents/{agent['id']}", json={"password": "a brand new secret"}, headers=tenant.headers
        ),
        await client.post(
            "/api/agents",
            json={"email": f"x-{uuid4().hex[:6]}@example.com", "name": "X", "password": PASSWORD},
            headers=tenant.headers,
        ),
    ]
    client.cookies.clear()
    for response in responses:
        assert response.is_success, response.text
        assert_no_secrets(response, "a brand new secret")
    # The activity log records that a password changed and that a sign-in failed, never what was typed.
    problem(await login(client, agent["email"], "a wrong guess 123"), 401)
    logs = await client.get("/api/activity-logs", headers=tenant.headers)
    assert logs.status_code == 200, logs.text
    assert {"agent.updated", "auth.login_failed"} <= {log["action"] for log in logs.json()["activity_logs"]}
    for secret in ("argon2", PASSWORD, "a brand new secret", "a wrong guess 123"):
        assert secret not in logs.text


# --- JWT attacks ------------------------------------------------------------------------------


async def test_token_signed_with_another_secret_is_401(
    client: AsyncTestClient, tenant: Tenant, settings: Settings
) -> None:
    forged = forge(settings, tenant, secret="some-other-secret-of-sufficient-length-000")
    problem(await client.get("/api/auth/me", headers=bearer(forged)), 401)
    # The same claims signed with the real secret do work: it is the signature that was refused.
    assert (await client.get("/api/auth/me", headers=bearer(forge(settings, tenant)))).status_code == 200


async def test_tampered_payload_is_401(client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant) -> None:
    header, _, signature = tenant.token.split(".")
    claims = claims_of(tenant.token) | {"sub": other_tenant.admin_id, "extras": {"tid": other_tenant.id}}
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    problem(await client.get("/api/auth/me", headers=bearer(f"{header}.{payload}.{signature}")), 401)


async def test_expired_token_is_401(client: AsyncTestClient, tenant: Tenant, settings: Settings) -> None:
    past = datetime.now(UTC) - timedelta(minutes=5)
    expired = forge(settings, tenant, exp=int(past.timestamp()), iat=int((past - timedelta(hours=1)).timestamp()))
    problem(await client.get("/api/auth/me", headers=bearer(expired)), 401)


async def test_wrong_audience_is_401(client: AsyncTestClient, tenant: Tenant, settings: Settings) -> None:
    problem(await client.get("/api/auth/me", headers=bearer(forge(settings, tenant, aud="another-api"))), 401)


async def test_alg_none_token_is_401(client: AsyncTestClient, tenant: Tenant) -> None:
    unsigned = jwt.encode(claims_of(tenant.token), key=None, algorithm="none")
    problem(await client.get("/api/auth/me", headers=bearer(unsigned)), 401)
    problem(await client.get("/api/auth/me", headers=bearer(unsigned.rstrip(".") + ".")), 401)


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
async def test_other_algorithm_with_same_secret_is_401(
    client: AsyncTestClient, tenant: Tenant, settings: Settings
) -> None:
    token = jwt.encode(claims_of(tenant.token), settings.jwt_secret, algorithm="HS512")
    problem(await client.get("/api/auth/me", headers=bearer(token)), 401)


@pytest.mark.parametrize(
    "header",
    [
        "Bearer garbage",
        "Bearer a.b.c",
        "Bearer ",
        "Bearer " + "x" * 10_000,
        "Basic dXNlcjpwYXNz",
        "garbage",
    ],
)
async def test_garbage_authorization_is_401(client: AsyncTestClient, header: str) -> None:
    problem(await client.get("/api/auth/me", headers={"Authorization": header}), 401)


async def test_garbage_cookie_is_401(client: AsyncTestClient) -> None:
    client.cookies.set("omnistream_session", "Bearer not-a-token")
    problem(await client.get("/api/auth/me"), 401)


@pytest.mark.parametrize(
    "changes",
    [
        {"exp": None},
        {"aud": None},
        {"jti": None},
        {"sub": None},
        {"jti": "not-a-uuid"},
        {"sub": "not-a-uuid"},
        {"extras": {}},
        {"extras": {"tid": "not-a-uuid"}},
        {"jti": str(uuid4())},
    ],
)
async def test_validly_signed_token_with_bad_claims_is_401(
    client: AsyncTestClient, tenant: Tenant, settings: Settings, changes: dict[str, Any]
) -> None:
    problem(await client.get("/api/auth/me", headers=bearer(forge(settings, tenant, **changes))), 401)


async def test_session_cannot_be_moved_to_another_user_or_tenant(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant, settings: Settings
) -> None:
    # A validly signed token naming someone else's identity on this session is refused.
    as_other = forge(settings, tenant, sub=other_tenant.admin_id, extras={"tid": other_tenant.id})
    problem(await client.get("/api/auth/me", headers=bearer(as_other)), 401)
    other_tenant_same_user = forge(settings, tenant, extras={"tid": other_tenant.id})
    problem(await client.get("/api/auth/me", headers=bearer(other_tenant_same_user)), 401)


async def test_token_of_revoked_session_is_401(client: AsyncTestClient, tenant: Tenant) -> None:
    token = (await login(client, tenant.admin_email)).json()["access_token"]
    assert (await client.get("/api/auth/me", headers=bearer(token))).status_code == 200
    assert (await client.post("/api/auth/logout", headers=bearer(token))).status_code == 200
    problem(await client.get("/api/auth/me", headers=bearer(token)), 401)
    problem(await client.get("/api/agents", headers=bearer(token)), 401)


async def test_password_change_ends_sessions_but_reactivation_does_not_revive_them(
    client: AsyncTestClient, tenant: Tenant
) -> None:
    agent = await create_agent(client, tenant)
    changed = await client.patch(
        f"/api/agents/{agent['id']}", json={"password": "a brand new secret"}, headers=tenant.headers
    )
    assert changed.status_code == 200, changed.text
    problem(await client.get("/api/auth/me", headers=agent["headers"]), 401)
    problem(await login(client, agent["email"]), 401)
    fresh = await login(client, agent["email"], "a brand new secret")
    assert fresh.status_code == 200, fresh.text
    token = fresh.json()["access_token"]
    for status in ("suspended", "active"):
        response = await client.patch(f"/api/agents/{agent['id']}", json={"status": status}, headers=tenant.headers)
        assert response.status_code == 200, response.text
    problem(await client.get("/api/auth/me", headers=bearer(token)), 401)
    assert (await login(client, agent["email"], "a brand new secret")).status_code == 200
