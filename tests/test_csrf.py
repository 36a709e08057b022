"""Cross-site request forgery: a write authenticated by the session cookie alone needs the session's
CSRF token, or a browser's word that it came from the API's own origin; Bearer and API-key
requests are not affected."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from omnistream.app import create_app
from omnistream.config import Settings
from tests.conftest import PASSWORD, Tenant, create_agent, problem, register

PUBLIC_URL = "https://crm.example.com/"


async def cookie_session(client: AsyncTestClient, email: str) -> str:
    """Sign the client's cookie jar in, as a browser would be; returns the csrf_token of the sign-in."""
    response = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    assert client.cookies["omnistream_csrf"] == response.json()["csrf_token"]
    return response.json()["csrf_token"]


async def role_names(client: AsyncTestClient, tenant: Tenant) -> set[str]:
    return {r["name"] for r in (await client.get("/api/roles", headers=tenant.headers)).json()["roles"]}


async def key_count(client: AsyncTestClient, tenant: Tenant) -> int:
    return (await client.get("/api/api-keys", headers=tenant.headers)).json()["total"]


def refused_as_forgery(response: Any) -> None:
    assert "CSRF token" in problem(response, 403)["detail"]


async def test_a_cross_site_text_plain_post_is_refused(client: AsyncTestClient, tenant: Tenant) -> None:
    """What a form on another site can send: the cookie goes with it, a header cannot."""
    await cookie_session(client, tenant.admin_email)
    body = '{"name": "Forged", "base_role": "admin", "permissions": ["roles.manage"]}'
    response = await client.post("/api/roles", content=body, headers={"content-type": "text/plain"})
    refused_as_forgery(response)
    assert "Forged" not in await role_names(client, tenant)


async def test_a_cross_site_form_post_is_refused(client: AsyncTestClient, tenant: Tenant) -> None:
    await cookie_session(client, tenant.admin_email)
    response = await client.post("/api/api-keys", data={"name": "forged"})
    refused_as_forgery(response)
    response = await client.post("/api/api-keys", json={"name": "forged"}, headers={"sec-fetch-site": "cross-site"})
    refused_as_forgery(response)
    assert await key_count(client, tenant) == 0


async def test_the_sessions_token_lets_a_cookie_write_through(client: AsyncTestClient, tenant: Tenant) -> None:
    token = await cookie_session(client, tenant.admin_email)
    response = await client.post("/api/roles", json={"name": "Meant"}, headers={"X-CSRF-Token": token})
    assert response.status_code == 201, response.text
    response = await client.post("/api/api-keys", json={"name": "meant"}, headers={"X-CSRF-Token": token})
    assert response.status_code == 201, response.text
    assert "Meant" in await role_names(client, tenant)
    assert await key_count(client, tenant) == 1


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", "/api/agents/{agent}", {"name": "Renamed"}),
        ("DELETE", "/api/agents/{agent}", None),
        ("PUT", "/api/chat-expiration-rules/whatsapp", {"inactivity_minutes": 60}),
        ("POST", "/api/auth/logout", None),
    ],
)
async def test_every_unsafe_method_is_checked(
    client: AsyncTestClient, tenant: Tenant, method: str, path: str, body: Any
) -> None:
    agent = await create_agent(client, tenant)
    token = await cookie_session(client, tenant.admin_email)
    url = path.format(agent=agent["id"])
    refused_as_forgery(await client.request(method, url, json=body))
    assert (await client.get("/api/auth/me")).status_code == 200  # not signed out either
    assert (await client.get(f"/api/agents/{agent['id']}", headers=tenant.headers)).json()["name"] == agent["name"]
    response = await client.request(method, url, json=body, headers={"X-CSRF-Token": token})
    assert response.status_code == 200, response.text


async def test_another_sessions_token_or_a_made_up_one_is_refused(client: AsyncTestClient, tenant: Tenant) -> None:
    other = await create_agent(client, tenant)
    other_token = await cookie_session(client, other["email"])
    mine = await cookie_session(client, tenant.admin_email)
    assert mine != other_token
    for token in (other_token, "x" * 43, "", "ünïcode".encode()):
        refused_as_forgery(await client.post("/api/roles", json={"name": "Forged"}, headers={"X-CSRF-Token": token}))
    assert "Forged" not in await role_names(client, tenant)


async def test_the_token_belongs_to_the_session(client: AsyncTestClient, tenant: Tenant) -> None:
    """A refresh keeps the session and so the token; a new sign-in is a new session with a new one."""
    token = await cookie_session(client, tenant.admin_email)
    refreshed = await client.get("/api/auth/token")
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["csrf_token"] == token == client.cookies["omnistream_csrf"]
    again = await cookie_session(client, tenant.admin_email)
    assert again != token
    response = await client.post("/api/roles", json={"name": "Old Token"}, headers={"X-CSRF-Token": token})
    refused_as_forgery(response)


