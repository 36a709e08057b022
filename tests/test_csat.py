"""CSAT: agents send surveys, customers answer once by the link's token, supervisors read analytics."""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from omnistream.app import create_app
from omnistream.automation_events.processing import Claim
from omnistream.config import Settings
from omnistream.csat import service
from omnistream.csat.schemas import CsatSubmit
from omnistream.db import Database
from omnistream.errors import Gone
from omnistream.security.principal import Actor
from tests.automation_helpers import process_all
from tests.conftest import Tenant, create_agent, headers_of, ingest, problem
from tests.webhook_helpers import connect_account, phone_id

PUBLIC_URL = "https://support.example.com"
LINK = re.compile(re.escape(PUBLIC_URL) + r"/csat/([A-Za-z0-9_-]{43})$")


@pytest.fixture
def public_settings(settings: Settings) -> Settings:
    return msgspec.structs.replace(settings, public_url=PUBLIC_URL)


@pytest.fixture
async def app_client(public_settings: Settings) -> Any:
    async with AsyncTestClient(app=create_app(public_settings)) as test_client:
        yield test_client


def survey_path(conversation_id: Any) -> str:
    return f"/api/conversations/{conversation_id}/csat"


async def reachable_conversation(
    db: Database, database: str, settings: Settings, tenant: Tenant, **fields: Any
) -> UUID:
    """A conversation whose channel has a connected account to answer through."""
    channel = fields.get("channel", "whatsapp")
    await connect_account(database, settings, tenant.id, channel, phone_id())
    return (await ingest(db, tenant, "hello", **fields)).conversation_id


async def send_survey(client: AsyncTestClient, who: Tenant | dict[str, Any], conversation_id: Any) -> dict[str, Any]:
    response = await client.post(survey_path(conversation_id), headers=headers_of(who))
    assert response.status_code == 201, response.text
    return response.json()


