"""Integrations: channel settings, accounts, and the Meta sign-up and login flows, as an admin
connecting channels sees them, against the Graph API stand-in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote
from uuid import UUID, uuid4

import asyncpg
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from omnistream.app import create_app
from omnistream.config import Settings
from omnistream.fake_meta.accounts import INSTAGRAM_ID, PAGE_ID, PHONE_NUMBER_ID, WABA_ID
from omnistream.integrations import service as integrations
from omnistream.security.secrets import digest
from tests.conftest import Tenant, create_agent, problem
from tests.standins import GraphStandIn

APP_ID = "000000000000001"
APP_SECRET = "platform-app-secret-0123456789"
CONFIG_ID = "987654321012345"


@pytest.fixture
def meta_settings(settings: Settings) -> Settings:
    """The platform's Meta app configured, as a deployment offering Embedded Signup has it."""
    return msgspec.structs.replace(
        settings, meta_app_id=APP_ID, meta_app_secret=APP_SECRET, meta_embedded_signup_config_id=CONFIG_ID
    )


@pytest.fixture
async def api(meta_settings: Settings) -> AsyncIterator[AsyncTestClient]:
    async with AsyncTestClient(app=create_app(meta_settings)) as test_client:
        yield test_client


@pytest.fixture
async def owner(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """The schema owner's connection, to look at what is stored at rest."""
    conn = await asyncpg.connect(settings.migrations_database_url)
    try:
        yield conn
    finally:
        await conn.close()


def a_secret(kind: str = "secret") -> str:
    return f"{kind}-{uuid4().hex}{uuid4().hex}"


def phone_id() -> str:
    return str(10**14 + uuid4().int % 10**14)


async def new_account(client: AsyncTestClient, tenant: Tenant, **body: Any) -> dict[str, Any]:
    body = {"channel": "whatsapp", "external_id": phone_id(), "access_token": a_secret("EAA")} | body
    response = await client.post("/api/integration-accounts", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def account(client: AsyncTestClient, tenant: Tenant, account_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/integration-accounts/{account_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def accounts(client: AsyncTestClient, tenant: Tenant, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/api/integration-accounts", params={"per_page": 100, **params}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()["integration_accounts"]


async def activity(client: AsyncTestClient, tenant: Tenant, object_type: str) -> list[dict[str, Any]]:
    response = await client.get("/api/activity-logs", params={"object_type": object_type}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()["activity_logs"]


# ---------------------------------------------------------------- channel integrations


async def test_an_integration_keeps_its_secrets_sealed_and_never_shows_them(
    client: AsyncTestClient, tenant: Tenant, settings: Settings, owner: asyncpg.Connection, db: Any
) -> None:
    app_secret, verify_token = a_secret("app"), a_secret("verify")
    body = {"app_id": "1234567890", "app_secret": app_secret, "verify_token": verify_token, "settings": {"a": 1}}
    response = await client.put("/api/integrations/whatsapp", json=body, headers=tenant.headers)
    assert response.status_code == 200, response.text
    shown = response.json()
    assert shown["app_id"] == "1234567890"
    assert shown["enabled"] is True
    assert shown["settings"] == {"a": 1}
    assert shown["app_secret_set"]
    assert shown["app_secret_hint"] == app_secret[-4:]
    assert shown["verify_token_set"]
    assert shown["verify_token_hint"] == verify_token[-4:]
    for answer in (
        response,
        await client.get("/api/integrations/whatsapp", headers=tenant.headers),
        await client.get("/api/integrations", headers=tenant.headers),
        await client.get("/api/activity-logs", headers=tenant.headers),
    ):
        assert answer.status_code == 200
        assert app_secret not in answer.text
        assert verify_token not in answer.text

    stored = await owner.fetchrow("SELECT * FROM channel_integrations WHERE tenant_id = $1", UUID(tenant.id))
    assert app_secret not in stored["app_secret_encrypted"]
    assert verify_token not in stored["verify_token_encrypted"]
    assert settings.secrets.open(stored["app_secret_encrypted"]) == app_secret
    assert stored["verify_token_digest"] == digest(verify_token)
    # Meta's verification GET names the token: the webhooks find it by digest.
    assert await integrations.verify_token_known(db, settings, ["whatsapp"], verify_token)
    assert not await integrations.verify_token_known(db, settings, ["messenger"], verify_token)

    # Leaving the secrets out keeps them; null clears one.
    kept = await client.put("/api/integrations/whatsapp", json={"enabled": False}, headers=tenant.headers)
    assert kept.json()["app_secret_set"]
    assert kept.json()["verify_token_set"]
    assert kept.json()["enabled"] is False
    assert kept.json()["app_id"] == "1234567890"
    cleared = await client.put("/api/integrations/whatsapp", json={"verify_token": None}, headers=tenant.headers)
    assert cleared.json()["verify_token_set"] is False
    assert cleared.json()["verify_token_hint"] is None
    assert cleared.json()["app_secret_set"] is True
    assert not await integrations.verify_token_known(db, settings, ["whatsapp"], verify_token)

    listed = (await client.get("/api/integrations", headers=tenant.headers)).json()["integrations"]
    assert [i["channel"] for i in listed] == ["whatsapp"]
    actions = [entry["action"] for entry in await activity(client, tenant, "integration")]
    assert "integration.created" in actions
    assert "integration.updated" in actions


async def test_an_integration_by_channel_and_its_deletion(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    problem(await client.get("/api/integrations/email", headers=tenant.headers), 404)
    problem(await client.get("/api/integrations/sms", headers=tenant.headers), 400)
    problem(await client.put("/api/integrations/sms", json={}, headers=tenant.headers), 400)
    made = await client.put("/api/integrations/email", json={"settings": {"inbound": True}}, headers=tenant.headers)
    assert made.status_code == 200
    assert made.json()["app_secret_set"] is False
    # Another organisation has none.
    problem(await client.get("/api/integrations/email", headers=other_tenant.headers), 404)
    problem(await client.delete("/api/integrations/email", headers=other_tenant.headers), 404)
    assert (await client.get("/api/integrations/email", headers=tenant.headers)).status_code == 200
    deleted = await client.delete("/api/integrations/email", headers=tenant.headers)
    assert deleted.status_code == 200
    assert deleted.json() == {"message": "integration deleted", "id": "email"}
    problem(await client.get("/api/integrations/email", headers=tenant.headers), 404)
    problem(await client.delete("/api/integrations/email", headers=tenant.headers), 404)


@pytest.mark.parametrize(
    "body",
    [
        {"app_secret": ""},
        {"app_id": "not digits"},
        {"enabled": "yes"},
        {"settings": {"nested": {"a": 1}}},
        {"settings": {"bad key!": 1}},
        {"surprise": 1},
    ],
)
async def test_a_malformed_integration_is_400_and_stores_nothing(
    client: AsyncTestClient, tenant: Tenant, body: dict[str, Any]
) -> None:
    problem(await client.put("/api/integrations/messenger", json=body, headers=tenant.headers), 400)
    problem(await client.get("/api/integrations/messenger", headers=tenant.headers), 404)


async def test_only_admins_manage_integrations(client: AsyncTestClient, tenant: Tenant) -> None:
    mine = await new_account(client, tenant)
    for role in ("agent", "supervisor"):
        someone = await create_agent(client, tenant, role)
        headers = someone["headers"]
        for method, path in [
            ("GET", "/api/integrations"),
            ("PUT", "/api/integrations/whatsapp"),
            ("GET", "/api/integration-accounts"),
            ("GET", f"/api/integration-accounts/{mine['id']}"),
            ("DELETE", f"/api/integration-accounts/{mine['id']}"),
            ("GET", "/api/integrations/whatsapp/embedded-signup/config"),
            ("POST", "/api/integrations/messenger/oauth/connect"),
        ]:
            json = {} if method in ("PUT", "POST") else None
            response = await client.request(method, path, json=json, headers=headers)
            problem(response, 403)
    assert (await account(client, tenant, mine["id"]))["id"] == mine["id"]
    problem(await client.get("/api/integrations/whatsapp", headers=tenant.headers), 404)


# ---------------------------------------------------------------- accounts


async def test_an_account_token_is_sealed_and_never_shown(
    client: AsyncTestClient, tenant: Tenant, settings: Settings, owner: asyncpg.Connection
) -> None:
    token = a_secret("EAA")
    made = await new_account(client, tenant, access_token=token, business_account_id=WABA_ID, name="Support line")
    assert made["access_token_set"]
    assert made["access_token_hint"] == token[-4:]
    assert made["webhook_secret"] is None
    assert made["webhook_secret_set"] is False
    assert made["is_default"]
    assert made["status"] == "active"
    assert made["business_account_id"] == WABA_ID
    for answer in (
        await client.get(f"/api/integration-accounts/{made['id']}", headers=tenant.headers),
        await client.get("/api/integration-accounts", headers=tenant.headers),
        await client.get("/api/activity-logs", headers=tenant.headers),
    ):
        assert answer.status_code == 200
        assert token not in answer.text
    stored = await owner.fetchval(
        "SELECT access_token_encrypted FROM integration_accounts WHERE id = $1", UUID(made["id"])
    )
    assert token not in stored
    assert settings.secrets.open(stored) == token

    changed = await client.patch(
        f"/api/integration-accounts/{made['id']}", json={"name": "Sales line"}, headers=tenant.headers
    )
    assert changed.json()["name"] == "Sales line"
    assert changed.json()["access_token_set"]
    cleared = await client.patch(
        f"/api/integration-accounts/{made['id']}", json={"access_token": None}, headers=tenant.headers
    )
    assert cleared.json()["access_token_set"] is False
    assert (
        await owner.fetchval("SELECT access_token_encrypted FROM integration_accounts WHERE id = $1", UUID(made["id"]))
        is None
    )
    assert "integration_account.updated" in [e["action"] for e in await activity(client, tenant, "integration_account")]


async def test_an_email_account_shows_its_webhook_secret_once(
    client: AsyncTestClient, tenant: Tenant, settings: Settings, db: Any, owner: asyncpg.Connection
) -> None:
    password = a_secret("smtp")
    mailbox = f"Support-{uuid4().hex[:6]}@Example.com"
    made = await new_account(
        client,
        tenant,
        channel="email",
        external_id=mailbox,
        access_token=None,
        smtp={"host": "smtp.example.com", "port": 587, "username": "support", "password": password},
    )
    secret = made["webhook_secret"]
    assert secret
    assert made["webhook_secret_set"]
    assert made["external_id"] == mailbox.lower()
    assert made["smtp"] == {
        "host": "smtp.example.com",
        "port": 587,
        "username": "support",
        "password_set": True,
        "from_address": mailbox.lower(),
        "starttls": True,
    }
    again = await client.get(f"/api/integration-accounts/{made['id']}", headers=tenant.headers)
    assert 'webhook_secret"' not in again.text.replace("webhook_secret_set", "")
    assert secret not in again.text
    assert password not in again.text
    assert password not in str(made)
    stored = await owner.fetchrow(
        "SELECT secret_encrypted, settings FROM integration_accounts WHERE id = $1", UUID(made["id"])
    )
    assert secret not in stored["secret_encrypted"]
    assert password not in str(stored["settings"])
    # The inbound email webhook verifies with the secret the client was shown.
    [route] = await integrations.route_accounts(db, settings, "email", [mailbox.lower()])
    assert route.account_secret == secret
    assert str(route.tenant_id) == tenant.id

    # An edit that keeps the username keeps the stored password.
    kept = await client.patch(
        f"/api/integration-accounts/{made['id']}",
        json={"smtp": {"host": "mail.example.com", "port": 465, "starttls": False, "username": "support"}},
        headers=tenant.headers,
    )
    assert kept.status_code == 200, kept.text
    assert kept.json()["smtp"]["password_set"]
    assert kept.json()["smtp"]["port"] == 465


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"channel": "email", "external_id": "not-an-address"}, "external_id"),
        ({"channel": "whatsapp", "external_id": "+1 555 0100"}, "external_id"),
        ({"channel": "messenger", "external_id": "12345", "business_account_id": "1"}, "business_account_id"),
        ({"channel": "whatsapp", "external_id": "12345", "smtp": {"host": "smtp.example.com"}}, "smtp"),
        ({"channel": "email", "external_id": "a@example.com", "access_token": "EAAxx"}, "access_token"),
        (
            {"channel": "email", "external_id": "a@example.com", "smtp": {"host": "h.example", "username": "u"}},
            "smtp.password",
        ),
        (
            {"channel": "email", "external_id": "a@example.com", "smtp": {"host": "h.example", "port": 465}},
            "smtp.starttls",
        ),
    ],
)
async def test_an_account_against_the_rules_is_422(
    client: AsyncTestClient, tenant: Tenant, body: dict[str, Any], field: str
) -> None:
    body = problem(await client.post("/api/integration-accounts", json=body, headers=tenant.headers), 422)
    assert body["errors"][0]["field"] == field
    assert await accounts(client, tenant) == []


@pytest.mark.parametrize(
    "body",
    [
        {"channel": "sms", "external_id": "1"},
        {"channel": "whatsapp"},
        {"channel": "whatsapp", "external_id": "   "},
        {"channel": "whatsapp", "external_id": "1", "access_token": ""},
        {"channel": "email", "external_id": "a@example.com", "smtp": {"host": "smtp.example.com", "port": 0}},
        {"channel": "email", "external_id": "a@example.com", "smtp": {"host": "bad host"}},
        {"channel": "whatsapp", "external_id": "1", "extra": True},
    ],
)
async def test_a_malformed_account_is_400(client: AsyncTestClient, tenant: Tenant, body: dict[str, Any]) -> None:
    problem(await client.post("/api/integration-accounts", json=body, headers=tenant.headers), 400)
    assert await accounts(client, tenant) == []


async def test_a_provider_account_is_connected_to_one_organisation(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    external_id = phone_id()
    theirs = await new_account(client, other_tenant, external_id=external_id)
    body = {"channel": "whatsapp", "external_id": external_id}
    refused = problem(await client.post("/api/integration-accounts", json=body, headers=tenant.headers), 409)
    assert "another organisation" in refused["detail"]
    assert other_tenant.id not in str(refused)
    assert theirs["id"] not in str(refused)
    assert await accounts(client, tenant) == []
    # The same id on another channel is another account.
    await new_account(client, tenant, channel="messenger", external_id=external_id)
    mine = problem(
        await client.post(
            "/api/integration-accounts",
            json={"channel": "messenger", "external_id": external_id},
            headers=tenant.headers,
        ),
        409,
    )
    assert "in this organisation" in mine["detail"]


async def test_the_first_account_is_the_default_and_the_default_moves(
    client: AsyncTestClient, tenant: Tenant, settings: Settings, db: Any
) -> None:
    first = await new_account(client, tenant)
    second = await new_account(client, tenant)
    third = await new_account(client, tenant)
    email = await new_account(client, tenant, channel="email", external_id="help@example.com", access_token=None)
    assert first["is_default"]
    assert not second["is_default"]
    assert not third["is_default"]
    assert email["is_default"], "each channel has its own default"

    moved = await client.post(f"/api/integration-accounts/{third['id']}/default", headers=tenant.headers)
    assert moved.status_code == 200
    assert moved.json()["is_default"]
    defaults = [a["id"] for a in await accounts(client, tenant, channel="whatsapp") if a["is_default"]]
    assert defaults == [third["id"]]
    async with db.read(UUID(tenant.id)) as conn:
        sending = await integrations.sending_account(conn, settings, UUID(tenant.id), "whatsapp", None)
    assert sending is not None
    assert str(sending.id) == third["id"]

    # Deleting the default promotes the oldest remaining account.
    deleted = await client.delete(f"/api/integration-accounts/{third['id']}", headers=tenant.headers)
    assert deleted.json() == {"message": "integration account deleted", "id": third["id"]}
    problem(await client.get(f"/api/integration-accounts/{third['id']}", headers=tenant.headers), 404)
    assert [a["id"] for a in await accounts(client, tenant, channel="whatsapp") if a["is_default"]] == [first["id"]]
    # Deleting one that is not the default leaves the default alone.
    await client.delete(f"/api/integration-accounts/{second['id']}", headers=tenant.headers)
    assert (await account(client, tenant, first["id"]))["is_default"]

    # A disconnected account cannot be made the default.
    other = await new_account(client, tenant)
    await client.patch(
        f"/api/integration-accounts/{other['id']}", json={"status": "disconnected"}, headers=tenant.headers
    )
    problem(await client.post(f"/api/integration-accounts/{other['id']}/default", headers=tenant.headers), 422)
    assert (await account(client, tenant, first["id"]))["is_default"]
    actions = [e["action"] for e in await activity(client, tenant, "integration_account")]
    assert "integration_account.default_set" in actions
    assert "integration_account.deleted" in actions


async def test_accounts_list_by_channel_and_page(client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant) -> None:
    made = [await new_account(client, tenant) for _ in range(3)]
    await new_account(client, tenant, channel="messenger", external_id=phone_id())
    await new_account(client, other_tenant)
    assert len(await accounts(client, tenant)) == 4
    whatsapp = await accounts(client, tenant, channel="whatsapp")
    assert [a["id"] for a in whatsapp] == [a["id"] for a in reversed(made)]
    page = await client.get(
        "/api/integration-accounts", params={"channel": "whatsapp", "per_page": 2}, headers=tenant.headers
    )
    body = page.json()
    assert body["total"] == 3
    assert len(body["integration_accounts"]) == 2
    assert body["next_cursor"]
    rest = await client.get(
        "/api/integration-accounts",
        params={"channel": "whatsapp", "per_page": 2, "cursor": body["next_cursor"]},
        headers=tenant.headers,
    )
    assert [a["id"] for a in rest.json()["integration_accounts"]] == [made[0]["id"]]
    assert rest.json()["next_cursor"] is None
    problem(await client.get("/api/integration-accounts", params={"channel": "sms"}, headers=tenant.headers), 400)
    assert await accounts(client, tenant, status="disconnected") == []


async def test_another_organisations_account_is_not_found_on_every_route(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await new_account(client, other_tenant)
    base = f"/api/integration-accounts/{theirs['id']}"
    for method, path, json in [
        ("GET", base, None),
        ("PATCH", base, {"name": "mine now"}),
        ("DELETE", base, None),
        ("POST", f"{base}/default", None),
        ("GET", f"{base}/whatsapp-health", None),
    ]:
        problem(await client.request(method, path, json=json, headers=tenant.headers), 404)
    after = await account(client, other_tenant, theirs["id"])
    assert after["name"] == theirs["name"]
    assert after["is_default"]


async def test_whatsapp_health_asks_meta_with_the_accounts_token(
    client: AsyncTestClient, tenant: Tenant, graph: GraphStandIn
) -> None:
    token = a_secret("EAA")
    made = await new_account(client, tenant, external_id=PHONE_NUMBER_ID, access_token=token)
    response = await client.get(f"/api/integration-accounts/{made['id']}/whatsapp-health", headers=tenant.headers)
    assert response.status_code == 200, response.text
    health = response.json()
    assert health["quality_rating"] == "GREEN"
    assert health["messaging_limit_tier"] == "TIER_1K"
    assert health["throughput_level"] == "STANDARD"
    assert health["phone_number_id"] == PHONE_NUMBER_ID
    [asked] = graph.requests(path_contains=f"/{PHONE_NUMBER_ID}", method="GET")
    assert asked["authorization"] == f"Bearer {token}"
    assert "quality_rating" in asked["query"]["fields"]
    assert "messaging_limit_tier" in asked["query"]["fields"]
    assert token not in response.text

    graph.fail("expired_token", path_contains=f"/{PHONE_NUMBER_ID}")
    failed = problem(
        await client.get(f"/api/integration-accounts/{made['id']}/whatsapp-health", headers=tenant.headers), 502
    )
    assert "Session has expired" in failed["detail"]
    assert failed["provider_error_code"] == 190

    email = await new_account(client, tenant, channel="email", external_id="x@example.com", access_token=None)
    problem(await client.get(f"/api/integration-accounts/{email['id']}/whatsapp-health", headers=tenant.headers), 422)
    tokenless = await new_account(client, tenant, access_token=None)
    problem(
        await client.get(f"/api/integration-accounts/{tokenless['id']}/whatsapp-health", headers=tenant.headers), 422
    )


# ---------------------------------------------------------------- WhatsApp Embedded Signup


async def test_embedded_signup_needs_the_platform_app(
    client: AsyncTestClient, tenant: Tenant, graph: GraphStandIn
) -> None:
    config = (await client.get("/api/integrations/whatsapp/embedded-signup/config", headers=tenant.headers)).json()
    assert config["configured"] is False
    assert config["app_id"] is None
    assert "OMNISTREAM_META_EMBEDDED_SIGNUP_CONFIG_ID" in config["missing"]
    body = {"code": "good-abc", "waba_id": WABA_ID, "phone_number_id": PHONE_NUMBER_ID}
    problem(await client.post("/api/integrations/whatsapp/embedded-signup", json=body, headers=tenant.headers), 422)
    assert graph.requests() == []


async def test_embedded_signup_connects_the_number(
    api: AsyncTestClient, tenant: Tenant, graph: GraphStandIn, meta_settings: Settings, owner: asyncpg.Connection
) -> None:
    config = (await api.get("/api/integrations/whatsapp/embedded-signup/config", headers=tenant.headers)).json()
    assert config == {
        "configured": True,
        "app_id": APP_ID,
        "config_id": CONFIG_ID,
        "graph_api_version": meta_settings.graph_api_version,
        "missing": [],
    }
    body = {"code": "good-signup1234567", "waba_id": WABA_ID, "phone_number_id": PHONE_NUMBER_ID, "pin": "123456"}
    response = await api.post("/api/integrations/whatsapp/embedded-signup", json=body, headers=tenant.headers)
    assert response.status_code == 200, response.text
    made = response.json()
    token = "EAAsignup1234567"
    assert made["external_id"] == PHONE_NUMBER_ID
    assert made["business_account_id"] == WABA_ID
    assert made["display_name"] == "+1 555-010-0000"
    assert made["name"] == "Stand-in Shop"
    assert made["is_default"]
    assert made["access_token_set"]
    assert token not in response.text

    [exchange] = graph.requests(path_contains="/oauth/access_token")
    assert exchange["query"] == {"client_id": APP_ID, "client_secret": APP_SECRET, "code": "good-signup1234567"}
    [register] = graph.requests(path_contains="/register")
    assert register["authorization"] == f"Bearer {token}"
    assert register["body"] == {"messaging_product": "whatsapp", "pin": "123456"}
    [subscribe] = graph.requests(path_contains=f"/{WABA_ID}/subscribed_apps")
    assert subscribe["method"] == "POST"
    assert subscribe["authorization"] == f"Bearer {token}"
    stored = await owner.fetchrow(
        "SELECT access_token_encrypted, secret_encrypted FROM integration_accounts WHERE id = $1", UUID(made["id"])
    )
    assert meta_settings.secrets.open(stored["access_token_encrypted"]) == token
    assert meta_settings.secrets.open(stored["secret_encrypted"]) == "123456"

    # Signing up the same number again refreshes its token, it does not add an account.
    body["code"] = "good-second7654321"
    again = await api.post("/api/integrations/whatsapp/embedded-signup", json=body, headers=tenant.headers)
    assert again.json()["id"] == made["id"]
    assert len(await accounts(api, tenant)) == 1
    stored = await owner.fetchval(
        "SELECT access_token_encrypted FROM integration_accounts WHERE id = $1", UUID(made["id"])
    )
    assert meta_settings.secrets.open(stored) == "EAAsecond7654321"


@pytest.mark.parametrize("failing", ["/oauth/access_token", "/register", "/subscribed_apps"])
async def test_embedded_signup_stores_nothing_when_meta_refuses(
    api: AsyncTestClient, tenant: Tenant, graph: GraphStandIn, failing: str
) -> None:
    graph.fail("invalid_parameter", path_contains=failing)
    body = {"code": "good-abc", "waba_id": WABA_ID, "phone_number_id": PHONE_NUMBER_ID}
    refused = problem(
        await api.post("/api/integrations/whatsapp/embedded-signup", json=body, headers=tenant.headers), 502
    )
    assert "Invalid parameter" in refused["detail"]
    assert await accounts(api, tenant) == []


async def test_embedded_signup_refuses_bad_input_and_a_number_taken_elsewhere(
    api: AsyncTestClient, tenant: Tenant, other_tenant: Tenant, graph: GraphStandIn
) -> None:
    for body in [
        {"code": "good-abc", "waba_id": WABA_ID},
        {"code": "good-abc", "waba_id": WABA_ID, "phone_number_id": PHONE_NUMBER_ID, "pin": "12"},
        {"code": "", "waba_id": WABA_ID, "phone_number_id": PHONE_NUMBER_ID},
        {"code": "good-abc", "waba_id": "waba", "phone_number_id": PHONE_NUMBER_ID},
    ]:
        problem(await api.post("/api/integrations/whatsapp/embedded-signup", json=body, headers=tenant.headers), 400)
    # A code Meta does not accept.
    body = {"code": "stale", "waba_id": WABA_ID, "phone_number_id": PHONE_NUMBER_ID}
    refused = problem(
        await api.post("/api/integrations/whatsapp/embedded-signup", json=body, headers=tenant.headers), 502
    )
    assert "verification code" in refused["detail"]
    await new_account(api, other_tenant, external_id=PHONE_NUMBER_ID)
    graph.reset()
    body["code"] = "good-abc"
    problem(await api.post("/api/integrations/whatsapp/embedded-signup", json=body, headers=tenant.headers), 409)
    assert graph.requests(path_contains="/register") == []
    assert await accounts(api, tenant) == []


# ---------------------------------------------------------------- Instagram and Messenger OAuth


async def test_oauth_config_uses_the_organisations_app_when_it_has_one(
    client: AsyncTestClient, api: AsyncTestClient, tenant: Tenant
) -> None:
    bare = (await client.get("/api/integrations/messenger/oauth/config", headers=tenant.headers)).json()
    assert bare["configured"] is False
    assert bare["missing"] == ["app_id", "app_secret"]
    platform = (await api.get("/api/integrations/instagram/oauth/config", headers=tenant.headers)).json()
    assert platform["configured"]
    assert platform["app_id"] == APP_ID
    assert "instagram_manage_messages" in platform["scopes"]
    own = {"app_id": "555000111", "app_secret": a_secret(), "settings": {"redirect_uri": "https://app.example.com/cb"}}
    # A channel whose name is also a static path segment (/messenger/pages/...) is still found.
    assert (await api.put("/api/integrations/messenger", json=own, headers=tenant.headers)).status_code == 200
    mine = (await api.get("/api/integrations/messenger/oauth/config", headers=tenant.headers)).json()
    assert mine["app_id"] == "555000111"
    assert mine["redirect_uri"] == "https://app.example.com/cb"
    assert "pages_messaging" in mine["scopes"]
    assert mine["authorize_url"].startswith("https://www.facebook.com/")
    assert own["app_secret"] not in str(mine)


async def test_messenger_login_connects_each_page_with_its_token(
    api: AsyncTestClient, tenant: Tenant, graph: GraphStandIn, meta_settings: Settings, owner: asyncpg.Connection
) -> None:
    body = {"code": "good-login", "redirect_uri": "https://app.example.com/callback"}
    response = await api.post("/api/integrations/messenger/oauth/connect", json=body, headers=tenant.headers)
    assert response.status_code == 200, response.text
    [page] = response.json()["connected"]
    assert page["page_id"] == PAGE_ID
    assert page["skipped_reason"] is None
    made = page["account"]
    assert made["channel"] == "messenger"
    assert made["external_id"] == PAGE_ID
    assert made["display_name"] == "Stand-in Page"
    assert made["access_token_set"]
    assert f"EAApage{PAGE_ID}" not in response.text

    short, long = graph.requests(path_contains="/oauth/access_token")
    assert short["query"]["code"] == "good-login"
    assert unquote(short["query"]["redirect_uri"]) == body["redirect_uri"]
    assert long["query"]["grant_type"] == "fb_exchange_token"
    assert long["query"]["fb_exchange_token"] == "EAAlogin"
    [pages] = graph.requests(path_contains="/me/accounts")
    assert pages["authorization"] == "Bearer EAAlonglogin"
    [subscribe] = graph.requests(path_contains=f"/{PAGE_ID}/subscribed_apps")
    assert subscribe["authorization"] == f"Bearer EAApage{PAGE_ID}"
    assert "messages" in unquote(subscribe["query"]["subscribed_fields"])
    stored = await owner.fetchval(
        "SELECT access_token_encrypted FROM integration_accounts WHERE id = $1", UUID(made["id"])
    )
    assert meta_settings.secrets.open(stored) == f"EAApage{PAGE_ID}"
    assert "integration_account.connected" in [e["action"] for e in await activity(api, tenant, "integration_account")]


async def test_instagram_login_connects_the_pages_instagram_account(
    api: AsyncTestClient, tenant: Tenant, graph: GraphStandIn
) -> None:
    response = await api.post(
        "/api/integrations/instagram/oauth/connect", json={"code": "good-ig"}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    [page] = response.json()["connected"]
    assert page["account"]["channel"] == "instagram"
    assert page["account"]["external_id"] == INSTAGRAM_ID
    assert page["account"]["display_name"] == "standin.shop"
    [pages] = graph.requests(path_contains="/me/accounts")
    assert "instagram_business_account" in pages["query"]["fields"]


async def test_a_login_stores_nothing_when_meta_refuses(
    api: AsyncTestClient, tenant: Tenant, graph: GraphStandIn
) -> None:
    refused = problem(
        await api.post("/api/integrations/messenger/oauth/connect", json={"code": "expired"}, headers=tenant.headers),
        502,
    )
    assert "verification code" in refused["detail"]
    graph.fail("server_error", path_contains="/subscribed_apps")
    problem(
        await api.post("/api/integrations/messenger/oauth/connect", json={"code": "good-x"}, headers=tenant.headers),
        502,
    )
    graph.fail("expired_token", path_contains="/me/accounts")
    problem(
        await api.post("/api/integrations/instagram/oauth/connect", json={"code": "good-x"}, headers=tenant.headers),
        502,
    )
    assert await accounts(api, tenant) == []
    for body in [{}, {"code": ""}, {"code": "good-x", "redirect_uri": "not a url"}]:
        problem(await api.post("/api/integrations/messenger/oauth/connect", json=body, headers=tenant.headers), 400)


async def test_a_login_without_a_meta_app_is_422(client: AsyncTestClient, tenant: Tenant, graph: GraphStandIn) -> None:
    problem(
        await client.post("/api/integrations/messenger/oauth/connect", json={"code": "good-x"}, headers=tenant.headers),
        422,
    )
    assert graph.requests() == []


async def test_a_page_connected_elsewhere_is_not_taken(
    api: AsyncTestClient, tenant: Tenant, other_tenant: Tenant, graph: GraphStandIn
) -> None:
    await api.post(
        "/api/integrations/messenger/oauth/connect", json={"code": "good-first"}, headers=other_tenant.headers
    )
    graph.reset()
    refused = problem(
        await api.post(
            "/api/integrations/messenger/oauth/connect", json={"code": "good-second"}, headers=tenant.headers
        ),
        409,
    )
    assert other_tenant.id not in str(refused)
    assert graph.requests(path_contains="/subscribed_apps") == []
    assert await accounts(api, tenant) == []


# ---------------------------------------------------------------- Messenger pages


async def connect_page(api: AsyncTestClient, tenant: Tenant) -> dict[str, Any]:
    response = await api.post(
        "/api/integrations/messenger/oauth/connect", json={"code": "good-page"}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    return response.json()["connected"][0]["account"]


async def test_a_page_is_disconnected_and_subscribed_again(
    api: AsyncTestClient, tenant: Tenant, other_tenant: Tenant, graph: GraphStandIn, meta_settings: Settings, db: Any
) -> None:
    made = await connect_page(api, tenant)
    problem(
        await api.post(f"/api/integrations/messenger/pages/{PAGE_ID}/disconnect", headers=other_tenant.headers), 404
    )
    graph.reset()
    response = await api.post(f"/api/integrations/messenger/pages/{PAGE_ID}/disconnect", headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "disconnected"
    assert response.json()["id"] == made["id"]
    [unsubscribe] = graph.requests(path_contains="/subscribed_apps")
    assert unsubscribe["method"] == "DELETE"
    assert unsubscribe["authorization"] == f"Bearer EAApage{PAGE_ID}"
    [route] = await integrations.route_accounts(db, meta_settings, "messenger", [PAGE_ID])
    assert route.active is False, "webhooks of a disconnected page are not taken in"

    subscribed = await api.post(
        "/api/integrations/messenger/pages/subscribe", json={"page_ids": [PAGE_ID]}, headers=tenant.headers
    )
    assert subscribed.status_code == 200, subscribed.text
    assert subscribed.json() == {"pages": [{"page_id": PAGE_ID, "account_id": made["id"], "subscribed": True}]}
    assert (await account(api, tenant, made["id"]))["status"] == "active"
    posted = graph.requests(path_contains="/subscribed_apps", method="POST")
    assert posted[-1]["authorization"] == f"Bearer EAApage{PAGE_ID}"


async def test_page_routes_refuse_pages_not_connected_here(
    api: AsyncTestClient, tenant: Tenant, other_tenant: Tenant, graph: GraphStandIn
) -> None:
    await connect_page(api, other_tenant)
    graph.reset()
    problem(
        await api.post(
            "/api/integrations/messenger/pages/subscribe", json={"page_ids": [PAGE_ID]}, headers=tenant.headers
        ),
        404,
    )
    problem(await api.get(f"/api/integrations/messenger/pages/{PAGE_ID}/persistent-menu", headers=tenant.headers), 404)
    problem(
        await api.post(
            f"/api/integrations/messenger/pages/{PAGE_ID}/persistent-menu",
            json={"delete": True},
            headers=tenant.headers,
        ),
        404,
    )
    assert graph.requests() == []
    for body in [{"page_ids": []}, {"page_ids": ["abc"]}, {}]:
        problem(await api.post("/api/integrations/messenger/pages/subscribe", json=body, headers=tenant.headers), 400)
    problem(await api.post("/api/integrations/messenger/pages/not-a-page/disconnect", headers=tenant.headers), 400)


async def test_a_failed_unsubscribe_leaves_the_page_connected(
    api: AsyncTestClient, tenant: Tenant, graph: GraphStandIn
) -> None:
    made = await connect_page(api, tenant)
    graph.fail("expired_token", path_contains="/subscribed_apps")
    problem(await api.post(f"/api/integrations/messenger/pages/{PAGE_ID}/disconnect", headers=tenant.headers), 502)
    assert (await account(api, tenant, made["id"]))["status"] == "active"


MENU = [
    {
        "locale": "default",
        "composer_input_disabled": False,
        "call_to_actions": [
            {"type": "postback", "title": "Talk to an agent", "payload": "CARE_HELP"},
            {
                "type": "web_url",
                "title": "Shop now",
                "url": "https://shop.example.com/",
                "webview_height_ratio": "full",
            },
        ],
    }
]


async def test_the_persistent_menu_is_set_read_and_deleted(
    api: AsyncTestClient, tenant: Tenant, graph: GraphStandIn
) -> None:
    await connect_page(api, tenant)
    path = f"/api/integrations/messenger/pages/{PAGE_ID}/persistent-menu"
    assert (await api.get(path, headers=tenant.headers)).json() == {"page_id": PAGE_ID, "persistent_menu": []}
    response = await api.post(path, json={"persistent_menu": MENU}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    [posted] = graph.requests(path_contains="/me/messenger_profile", method="POST")
    assert posted["body"] == {"persistent_menu": MENU}
    assert posted["authorization"] == f"Bearer EAApage{PAGE_ID}"
    assert (await api.get(path, headers=tenant.headers)).json()["persistent_menu"] == MENU

    deleted = await api.post(path, json={"delete": True}, headers=tenant.headers)
    assert deleted.status_code == 200
    assert deleted.json()["persistent_menu"] == []
    [removed] = graph.requests(path_contains="/me/messenger_profile", method="DELETE")
    assert removed["body"] == {"fields": ["persistent_menu"]}
    assert (await api.get(path, headers=tenant.headers)).json()["persistent_menu"] == []
    # An empty menu removes it as well.
    assert (await api.post(path, json={"persistent_menu": []}, headers=tenant.headers)).status_code == 200
    assert len(graph.requests(path_contains="/me/messenger_profile", method="DELETE")) == 2
    actions = [e["action"] for e in await activity(api, tenant, "integration_account")]
    assert "integration_account.menu_set" in actions
    assert "integration_account.menu_deleted" in actions


def button(**overrides: Any) -> dict[str, Any]:
    return {"type": "postback", "title": "Help", "payload": "HELP"} | overrides


@pytest.mark.parametrize(
    ("menu", "status"),
    [
        ([{"locale": "en_US", "call_to_actions": [button()]}], 422),
        ([{"locale": "default", "call_to_actions": [button()]}] * 2, 422),
        ([{"locale": "default", "call_to_actions": [button(title="x" * 31)]}], 400),
        ([{"locale": "default", "call_to_actions": [button()] * 21}], 400),
        ([{"locale": "default", "call_to_actions": [button(type="nested")]}], 400),
        ([{"locale": "default", "call_to_actions": [{"type": "web_url", "title": "Go", "url": "ftp://x"}]}], 400),
        ([{"locale": "default", "call_to_actions": []}], 400),
        ([{"locale": "english", "call_to_actions": [button()]}], 400),
    ],
)
async def test_a_menu_meta_would_refuse_is_refused_here(
    api: AsyncTestClient, tenant: Tenant, graph: GraphStandIn, menu: list[dict[str, Any]], status: int
) -> None:
    await connect_page(api, tenant)
    path = f"/api/integrations/messenger/pages/{PAGE_ID}/persistent-menu"
    problem(await api.post(path, json={"persistent_menu": menu}, headers=tenant.headers), status)
    assert graph.requests(path_contains="/me/messenger_profile") == []


async def test_a_menu_meta_refuses_is_502(api: AsyncTestClient, tenant: Tenant, graph: GraphStandIn) -> None:
    await connect_page(api, tenant)
    graph.fail("invalid_parameter", path_contains="/me/messenger_profile")
    path = f"/api/integrations/messenger/pages/{PAGE_ID}/persistent-menu"
    problem(await api.post(path, json={"persistent_menu": MENU}, headers=tenant.headers), 502)


async def test_routing_falls_back_to_a_parameter_beside_a_dead_end_static_segment() -> None:
    """kit.routing.repair_static_dead_ends: Litestar 2 alone answers 404 for /things/special."""
    from litestar import Litestar, get
    from litestar.params import FromPath

    from omnistream.kit.routing import repair_static_dead_ends

    @get("/things/{name:str}", sync_to_thread=False)
    def by_name(name: FromPath[str]) -> str:
        return f"name {name}"

    @get("/things/special/parts/{part:str}", sync_to_thread=False)
    def part(part: FromPath[str]) -> str:
        return f"part {part}"

    repair_static_dead_ends()
    async with AsyncTestClient(app=Litestar([by_name, part])) as bare:
        assert (await bare.get("/things/special")).text == "name special"
        assert (await bare.get("/things/other")).text == "name other"
        assert (await bare.get("/things/special/parts/7")).text == "part 7"
        assert (await bare.get("/things/special/nothing")).status_code == 404