async def test_a_same_origin_browser_request_needs_no_token(client: AsyncTestClient, tenant: Tenant) -> None:
    await cookie_session(client, tenant.admin_email)
    same_origin = await client.post("/api/roles", json={"name": "Own Page"}, headers={"sec-fetch-site": "same-origin"})
    assert same_origin.status_code == 201, same_origin.text
    for site in ("same-site", "cross-site", "none"):
        response = await client.post("/api/roles", json={"name": f"From {site}"}, headers={"sec-fetch-site": site})
        refused_as_forgery(response)
    assert await role_names(client, tenant) >= {"Own Page"}
    assert not {"From same-site", "From cross-site", "From none"} & await role_names(client, tenant)


@pytest.fixture
async def published(settings: Settings) -> AsyncIterator[AsyncTestClient]:
    with_url = msgspec.structs.replace(settings, public_url=PUBLIC_URL)
    async with AsyncTestClient(app=create_app(with_url)) as test_client:
        yield test_client


async def test_an_older_browser_is_trusted_by_the_public_urls_origin(published: AsyncTestClient) -> None:
    tenant = await register(published)
    await cookie_session(published, tenant.admin_email)
    own = await published.post("/api/roles", json={"name": "Own"}, headers={"origin": "https://crm.example.com"})
    assert own.status_code == 201, own.text
    for origin in ("https://evil.example", "http://crm.example.com", "https://crm.example.com.evil.example", "null"):
        refused_as_forgery(await published.post("/api/roles", json={"name": "Forged"}, headers={"origin": origin}))
    # A browser that says where it is from is believed over an Origin it also sends.
    response = await published.post(
        "/api/roles",
        json={"name": "Forged"},
        headers={"origin": "https://crm.example.com", "sec-fetch-site": "cross-site"},
    )
    refused_as_forgery(response)
    assert "Forged" not in await role_names(published, tenant)


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://crm.example.com/", "https://crm.example.com"),
        ("HTTPS://CRM.Example.com:443/api", "https://crm.example.com"),
        ("http://localhost:8000", "http://localhost:8000"),
        ("http://crm.example.com:80", "http://crm.example.com"),
        ("", None),
        ("crm.example.com", None),
    ],
)
def test_the_public_urls_origin_is_written_as_browsers_write_it(url: str, origin: str | None) -> None:
    from omnistream.security.csrf import origin_of

    assert origin_of(url) == origin


async def test_an_origin_is_not_enough_without_a_public_url(client: AsyncTestClient, tenant: Tenant) -> None:
    await cookie_session(client, tenant.admin_email)
    origin = {"origin": "http://testserver.local"}
    refused_as_forgery(await client.post("/api/roles", json={"name": "Forged"}, headers=origin))


async def test_bearer_and_api_key_requests_need_no_token(client: AsyncTestClient, tenant: Tenant) -> None:
    await cookie_session(client, tenant.admin_email)  # a cookie is present too, and ignored
    response = await client.post("/api/roles", json={"name": "By Bearer"}, headers=tenant.headers)
    assert response.status_code == 201, response.text
    key = await client.post("/api/api-keys", json={"name": "script"}, headers=tenant.headers)
    assert key.status_code == 201, key.text
    client.cookies.clear()
    response = await client.post("/api/roles", json={"name": "By Key"}, headers={"X-API-Key": key.json()["key"]})
    assert response.status_code == 201, response.text
    assert {"By Bearer", "By Key"} <= await role_names(client, tenant)


async def test_an_authorization_header_without_a_token_does_not_skip_the_check(
    client: AsyncTestClient, tenant: Tenant
) -> None:
    """`Authorization: Bearer` with nothing after it falls back to the cookie, and so to the check."""
    await cookie_session(client, tenant.admin_email)
    response = await client.post("/api/roles", json={"name": "Forged"}, headers={"authorization": "Bearer"})
    refused_as_forgery(response)
    assert "Forged" not in await role_names(client, tenant)


async def test_reading_with_the_cookie_needs_no_token(client: AsyncTestClient, tenant: Tenant) -> None:
    await cookie_session(client, tenant.admin_email)
    for path in ("/api/auth/me", "/api/roles", "/api/agents"):
        assert (await client.get(path)).status_code == 200, path


async def test_signing_up_and_in_from_a_browser_need_no_token(client: AsyncTestClient) -> None:
    email = f"browser-{uuid4().hex[:8]}@example.com"
    browser = {"sec-fetch-site": "same-site", "origin": "https://app.example.com"}
    body = {"organization_name": "Browser Co", "name": "B", "email": email, "password": PASSWORD}
    registered = await client.post("/api/auth/register", json=body, headers=browser)
    assert registered.status_code == 201, registered.text
    assert client.cookies["omnistream_csrf"] == registered.json()["csrf_token"]
    signed_in = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD}, headers=browser)
    assert signed_in.status_code == 200, signed_in.text
    cookies = [c.lower() for c in signed_in.headers.get_list("set-cookie") if c.startswith("omnistream_csrf=")]
    assert len(cookies) == 1
    assert "samesite=lax" in cookies[0]
    assert "httponly" not in cookies[0]  # the site's own scripts read it
    token = signed_in.json()["csrf_token"]
    response = await client.post("/api/roles", json={"name": "Mine"}, headers=browser | {"X-CSRF-Token": token})
    assert response.status_code == 201, response.text