async def fetch(database: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def survey_token(database: str, survey: dict[str, Any]) -> str:
    """The token as the customer has it: in the message that carried the link."""
    (row,) = await fetch(database, "SELECT text FROM messages WHERE id = $1", UUID(survey["message_id"]))
    match = LINK.search(row["text"])
    assert match, row["text"]
    return match.group(1)


async def answer(client: AsyncTestClient, token: str, **body: Any) -> Any:
    return await client.patch(f"/api/csat/{token}", json={"rating": 5} | body)


async def test_a_survey_goes_to_the_customer_and_is_answered_once(
    app_client: AsyncTestClient, db: Database, database: str, public_settings: Settings, tenant: Tenant
) -> None:
    conversation_id = await reachable_conversation(db, database, public_settings, tenant)
    problem(await app_client.get(survey_path(conversation_id), headers=tenant.headers), 404)
    survey = await send_survey(app_client, tenant, conversation_id)
    assert survey["status"] == "sent"
    assert survey["channel"] == "whatsapp"
    assert survey["created_by"] == tenant.admin_id
    sent_at = datetime.fromisoformat(survey["sent_at"])
    assert datetime.fromisoformat(survey["expires_at"]) - sent_at == timedelta(days=7)
    token = await survey_token(database, survey)

    # Only the token's SHA-256 is stored, and the survey's JSON does not carry the token.
    (stored,) = await fetch(database, "SELECT token_hash FROM csat_surveys WHERE id = $1", UUID(survey["id"]))
    assert bytes(stored["token_hash"]) == hashlib.sha256(token.encode()).digest()
    assert token not in str(survey)

    answered = await answer(app_client, token, rating=4, comment="Quick and kind")
    assert answered.status_code == 200, answered.text
    assert answered.json()["rating"] == 4
    latest = (await app_client.get(survey_path(conversation_id), headers=tenant.headers)).json()
    assert latest["status"] == "submitted"
    assert latest["rating"] == 4
    assert latest["comment"] == "Quick and kind"
    assert latest["submitted_at"] is not None

    again = problem(await answer(app_client, token, rating=1), 409)
    assert "answered already" in again["detail"]
    assert (await app_client.get(survey_path(conversation_id), headers=tenant.headers)).json()["rating"] == 4

    # The answer is an outbox event, written with it.
    (event,) = await fetch(
        database,
        "SELECT payload FROM automation_events WHERE event_type = 'csat_submitted' AND tenant_id = $1",
        UUID(tenant.id),
    )
    payload = msgspec.json.decode(event["payload"]) if isinstance(event["payload"], str) else event["payload"]
    assert payload["rating"] == 4
    assert payload["survey_id"] == survey["id"]
    assert payload["conversation_id"] == str(conversation_id)


async def test_one_open_survey_per_conversation_until_its_link_expires(
    app_client: AsyncTestClient, db: Database, database: str, public_settings: Settings, tenant: Tenant
) -> None:
    conversation_id = await reachable_conversation(db, database, public_settings, tenant)
    first = await send_survey(app_client, tenant, conversation_id)
    problem(await app_client.post(survey_path(conversation_id), headers=tenant.headers), 409)
    await fetch(
        database, "UPDATE csat_surveys SET expires_at = now() - interval '1 second' WHERE id = $1", UUID(first["id"])
    )
    expired = (await app_client.get(survey_path(conversation_id), headers=tenant.headers)).json()
    assert expired["status"] == "expired"
    gone = problem(await answer(app_client, await survey_token(database, first)), 410)
    assert "expired" in gone["detail"]

    second = await send_survey(app_client, tenant, conversation_id)
    assert second["id"] != first["id"]
    assert (await app_client.get(survey_path(conversation_id), headers=tenant.headers)).json()["id"] == second["id"]
    # An answered survey is closed too: another may be sent.
    assert (await answer(app_client, await survey_token(database, second))).status_code == 200
    await send_survey(app_client, tenant, conversation_id)


async def test_the_link_lasts_the_configured_days(
    db: Database, database: str, public_settings: Settings, tenant: Tenant, arq: Any
) -> None:
    conversation_id = await reachable_conversation(db, database, public_settings, tenant)
    three_days = msgspec.structs.replace(public_settings, csat_link_days=3)
    actor = await admin_actor(db, tenant)
    now = datetime.now(UTC)
    survey = await service.create_survey(db, arq, three_days, actor, conversation_id, now=now)
    assert survey.expires_at - survey.sent_at == timedelta(days=3)
    token = await survey_token(database, msgspec.to_builtins(survey))
    data = CsatSubmit(rating=3)
    with pytest.raises(Gone):
        await service.submit(db, token, data, now=now + timedelta(days=3))
    answered = await service.submit(db, token, data, now=now + timedelta(days=3) - timedelta(seconds=1))
    assert answered.rating == 3


async def admin_actor(db: Database, tenant: Tenant) -> Actor:
    from omnistream.auth import service as auth

    async with db.tenant(UUID(tenant.id)) as conn:
        actor = await auth.active_actor_in(conn, UUID(tenant.id), UUID(tenant.admin_id))
    assert actor is not None
    return actor


async def send_on_resolve(client: AsyncTestClient, tenant: Tenant, enabled: bool) -> None:
    response = await client.put("/api/csat/settings", json={"send_on_resolve": enabled}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"send_on_resolve": enabled}


async def test_only_an_admin_changes_the_csat_settings(app_client: AsyncTestClient, tenant: Tenant) -> None:
    supervisor = await create_agent(app_client, tenant, role="supervisor")
    agent = await create_agent(app_client, tenant)
    assert (await app_client.get("/api/csat/settings", headers=supervisor["headers"])).json() == {
        "send_on_resolve": False
    }
    problem(await app_client.get("/api/csat/settings", headers=agent["headers"]), 403)
    body = {"send_on_resolve": True}
    problem(await app_client.put("/api/csat/settings", json=body, headers=supervisor["headers"]), 403)
    for bad in ({}, {"send_on_resolve": "yes"}, {"send_on_resolve": True, "extra": 1}, []):
        problem(await app_client.put("/api/csat/settings", json=bad, headers=tenant.headers), 400)
    assert (await app_client.get("/api/csat/settings", headers=tenant.headers)).json() == {"send_on_resolve": False}
    await send_on_resolve(app_client, tenant, True)
    assert (await app_client.get("/api/csat/settings", headers=supervisor["headers"])).json() == body


async def test_a_conversation_without_a_way_to_the_customer_is_422(
    app_client: AsyncTestClient, db: Database, database: str, public_settings: Settings, tenant: Tenant
) -> None:
    conversation_id = (await ingest(db, tenant, "hello")).conversation_id
    refused = problem(await app_client.post(survey_path(conversation_id), headers=tenant.headers), 422)
    assert "no connected whatsapp account" in refused["detail"]
    problem(await app_client.get(survey_path(conversation_id), headers=tenant.headers), 404)
    # Nor through a disconnected account.
    await connect_account(database, public_settings, tenant.id, "whatsapp", phone_id(), status="disconnected")
    problem(await app_client.post(survey_path(conversation_id), headers=tenant.headers), 422)
    assert await fetch(database, "SELECT id FROM csat_surveys WHERE conversation_id = $1", conversation_id) == []


async def test_past_whatsapps_24_hours_no_survey_goes(
    app_client: AsyncTestClient, db: Database, database: str, public_settings: Settings, tenant: Tenant
) -> None:
    conversation_id = await reachable_conversation(db, database, public_settings, tenant)
    await fetch(
        database,
        "UPDATE conversations SET last_inbound_at = now() - interval '25 hours' WHERE id = $1",
        conversation_id,
    )
    problem(await app_client.post(survey_path(conversation_id), headers=tenant.headers), 422)
    problem(await app_client.get(survey_path(conversation_id), headers=tenant.headers), 404)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"rating": 0}, "rating"),
        ({"rating": 6}, "rating"),
        ({"rating": "5"}, "rating"),
        ({}, "rating"),
        ({"rating": 3, "comment": "x" * 2001}, "comment"),
        ({"rating": 3, "comment": "nul\u0000"}, "comment"),
        ({"rating": 3, "stars": 3}, "stars"),
    ],
)
async def test_a_malformed_answer_is_400_and_the_survey_stays_open(
    app_client: AsyncTestClient,
    db: Database,
    database: str,
    public_settings: Settings,
    tenant: Tenant,
    body: dict[str, Any],
    field: str,
) -> None:
    conversation_id = await reachable_conversation(db, database, public_settings, tenant)
    token = await survey_token(database, await send_survey(app_client, tenant, conversation_id))
    refused = problem(await app_client.patch(f"/api/csat/{token}", json=body), 400)
    assert field in str(refused)
    assert (await app_client.get(survey_path(conversation_id), headers=tenant.headers)).json()["status"] == "sent"
    # A comment at its longest is taken.
    assert (await answer(app_client, token, rating=3, comment="x" * 2000)).status_code == 200


