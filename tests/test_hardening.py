"""Rights cannot be escalated, text filters are literal, date ranges are checked everywhere, and
hostile input (deep JSON, NUL characters) is a client error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest
from litestar import Litestar, post
from litestar.params import JSONBody
from litestar.testing import AsyncTestClient

from omnistream.errors import PROBLEM_DETAILS
from omnistream.kit.body import StrictBodyRequest
from tests.conftest import Tenant, create_agent, ingest, problem


async def _deputy(client: AsyncTestClient, tenant: Tenant, permissions: list[str]) -> dict:
    """An admin-level agent whose custom role holds only some permissions."""
    role = await client.post(
        "/api/roles", json={"name": "Deputy", "base_role": "admin", "permissions": permissions}, headers=tenant.headers
    )
    assert role.status_code == 201, role.text
    return await create_agent(client, tenant, "admin", role_id=role.json()["id"])


async def test_a_role_cannot_grant_more_than_its_creator_holds(client: AsyncTestClient, tenant: Tenant) -> None:
    deputy = await _deputy(client, tenant, ["roles.manage", "agents.read"])
    beyond = await client.post(
        "/api/roles", json={"name": "Sneaky", "permissions": ["billing.manage"]}, headers=deputy["headers"]
    )
    assert beyond.status_code == 403
    assert "billing.manage" in beyond.json()["detail"]
    within = await client.post(
        "/api/roles", json={"name": "Reader", "permissions": ["agents.read"]}, headers=deputy["headers"]
    )
    assert within.status_code == 201, within.text
    widened = await client.patch(
        f"/api/roles/{within.json()['id']}", json={"permissions": ["activity_logs.read"]}, headers=deputy["headers"]
    )
    assert widened.status_code == 403
    roles = (await client.get("/api/roles", headers=tenant.headers)).json()["roles"]
    assert "Sneaky" not in {r["name"] for r in roles}
    assert next(r for r in roles if r["name"] == "Reader")["permissions"] == ["agents.read"]


async def test_an_agent_cannot_be_given_a_role_above_the_actor(client: AsyncTestClient, tenant: Tenant) -> None:
    deputy = await _deputy(client, tenant, ["agents.manage", "agents.read", "roles.manage"])
    roles = (await client.get("/api/roles", headers=tenant.headers)).json()["roles"]
    admin_role = next(r["id"] for r in roles if r["is_builtin"] and r["base_role"] == "admin")
    # The deputy would become a full admin by giving itself the built-in admin role.
    promoted = await client.patch(
        f"/api/agents/{deputy['id']}", json={"role_id": admin_role}, headers=deputy["headers"]
    )
    assert promoted.status_code == 403
    created = await client.post(
        "/api/agents",
        json={"email": "new@example.com", "name": "New", "password": "long enough pw", "role_id": admin_role},
        headers=deputy["headers"],
    )
    assert created.status_code == 403
    me = (await client.get("/api/auth/me", headers=deputy["headers"])).json()
    assert me["role"] == "Deputy"


@pytest.mark.parametrize("path", ["/api/agents", "/api/contacts", "/api/conversations"])
async def test_text_filters_match_literally(client: AsyncTestClient, tenant: Tenant, db, path: str) -> None:
    await ingest(db, tenant, "hi", contact_name="Plain Name")
    everything = await client.get(path, headers=tenant.headers)
    assert everything.json()["total"] >= 1
    for wildcard in ("%", "_", "%_%"):
        response = await client.get(path, params={"q": wildcard}, headers=tenant.headers)
        assert response.status_code == 200, response.text
        assert response.json()["total"] == 0, f"{wildcard!r} must not act as a wildcard"


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        ("/api/contacts", {}),
        ("/api/messages/search", {"q": "hello"}),
        ("/api/conversations", {}),
        ("/api/activity-logs", {}),
    ],
)
async def test_backwards_or_mixed_date_ranges(
    client: AsyncTestClient, tenant: Tenant, db, path: str, extra: dict
) -> None:
    backwards = {"created_from": "2026-02-01T00:00:00Z", "created_to": "2026-01-01T00:00:00", **extra}
    response = await client.get(path, params=backwards, headers=tenant.headers)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "created_from"
    await ingest(db, tenant, "hello")
    # A time without a zone is UTC; the range filters by it either way.
    now = datetime.now(UTC)
    around_now = {
        "created_from": (now - timedelta(hours=1)).replace(tzinfo=None).isoformat(),
        "created_to": (now + timedelta(hours=1)).astimezone(timezone(timedelta(hours=7))).isoformat(),
    }
    before_now = {
        "created_from": (now - timedelta(hours=3)).replace(tzinfo=None).isoformat(),
        "created_to": (now - timedelta(hours=1)).astimezone(timezone(timedelta(hours=7))).isoformat(),
    }
    found = await client.get(path, params=around_now | extra, headers=tenant.headers)
    assert found.status_code == 200, found.text
    assert found.json()["total"] >= 1
    earlier = await client.get(path, params=before_now | extra, headers=tenant.headers)
    assert earlier.status_code == 200, earlier.text
    assert earlier.json()["total"] == 0


@pytest.mark.parametrize("path", ["/api/auth/login", "/api/divisions", "/api/conversations/bulk"])
async def test_json_nested_too_deeply_is_a_client_error(client: AsyncTestClient, tenant: Tenant, path: str) -> None:
    body = "[" * 5000 + "]" * 5000
    response = await client.post(path, content=body, headers={**tenant.headers, "content-type": "application/json"})
    # Refused at the first bracket (the body must be an object) or, for a body of any shape, by
    # its depth: either way a 400, never the decoder's RecursionError as a 500.
    assert problem(response, 400)["detail"]
    assert (await client.get("/api/divisions", headers=tenant.headers)).json()["total"] == 0


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/conversations", "q"),
        ("/api/conversations", "tag"),
        ("/api/contacts", "q"),
        ("/api/agents", "q"),
        ("/api/divisions", "q"),
        ("/api/messages/search", "q"),
        ("/api/activity-logs", "action"),
    ],
)
async def test_a_nul_character_in_a_text_filter_names_the_filter(
    client: AsyncTestClient, tenant: Tenant, path: str, name: str
) -> None:
    response = await client.get(path, params={name: "a\x00b"}, headers=tenant.headers)
    body = problem(response, 400)
    assert {"field": name, "source": "query", "message": "must not contain a NUL character"} in body["errors"]


@pytest.mark.parametrize(
    ("cursor", "status"),
    [
        ("a\x00b", 400),
        ("yesterday|00000000-0000-0000-0000-000000000000", 400),
        ("2024-01-01T00:00:00Z|not-a-uuid", 400),
        ("2024-02-30T00:00:00Z|00000000-0000-0000-0000-000000000000", 422),  # the form is right, the day is not
        ("2024-01-01T25:00:00Z|00000000-0000-0000-0000-000000000000", 422),
    ],
)
async def test_a_cursor_not_as_given_is_refused_in_words(
    client: AsyncTestClient, tenant: Tenant, cursor: str, status: int
) -> None:
    body = problem(await client.get("/api/conversations", params={"cursor": cursor}, headers=tenant.headers), status)
    [error] = body["errors"]
    assert error["field"] == "cursor"
    assert "regex" not in error["message"]
    assert ("next_cursor" in error["message"]) if status == 400 else ("real moment" in error["message"])


@pytest.mark.parametrize("path", ["/api/conversations", "/api/contacts", "/api/activity-logs", "/api/messages/search"])
@pytest.mark.parametrize("moment", ["253402300800", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
async def test_a_date_filter_outside_the_calendar_is_a_client_error(
    client: AsyncTestClient, tenant: Tenant, path: str, moment: str
) -> None:
    params = {"created_from": moment} | ({"q": "hello"} if path.endswith("search") else {})
    # A number past year 9999 is no date-time (400); a valid one whose UTC falls outside the calendar
    # breaks a rule (422).
    body = problem(await client.get(path, params=params, headers=tenant.headers), 400 if moment.isdigit() else 422)
    assert ("ISO 8601" if moment.isdigit() else "out of range") in body["detail"]
    assert "$" not in body["detail"]  # no query internals


async def test_a_key_expiry_outside_the_calendar_is_a_client_error(client: AsyncTestClient, tenant: Tenant) -> None:
    for expires_at in (253402300800, "253402300800", "10000-01-01T00:00:00Z"):
        response = await client.post(
            "/api/api-keys", json={"name": "k", "expires_at": expires_at}, headers=tenant.headers
        )
        assert [e["field"] for e in problem(response, 400)["errors"]] == ["expires_at"]
    assert (await client.get("/api/api-keys", headers=tenant.headers)).json()["api_keys"] == []


async def test_a_deep_body_of_any_shape_is_a_client_error() -> None:
    """The body's depth, not its type, is what fails here: the decoder's own recursion limit."""

    @post("/anything", sync_to_thread=False)
    def anything(data: JSONBody[object]) -> None:
        return None

    app = Litestar([anything], plugins=[PROBLEM_DETAILS], request_class=StrictBodyRequest)
    async with AsyncTestClient(app) as client:
        response = await client.post(
            "/anything", content="[" * 5000 + "]" * 5000, headers={"content-type": "application/json"}
        )
    assert "nested too deeply" in problem(response, 400)["detail"]


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("PUT", "/api/chat-expiration-rules/whatsapp", {"inactivity_minutes": "60"}, "inactivity_minutes"),
        ("PUT", "/api/chat-expiration-rules/whatsapp", {"inactivity_minutes": 60, "enabled": 0}, "enabled"),
        ("PUT", "/api/chat-expiration-rules/whatsapp", {"inactivity_minutes": 1.5}, "inactivity_minutes"),
        ("POST", "/api/conversations/expire", "NULL", "data"),
        ("POST", "/api/conversations/expire", {"dry_run": "false"}, "dry_run"),
        ("POST", "/api/divisions", {"name": "Sales", "agent_ids": [1]}, "agent_ids"),
    ],
)
async def test_bodies_are_read_as_declared_without_coercion(
    client: AsyncTestClient, tenant: Tenant, db: Any, method: str, path: str, body: Any, field: str
) -> None:
    """A string is not a number, 0 is not false and "NULL" is not an empty body: each is refused
    naming the field, and nothing happens (no rule stored, nothing expired)."""
    conversation = await ingest(db, tenant, "hello")
    response = await client.request(method, path, json=body, headers=tenant.headers)
    assert [e["field"] for e in problem(response, 400)["errors"]] == [field]
    assert (await client.get("/api/chat-expiration-rules", headers=tenant.headers)).json()["rules"] == []
    current = await client.get(f"/api/conversations/{conversation.conversation_id}", headers=tenant.headers)
    assert current.json()["status"] == "open"


@pytest.mark.parametrize(
    "path", ["/api/conversations/not-a-uuid", "/api/contacts/123/conversations", "/api/no-such-thing"]
)
async def test_a_path_that_matches_nothing_says_so(client: AsyncTestClient, tenant: Tenant, path: str) -> None:
    error = problem(await client.get(path, headers=tenant.headers), 404)
    assert error["detail"] == "no endpoint has this path: check its spelling, and that each id in it is a UUID"


async def test_the_databases_own_words_never_reach_the_client() -> None:
    """A value PostgreSQL refuses is a 400 in the project's words; the driver's text (which names
    types, functions and the statement) is only logged."""
    driver_text = "unsupported Unicode escape sequence DETAIL: \\u0000 cannot be converted to text. CONTEXT: JSON data"

    @post("/refused", sync_to_thread=False)
    def refused_by_database() -> None:
        raise asyncpg.exceptions.UntranslatableCharacterError(driver_text)

    @post("/refused-otherwise", sync_to_thread=False)
    def refused_otherwise() -> None:
        raise asyncpg.exceptions.InvalidTextRepresentationError('invalid input syntax for type uuid: "x"')

    app = Litestar([refused_by_database, refused_otherwise], plugins=[PROBLEM_DETAILS])
    async with AsyncTestClient(app) as client:
        first = problem(await client.post("/refused"), 400)
        second = problem(await client.post("/refused-otherwise"), 400)
    assert first["detail"] == "a text value holds a character that cannot be stored (NUL); nothing was changed"
    assert second["detail"] == "a value could not be stored; nothing was changed"
    for body in (first, second):
        assert "DETAIL" not in str(body)
        assert "uuid" not in str(body)
        assert "Unicode" not in str(body)
