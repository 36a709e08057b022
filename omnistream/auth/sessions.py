"""Sessions behind the JWTs, and turning a session or an API key into an Actor.

Kept apart from auth.service because agents and API keys revoke sessions, while
auth.service itself builds on agents (registration creates the first admin).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import asyncpg
import msgspec

from omnistream.auth import repository
from omnistream.db import Database
from omnistream.security.api_keys import hash_key, split_key
from omnistream.security.permissions import RoleLevel, role_permissions
from omnistream.security.principal import Actor


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


async def actor_for_session(
    db: Database, session_id: UUID, user_id: UUID, tenant_id: UUID, *, ip: str | None, request_id: str | None
) -> Actor | None:
    async with db.pool.acquire() as conn:
        row = await repository.session_principal(conn, session_id)
    if row is None or row["user_id"] != user_id or row["tenant_id"] != tenant_id:
        return None
    return _actor(row, session_id=session_id, ip=ip, request_id=request_id)


async def actor_for_api_key(db: Database, full_key: str, *, ip: str | None, request_id: str | None) -> Actor | None:
    prefix = split_key(full_key)
    if prefix is None:
        return None
    async with db.pool.acquire() as conn:
        row = await repository.api_key_principal(conn, prefix, hash_key(full_key))
    if row is None:
        return None
    actor = _actor(row, api_key_id=row["api_key_id"], ip=ip, request_id=request_id)
    if actor is not None and row["scopes"] is not None:
        # A key never exceeds its owner's current rights, even if the owner was demoted since.
        actor = msgspec.structs.replace(actor, permissions=actor.permissions & frozenset(row["scopes"]))
    return actor