async def test_unknown_and_malformed_tokens_are_404(app_client: AsyncTestClient) -> None:
    for token in (secrets.token_urlsafe(32), "short", "x" * 43 + "y", "a.b" * 15):
        problem(await answer(app_client, token), 404)


async def test_answers_are_rate_limited_per_client_address(
    public_settings: Settings, db: Database, database: str, tenant: Tenant
) -> None:
    limited = msgspec.structs.replace(
        public_settings, public_requests_per_minute=3, redis_prefix=f"{public_settings.redis_prefix}-csat"
    )
    async with AsyncTestClient(app=create_app(limited)) as client:
        for _ in range(3):
            problem(await answer(client, secrets.token_urlsafe(32)), 404)
        refused = await answer(client, secrets.token_urlsafe(32))
        assert "too many requests" in problem(refused, 429)["detail"]
        assert int(refused.headers["retry-after"]) > 0


async def test_roles_and_other_tenants(
    app_client: AsyncTestClient,
    db: Database,
    database: str,
    public_settings: Settings,
    tenant: Tenant,
    other_tenant: Tenant,
) -> None:
    conversation_id = await reachable_conversation(db, database, public_settings, tenant)
    role = await app_client.post(
        "/api/roles",
        json={"name": f"Reader {uuid4().hex[:6]}", "base_role": "agent", "permissions": ["conversations.read"]},
        headers=tenant.headers,
    )
    assert role.status_code == 201, role.text
    reader = await create_agent(app_client, tenant, role_id=role.json()["id"])
    problem(await app_client.post(survey_path(conversation_id), headers=reader["headers"]), 403)
    problem(await app_client.post(survey_path(conversation_id), headers=other_tenant.headers), 404)
    await send_survey(app_client, tenant, conversation_id)
    assert (await app_client.get(survey_path(conversation_id), headers=reader["headers"])).status_code == 200
    problem(await app_client.get(survey_path(conversation_id), headers=other_tenant.headers), 404)

    agent = await create_agent(app_client, tenant)
    problem(await app_client.get("/api/csat/analytics", headers=agent["headers"]), 403)
    supervisor = await create_agent(app_client, tenant, "supervisor")
    assert (await app_client.get("/api/csat/analytics", headers=supervisor["headers"])).status_code == 200
    # A supervisor-level role without analytics.read is refused too.
    blind = await app_client.post(
        "/api/roles",
        json={"name": f"Blind {uuid4().hex[:6]}", "base_role": "supervisor", "permissions": ["conversations.read"]},
        headers=tenant.headers,
    )
    assert blind.status_code == 201, blind.text
    blind_supervisor = await create_agent(app_client, tenant, role_id=blind.json()["id"])
    problem(await app_client.get("/api/csat/analytics", headers=blind_supervisor["headers"]), 403)
    # Another organisation's analytics count none of these surveys.
    theirs = (await app_client.get("/api/csat/analytics", headers=other_tenant.headers)).json()
    assert theirs["surveys_sent"] == 0
    assert theirs["average_rating"] is None
    assert theirs["response_rate"] == 0


