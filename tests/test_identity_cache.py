"""Who a session or key is, cached for a moment in each API process, and forgotten in every process
the moment a change to the tenant's people, roles, keys or sessions commits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import asyncpg
import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from omnistream.auth import sessions
from omnistream.config import Settings
from omnistream.security.permissions import RoleLevel
from omnistream.security.principal import Actor
from tests.conftest import Tenant, create_agent


@pytest.fixture
def long_lived_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Entries that would outlive the test: only forgetting them can end them."""
    monkeypatch.setattr(sessions._ActorCache, "TTL", 600.0)


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url)
    try:
        yield client
    finally:
        await client.aclose()


def channel(settings: Settings) -> str:
    return f"{settings.redis_prefix}:identity-changes"


async def until_refused(client: AsyncTestClient, headers: dict[str, str], seconds: float = 3.0) -> int:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        status = (await client.get("/api/auth/me", headers=headers)).status_code
        if status != 200 or asyncio.get_running_loop().time() > deadline:
            return status
        await asyncio.sleep(0.02)


async def test_a_change_another_process_announces_is_forgotten_here(
    client: AsyncTestClient, tenant: Tenant, database: str, settings: Settings, redis: Redis, long_lived_cache: None
) -> None:
    agent = await create_agent(client, tenant)
    key = (await client.post("/api/api-keys", json={"name": "k"}, headers=agent["headers"])).json()["key"]
    key_headers = {"X-API-Key": key}
    assert (await client.get("/api/auth/me", headers=key_headers)).status_code == 200  # now cached
    assert (await client.get("/api/auth/me", headers=agent["headers"])).status_code == 200
    # Another API process suspends the agent: the rows change, and it announces the tenant.
    owner = await asyncpg.connect(database)
    try:
        await owner.execute("UPDATE users SET status = 'suspended' WHERE id = $1", agent["id"])
    finally:
        await owner.close()
    assert (await client.get("/api/auth/me", headers=key_headers)).status_code == 200  # still cached here
    await redis.publish(channel(settings), tenant.id)
    assert await until_refused(client, key_headers) == 401
    assert (await client.get("/api/auth/me", headers=agent["headers"])).status_code == 401
    assert (await client.get("/api/auth/me", headers=tenant.headers)).status_code == 200


async def test_changes_made_here_are_announced_to_the_other_processes(
    client: AsyncTestClient, tenant: Tenant, settings: Settings, redis: Redis
) -> None:
    agent = await create_agent(client, tenant)
    async with redis.pubsub() as pubsub:
        await pubsub.subscribe(channel(settings))
        assert (await pubsub.get_message(timeout=2))["type"] == "subscribe"
        changes = [
            ("PATCH", f"/api/agents/{agent['id']}", {"password": "a brand new secret"}),
            ("PATCH", f"/api/agents/{agent['id']}", {"status": "suspended"}),
            ("DELETE", f"/api/agents/{agent['id']}", None),
        ]
        for method, path, body in changes:
            response = await client.request(method, path, json=body, headers=tenant.headers)
            assert response.status_code == 200, response.text
            heard = await pubsub.get_message(ignore_subscribe_messages=True, timeout=2)
            assert heard is not None, f"{method} {path} {body} was not announced"
            assert heard["data"].decode() == tenant.id


def actor(tenant_id: object = None) -> Actor:
    return Actor(
        user_id=uuid4(),
        tenant_id=tenant_id or uuid4(),
        email="a@example.com",
        name="A",
        role_id=uuid4(),
        role_name="Agent",
        level=RoleLevel.agent,
        permissions=frozenset(),
    )


def test_a_lookup_that_began_before_a_change_stores_nothing() -> None:
    """Read before the change committed, stored after it was forgotten, it would live on for the TTL."""
    cache = sessions._ActorCache()
    someone = actor()
    began = cache.generation
    cache.forget_tenant(someone.tenant_id)  # the change commits while the lookup waits on the database
    cache.put(("session", 1), someone, None, began)
    assert cache.get(("session", 1)) == (False, None)
    cache.put(("session", 1), someone, None, cache.generation)
    assert cache.get(("session", 1)) == (True, someone)


def test_nothing_is_stored_while_changes_could_go_unheard() -> None:
    cache = sessions._ActorCache()
    cache.usable = False  # the change feed is not subscribed
    cache.put(("session", 1), actor(), datetime.now(UTC) + timedelta(hours=1), cache.generation)
    assert cache.get(("session", 1)) == (False, None)


async def test_a_lost_feed_pauses_the_cache_and_forgets_everything() -> None:
    class Broken:
        def pubsub(self) -> object:
            raise ConnectionError("redis went away")

    sessions._cache.usable = True
    sessions._cache.put(("session", "lost-feed"), actor(), None, sessions._cache.generation)
    follower = asyncio.create_task(sessions.ChangeFeed(Broken(), "c").follow(retry_seconds=60))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    try:
        assert sessions._cache.usable is False
        assert sessions._cache.get(("session", "lost-feed")) == (False, None)
    finally:
        follower.cancel()
        sessions._cache.usable = True
