"""Sessions behind the JWTs, and turning a session or an API key into an Actor.

Kept apart from auth.service because agents and API keys revoke sessions, while
auth.service itself builds on agents (registration creates the first admin).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import asyncpg
import msgspec
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from omnistream.auth import repository
from omnistream.db import Database
from omnistream.security.api_keys import hash_key, split_key
from omnistream.security.permissions import RoleLevel, role_permissions
from omnistream.security.principal import Actor

log = structlog.get_logger(__name__)


async def create(
    conn: asyncpg.Connection,
    *,
    tenant_id: UUID,
    user_id: UUID,
    ip: str | None,
    user_agent: str | None,
    ttl_seconds: int,
) -> tuple[UUID, datetime]:
    session_id = uuid4()
    expires_at = datetime.now(UTC) + timedelta(seconds=ttl_seconds)
    await repository.insert_session(
        conn,
        session_id=session_id,
        tenant_id=tenant_id,
        user_id=user_id,
        ip=ip,
        user_agent=(user_agent or "")[:500] or None,
        expires_at=expires_at,
    )
    return session_id, expires_at


async def extend(conn: asyncpg.Connection, tenant_id: UUID, session_id: UUID, ttl_seconds: int) -> datetime | None:
    expires_at = datetime.now(UTC) + timedelta(seconds=ttl_seconds)
    return expires_at if await repository.extend_session(conn, tenant_id, session_id, expires_at) else None


async def revoke(conn: asyncpg.Connection, tenant_id: UUID, session_id: UUID) -> None:
    await repository.revoke_session(conn, tenant_id, session_id)


async def revoke_all_for_user(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID) -> None:
    await repository.revoke_user_sessions(conn, tenant_id, user_id)


def _actor(row: asyncpg.Record, **extra: object) -> Actor | None:
    if row["user_status"] != "active" or row["tenant_status"] != "active":
        return None
    return Actor(
        user_id=row["user_id"],
        tenant_id=row["tenant_id"],
        email=row["email"],
        name=row["name"],
        role_id=row["role_id"],
        role_name=row["role_name"],
        level=RoleLevel[row["base_role"]],
        permissions=role_permissions(row["base_role"], row["role_is_builtin"], row["role_permissions"]),
        **extra,  # type: ignore[arg-type]
    )


class _ActorCache:
    """Who a session or key is, remembered for a moment.

    Every authenticated request would otherwise begin with a database round trip to look up
    its session. Entries live `TTL` seconds; any change to a tenant's agents, roles, keys or
    sessions forgets that tenant's entries in this process at once and, through the change feed,
    in the other API processes.

    A lookup that began before a change must not store what it read once the change is forgotten:
    `generation` counts the forgetting, and `put` stores nothing read under an older generation.
    While the feed is not listening (starting, or its Redis connection lost) nothing is stored,
    because a change made by another process could go unheard.
    """

    TTL = 2.0
    MAX_ENTRIES = 50_000

    def __init__(self) -> None:
        self._entries: dict[object, tuple[float, Actor | None]] = {}
        self._by_tenant: dict[UUID, set[object]] = {}
        self.generation = 0
        self.usable = True

    def get(self, key: object) -> tuple[bool, Actor | None]:
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return False, None
        return True, entry[1]

    def put(self, key: object, actor: Actor | None, expires_at: datetime | None, generation: int) -> None:
        if actor is None:
            return  # a refusal is never remembered: a new session or key must work at once
        if generation != self.generation or not self.usable:
            return  # read before a change that has since been forgotten, or changes could go unheard
        if len(self._entries) >= self.MAX_ENTRIES:
            self.clear()
        ttl = self.TTL
        if expires_at is not None:  # never past the session's or key's own end
            ttl = min(ttl, (expires_at - datetime.now(UTC)).total_seconds())
        self._entries[key] = (time.monotonic() + ttl, actor)
        self._by_tenant.setdefault(actor.tenant_id, set()).add(key)

    def forget_tenant(self, tenant_id: UUID) -> None:
        self.generation += 1
        for key in self._by_tenant.pop(tenant_id, ()):
            self._entries.pop(key, None)

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()
        self._by_tenant.clear()


_cache = _ActorCache()


class ChangeFeed:
    """Redis pub/sub between the API processes: "this tenant's people, roles, keys or sessions changed".

    Each process publishes its changes and follows everyone's, forgetting the tenant's cached
    identities on each message, so a suspended agent's key stops working in every process at once.
    """

    def __init__(self, redis: Redis, channel: str) -> None:
        self.redis = redis
        self.channel = channel

    async def publish(self, tenant_id: UUID) -> None:
        await self.redis.publish(self.channel, str(tenant_id))

    async def follow(self, retry_seconds: float = 1.0) -> None:
        """Forget what other processes changed, until cancelled; reconnects after a lost connection."""
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    async for message in pubsub.listen():
                        if message["type"] == "subscribe":
                            _cache.clear()  # whatever was missed before this point
                            _cache.usable = True
                        elif message["type"] == "message":
                            _forget_heard(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure of the connection: stop caching, retry
                log.warning("identity change feed lost; caching paused", error=str(exc))
            finally:
                _cache.usable = False
                _cache.clear()
            await asyncio.sleep(retry_seconds)


_feed: ChangeFeed | None = None


def _forget_heard(data: bytes | str) -> None:
    try:
        tenant_id = UUID(data.decode() if isinstance(data, bytes) else data)
    except ValueError:
        _cache.clear()  # not ours to read: forgetting everything is always safe
        return
    _cache.forget_tenant(tenant_id)


@contextlib.asynccontextmanager
async def change_feed(redis: Redis, channel: str) -> AsyncIterator[ChangeFeed]:
    """Publish and follow identity changes on `channel` while the context lasts (the app's lifespan)."""
    global _feed
    feed = ChangeFeed(redis, channel)
    _cache.usable = False  # until subscribed
    _cache.clear()
    _feed = feed
    follower = asyncio.create_task(feed.follow())
    try:
        yield feed
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        if _feed is feed:
            _feed = None
            _cache.usable = True  # one process without a feed: forgetting locally is exact


def generation() -> int:
    """Take before looking an identity up; hand to `remember_token_actor`."""
    return _cache.generation


def recent_token_actor(encoded_token: str) -> Actor | None:
    return _cache.get(("token", encoded_token))[1]


def remember_token_actor(encoded_token: str, actor: Actor, expires_at: datetime, generation: int) -> None:
    _cache.put(("token", encoded_token), actor, expires_at, generation)


async def forget_tenant(tenant_id: UUID) -> None:
    """Call after a change to who an agent is or may do has committed: the next request, in this
    process or another, looks them up again."""
    _cache.forget_tenant(tenant_id)
    feed = _feed
    if feed is not None:
        try:
            await feed.publish(tenant_id)
        except RedisError as exc:
            # The change stands; other processes forget it within the cache's TTL.
            log.warning("identity change not announced", tenant_id=str(tenant_id), error=str(exc))


async def actor_for_session(
    db: Database, session_id: UUID, user_id: UUID, tenant_id: UUID, *, ip: str | None, request_id: str | None
) -> Actor | None:
    key = ("session", session_id)
    known, actor = _cache.get(key)
    if not known:
        looked_up_at = _cache.generation
        async with db.anonymous() as conn:
            row = await repository.session_principal(conn, tenant_id, session_id)
        actor = _actor(row, session_id=session_id) if row is not None else None
        _cache.put(key, actor, row["expires_at"] if row is not None else None, looked_up_at)
    if actor is None or actor.user_id != user_id or actor.tenant_id != tenant_id:
        return None
    return msgspec.structs.replace(actor, ip=ip, request_id=request_id)


async def actor_for_api_key(db: Database, full_key: str, *, ip: str | None, request_id: str | None) -> Actor | None:
    name = split_key(full_key)
    if name is None:
        return None
    key_hash = hash_key(full_key)
    known, actor = _cache.get(("api_key", key_hash))
    if not known:
        looked_up_at = _cache.generation
        async with db.anonymous() as conn:
            row = await repository.api_key_principal(conn, name.tenant_id, name.prefix, key_hash)
        actor = _actor(row, api_key_id=row["api_key_id"]) if row is not None else None
        if actor is not None and row["scopes"] is not None:
            # A key never exceeds its owner's current rights, even if the owner was demoted since.
            actor = msgspec.structs.replace(actor, permissions=actor.permissions & frozenset(row["scopes"]))
        _cache.put(("api_key", key_hash), actor, row["expires_at"] if row is not None else None, looked_up_at)
    return msgspec.structs.replace(actor, ip=ip, request_id=request_id) if actor is not None else None