# ------------------------------------------------------------------ sent on resolving


async def status_events(database: str, conversation_id: UUID) -> list[Claim]:
    rows = await fetch(
        database,
        "SELECT tenant_id, id, event_type, conversation_id, contact_id, payload, source, attempts, created_at "
        "FROM automation_events WHERE conversation_id = $1 AND event_type = 'status_changed' ORDER BY created_at",
        conversation_id,
    )
    return [
        Claim(
            **{k: v for k, v in dict(r).items() if k != "payload"},
            payload=msgspec.json.decode(r["payload"]) if isinstance(r["payload"], str) else r["payload"],
            rules_version=1,
        )
        for r in rows
    ]


async def test_resolving_sends_a_survey_when_the_tenant_wants_it(
    app_client: AsyncTestClient,
    db: Database,
    database: str,
    public_settings: Settings,
    tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The subscriber runs in the worker, which reads its settings from the environment.
    monkeypatch.setenv("OMNISTREAM_PUBLIC_URL", PUBLIC_URL)
    monkeypatch.setenv("OMNISTREAM_JWT_SECRET", public_settings.jwt_secret)
    tenant_id = UUID(tenant.id)
    conversation_id = await reachable_conversation(db, database, public_settings, tenant)

    async def set_status(status: str) -> None:
        response = await app_client.patch(
            f"/api/conversations/{conversation_id}/status", json={"status": status}, headers=tenant.headers
        )
        assert response.status_code == 200, response.text

    async def subscriber(events: list[Claim]) -> list[UUID]:
        async with db.tenant(tenant_id) as conn:
            return await service.send_on_resolve(conn, tenant_id, events)

    await set_status("resolved")
    (resolved,) = await status_events(database, conversation_id)
    # Off by default.
    assert (await app_client.get("/api/csat/settings", headers=tenant.headers)).json() == {"send_on_resolve": False}
    assert await subscriber([resolved]) == []
    problem(await app_client.get(survey_path(conversation_id), headers=tenant.headers), 404)

    await send_on_resolve(app_client, tenant, True)
    assert (await app_client.get("/api/csat/settings", headers=tenant.headers)).json() == {"send_on_resolve": True}
    # Reopened since: no survey for a conversation that is no longer resolved.
    await set_status("open")
    assert await subscriber([resolved]) == []
    await set_status("resolved")
    events = await status_events(database, conversation_id)
    reopened, resolved_again = events[1], events[2]
    assert await subscriber([reopened]) == []  # not a resolving
    (message_id,) = await subscriber([resolved_again])
    survey = (await app_client.get(survey_path(conversation_id), headers=tenant.headers)).json()
    assert survey["message_id"] == str(message_id)
    assert survey["created_by"] is None
    assert LINK.search((await fetch(database, "SELECT text FROM messages WHERE id = $1", message_id))[0]["text"])
    # A redelivered event sends no second survey.
    assert await subscriber([resolved_again]) == []
    assert len(await fetch(database, "SELECT id FROM csat_surveys WHERE conversation_id = $1", conversation_id)) == 1

    await send_on_resolve(app_client, tenant, False)
    await set_status("open")
    await set_status("resolved")
    assert await subscriber((await status_events(database, conversation_id))[-1:]) == []


# ------------------------------------------------------------------ analytics


async def test_analytics_on_a_known_data_set(
    app_client: AsyncTestClient, db: Database, database: str, tenant: Tenant
) -> None:
    agent_a = (await create_agent(app_client, tenant))["id"]
    agent_b = (await create_agent(app_client, tenant))["id"]
    division = await app_client.post("/api/divisions", json={"name": "Sales", "agent_ids": []}, headers=tenant.headers)
    assert division.status_code == 201, division.text
    division_id = division.json()["id"]
    day = datetime(2026, 3, 1, 12, tzinfo=UTC)
    # (agent, division, channel, status, rating, day)
    data = [
        (agent_a, division_id, "whatsapp", "submitted", 5, 1),
        (agent_a, division_id, "whatsapp", "submitted", 3, 2),
        (agent_b, None, "messenger", "submitted", 2, 2),
        (agent_b, None, "messenger", "sent", None, 3),
        (agent_a, None, "whatsapp", "expired", None, 3),
        (agent_a, None, "whatsapp", "submitted", 1, 10),
    ]
    conn = await asyncpg.connect(database)
    try:
        for agent, div, channel, status, rating, offset in data:
            conversation_id = (await ingest(db, tenant, "hi", channel=channel)).conversation_id
            sent_at = day + timedelta(days=offset)
            await conn.execute(
                "INSERT INTO csat_surveys (tenant_id, conversation_id, token_hash, status, channel, agent_id, "
                "division_id, rating, sent_at, expires_at, submitted_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                UUID(tenant.id),
                conversation_id,
                secrets.token_bytes(32),
                status,
                channel,
                UUID(agent),
                UUID(div) if div else None,
                rating,
                sent_at,
                sent_at + timedelta(days=7),
                sent_at + timedelta(hours=1) if rating else None,
            )
    finally:
        await conn.close()

    params = {"created_from": "2026-03-01T00:00:00Z", "created_to": "2026-03-06T00:00:00Z"}
    response = await app_client.get("/api/csat/analytics", params=params, headers=tenant.headers)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["surveys_sent"] == 5
    assert result["responses"] == 3
    assert result["response_rate"] == 0.6
    assert result["average_rating"] == 3.33
    assert result["distribution"] == {"rated_1": 0, "rated_2": 1, "rated_3": 1, "rated_4": 0, "rated_5": 1}

    def figures(group: dict[str, Any]) -> tuple[Any, ...]:
        return group["surveys_sent"], group["responses"], group["response_rate"], group["average_rating"]

    assert {g["agent_id"]: figures(g) for g in result["by_agent"]} == {
        agent_a: (3, 2, 0.6667, 4.0),
        agent_b: (2, 1, 0.5, 2.0),
    }
    assert {g["division_id"]: figures(g) for g in result["by_division"]} == {
        division_id: (2, 2, 1.0, 4.0),
        None: (3, 1, 0.3333, 2.0),
    }
    assert {g["channel"]: figures(g) for g in result["by_channel"]} == {
        "whatsapp": (3, 2, 0.6667, 4.0),
        "messenger": (2, 1, 0.5, 2.0),
    }
    by_agent = {g["agent_id"]: g["distribution"] for g in result["by_agent"]}
    assert by_agent[agent_b] == {"rated_1": 0, "rated_2": 1, "rated_3": 0, "rated_4": 0, "rated_5": 0}

    everything = (await app_client.get("/api/csat/analytics", headers=tenant.headers)).json()
    assert everything["surveys_sent"] == 6
    assert everything["distribution"]["rated_1"] == 1
    assert everything["created_from"] is None
    later = await app_client.get(
        "/api/csat/analytics", params={"created_from": "2026-03-05T00:00:00Z"}, headers=tenant.headers
    )
    assert later.json()["surveys_sent"] == 1


async def test_analytics_refuse_a_bad_range(app_client: AsyncTestClient, tenant: Tenant) -> None:
    backwards = {"created_from": "2026-03-05T00:00:00Z", "created_to": "2026-03-01T00:00:00Z"}
    problem(await app_client.get("/api/csat/analytics", params=backwards, headers=tenant.headers), 422)
    problem(await app_client.get("/api/csat/analytics", params={"created_to": "March"}, headers=tenant.headers), 400)


async def test_the_worker_sends_the_survey_of_a_resolved_conversation(
    app_client: AsyncTestClient,
    db: Database,
    arq: Any,
    database: str,
    public_settings: Settings,
    tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OMNISTREAM_PUBLIC_URL", PUBLIC_URL)
    monkeypatch.setenv("OMNISTREAM_JWT_SECRET", public_settings.jwt_secret)
    conversation_id = await reachable_conversation(db, database, public_settings, tenant)
    await send_on_resolve(app_client, tenant, True)
    resolved = await app_client.patch(
        f"/api/conversations/{conversation_id}/status", json={"status": "resolved"}, headers=tenant.headers
    )
    assert resolved.status_code == 200, resolved.text
    await process_all(db, arq)
    survey = (await app_client.get(survey_path(conversation_id), headers=tenant.headers)).json()
    assert survey["status"] == "sent"
    # The processor enqueued the survey message's delivery after its commit.
    assert await arq.exists(f"arq:job:deliver:{survey['message_id']}")
    token = await survey_token(database, survey)
    assert (await answer(app_client, token, rating=2)).status_code == 200


async def test_a_survey_rates_the_agent_the_conversation_is_assigned_to(
    app_client: AsyncTestClient, db: Database, database: str, public_settings: Settings, tenant: Tenant
) -> None:
    conversation_id = await reachable_conversation(db, database, public_settings, tenant)
    agent = await create_agent(app_client, tenant)
    assigned = await app_client.patch(
        f"/api/conversations/{conversation_id}/assign", json={"agent_id": agent["id"]}, headers=tenant.headers
    )
    assert assigned.status_code == 200, assigned.text
    survey = await send_survey(app_client, agent, conversation_id)
    assert survey["agent_id"] == agent["id"]
    assert survey["created_by"] == agent["id"]
    assert (await answer(app_client, await survey_token(database, survey), rating=5)).status_code == 200
    result = (await app_client.get("/api/csat/analytics", headers=tenant.headers)).json()
    assert [(g["agent_id"], g["average_rating"]) for g in result["by_agent"]] == [(agent["id"], 5.0)]


def test_the_link_lifetime_is_read_from_the_environment_and_checked() -> None:
    from omnistream.config import SettingsError, load_settings

    assert load_settings(environ={}).csat_link_days == 7
    assert load_settings(environ={"OMNISTREAM_CSAT_LINK_DAYS": "3"}).csat_link_days == 3
    with pytest.raises(SettingsError, match="OMNISTREAM_CSAT_LINK_DAYS"):
        load_settings(environ={"OMNISTREAM_CSAT_LINK_DAYS": "0"})


async def test_answers_sent_at_once_count_once(
    app_client: AsyncTestClient, db: Database, database: str, public_settings: Settings, tenant: Tenant
) -> None:
    conversation_id = await reachable_conversation(db, database, public_settings, tenant)
    token = await survey_token(database, await send_survey(app_client, tenant, conversation_id))
    responses = await asyncio.gather(*(answer(app_client, token, rating=rating) for rating in range(1, 6)))
    assert sorted(r.status_code for r in responses) == [200, 409, 409, 409, 409]
    (winner,) = (r.json()["rating"] for r in responses if r.status_code == 200)
    assert (await app_client.get(survey_path(conversation_id), headers=tenant.headers)).json()["rating"] == winner
    events = await fetch(
        database,
        "SELECT id FROM automation_events WHERE event_type = 'csat_submitted' AND conversation_id = $1",
        conversation_id,
    )
    assert len(events) == 1
