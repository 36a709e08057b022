"""API keys: long-lived credentials that act as their owner, never beyond the owner's rights."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import asyncpg
import msgspec

from omnistream.activity import service as activity
from omnistream.api_keys import repository
from omnistream.api_keys.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyList
from omnistream.auth import sessions
from omnistream.db import Database
from omnistream.errors import Forbidden, Unprocessable, not_found
from omnistream.security.api_keys import generate_key
from omnistream.security.principal import Actor


async def list_keys(db: Database, actor: Actor, include_revoked: bool) -> ApiKeyList:
    async with db.read(actor.tenant_id) as conn:
        keys = await repository.list_for_user(conn, actor.tenant_id, actor.user_id, include_revoked)
    return ApiKeyList(api_keys=keys, next_cursor=None, total=len(keys))


async def create_key(db: Database, actor: Actor, data: ApiKeyCreate) -> ApiKeyCreated:
    if actor.api_key_id is not None:
        raise Forbidden("an API key cannot create API keys; sign in to create one")
    scopes = None
    if data.scopes is not None:
        beyond = sorted(set(data.scopes) - actor.permissions)
        if beyond:
            raise Forbidden(f"a key cannot have permissions you lack: {', '.join(beyond)}", field="scopes")
        scopes = sorted(set(data.scopes))
    if data.expires_at is not None and data.expires_at <= datetime.now(UTC):
        raise Unprocessable("expires_at must be in the future", field="expires_at")
    new_key = generate_key(actor.tenant_id)
    async with db.tenant(actor.tenant_id) as conn:
        key = await repository.insert(
            conn,
            actor.tenant_id,
            actor.user_id,
            name=data.name.strip(),
            prefix=new_key.prefix,
            key_hash=new_key.hash,
            scopes=scopes,
            expires_at=data.expires_at,
        )
        await activity.record(
            conn, actor, "api_key.created", "api_key", key.id, name=key.name, prefix=key.prefix, scopes=scopes
        )
    return ApiKeyCreated(**msgspec.structs.asdict(key), key=new_key.secret)


async def revoke_key(db: Database, actor: Actor, key_id: UUID) -> None:
    async with db.tenant(actor.tenant_id) as conn:
        if not await repository.revoke(conn, actor.tenant_id, actor.user_id, key_id):
            raise not_found("API key")
        await activity.record(conn, actor, "api_key.revoked", "api_key", key_id)
    await sessions.forget_tenant(actor.tenant_id)


async def revoke_all_for_user(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID) -> None:
    await repository.revoke_all_for_user(conn, tenant_id, user_id)
