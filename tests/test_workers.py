"""The worker's crons, run as the worker runs them: with its context, across every tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from omnistream.auth.tasks import purge_ended_sessions
from omnistream.chat_expiration import service as chat_expiration
from omnistream.conversations.tasks import expire_stale_conversations
from omnistream.db import Database
from tests.conftest import PASSWORD, Tenant, create_agent, ingest, register
from workers.settings import WorkerSettings


@pytest.fixture
async def owner(database: str) -> AsyncIterator[asyncpg.Connection]:
    """The database owner, past row-level security: to age rows as time would."""
    conn = await asyncpg.connect(database)
    try:
        yield conn
    finally:
        await conn.close()


def test_the_worker_runs_both_crons() -> None:
    crons = {job.coroutine for job in WorkerSettings.cron_jobs}
    assert {expire_stale_conversations, purge_ended_sessions} <= crons


async def put_rule(client: AsyncTestClient, tenant: Tenant, channel: str, **body: Any) -> None:
    response = await client.put(f"/api/chat-expiration-rules/{channel}", json=body, headers=tenant.headers)
    assert response.status_code == 200, response.text


async def status_of(client: AsyncTestClient, tenant: Tenant, conversation_id: UUID) -> str:
    response = await client.get(f"/api/conversations/{conversation_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()["status"]


async def test_only_tenants_with_an_enabled_rule_are_swept(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant, db: Database
) -> None:
    without_rules = await register(client)
    await put_rule(client, tenant, "whatsapp", inactivity_minutes=30)
    await put_rule(client, tenant, "email", inactivity_minutes=30, enabled=False)
    await put_rule(client, other_tenant, "whatsapp", inactivity_minutes=30, enabled=False)
    assert await chat_expiration.tenants_with_enabled_rules(db) == [UUID(tenant.id)]
    assert without_rules.id not in {str(t) for t in await chat_expiration.tenants_with_enabled_rules(db)}


async def test_the_expiry_cron_applies_each_tenants_enabled_rules(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant, db: Database, owner: asyncpg.Connection
) -> None:
    await put_rule(client, tenant, "whatsapp", inactivity_minutes=60)
    await put_rule(client, other_tenant, "whatsapp", inactivity_minutes=60, enabled=False)
    third = await register(client)
    await put_rule(client, third, "whatsapp", inactivity_minutes=60)
    stale = (await ingest(db, tenant, "hello")).conversation_id
    recent = (await ingest(db, tenant, "hello")).conversation_id
    disabled = (await ingest(db, other_tenant, "hello")).conversation_id
    elsewhere = (await ingest(db, third, "hello")).conversation_id
    await owner.execute(
        "UPDATE conversations SET last_activity_at = now() - interval '2 hours' WHERE id = ANY($1::uuid[])",
        [stale, disabled, elsewhere],
    )
    await owner.execute(
        "UPDATE conversations SET last_activity_at = now() - interval '30 minutes' WHERE id = $1", recent
    )

    assert await expire_stale_conversations({"db": db}) == 2
    assert await status_of(client, tenant, stale) == "expired"
    assert await status_of(client, third, elsewhere) == "expired"
    assert await status_of(client, tenant, recent) == "open"
    assert await status_of(client, other_tenant, disabled) == "open"
    # The worker is nobody: no agent changed the status.
    changed_by = await owner.fetchval("SELECT status_changed_by FROM conversations WHERE id = $1", stale)
    assert changed_by is None
    # A second run finds nothing left.
    assert await expire_stale_conversations({"db": db}) == 0


async def test_the_purge_cron_drops_sessions_ended_a_week_ago(
    client: AsyncTestClient, tenant: Tenant, db: Database, owner: asyncpg.Connection
) -> None:
    agent = await create_agent(client, tenant)
    sessions = {
        name: (await client.post("/api/auth/login", json={"email": agent["email"], "password": PASSWORD})).json()
        for name in ("live", "expired_long_ago", "expired_lately", "revoked_long_ago", "revoked_lately")
    }
    client.cookies.clear()
    ids = {name: UUID(_jti(s["access_token"])) for name, s in sessions.items()}
    now = datetime.now(UTC)
    await owner.execute(
        "UPDATE sessions SET expires_at = $2 WHERE id = $1", ids["expired_long_ago"], now - timedelta(days=8)
    )
    await owner.execute(
        "UPDATE sessions SET expires_at = $2 WHERE id = $1", ids["expired_lately"], now - timedelta(days=6)
    )
    await owner.execute(
        "UPDATE sessions SET revoked_at = $2 WHERE id = $1", ids["revoked_long_ago"], now - timedelta(days=8)
    )
    await owner.execute(
        "UPDATE sessions SET revoked_at = $2 WHERE id = $1", ids["revoked_lately"], now - timedelta(days=6)
    )

    assert await purge_ended_sessions({"db": db}) == 2
    remaining = {r["id"] for r in await owner.fetch("SELECT id FROM sessions WHERE user_id = $1", UUID(agent["id"]))}
    assert remaining == {ids["live"], ids["expired_lately"], ids["revoked_lately"], UUID(_jti(agent["headers"]))}
    headers = {"Authorization": f"Bearer {sessions['live']['access_token']}"}
    assert (await client.get("/api/auth/me", headers=headers)).status_code == 200
    assert await purge_ended_sessions({"db": db}) == 0


def _jti(token_or_headers: str | dict[str, str]) -> str:
    import jwt

    token = token_or_headers if isinstance(token_or_headers, str) else token_or_headers["Authorization"].split()[-1]
    return jwt.decode(token, options={"verify_signature": False})["jti"]
