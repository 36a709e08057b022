"""The tenant's audit trail: who did what to which object, from where."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from omnistream.activity import repository
from omnistream.activity.schemas import ActivityLogList
from omnistream.db import Database
from omnistream.kit.pagination import ListParams, date_range, page_of
from omnistream.security.principal import Actor


async def record(
    conn: asyncpg.Connection, actor: Actor, action: str, object_type: str, object_id: UUID | None, **details: Any
) -> None:
    """Write an entry inside the caller's transaction, so it exists exactly when the change does."""
    await repository.insert(
        conn,
        tenant_id=actor.tenant_id,
        actor_type=actor.actor_type,
        actor_id=actor.user_id,
        actor_email=actor.email,
        action=action,
        object_type=object_type,
        object_id=object_id,
        ip=actor.ip,
        request_id=actor.request_id,
        details=details,
    )


async def list_logs(
    db: Database,
    actor: Actor,
    params: ListParams,
    *,
    actor_id: UUID | None,
    action: str | None,
    object_type: str | None,
    object_id: UUID | None,
    created_from: str | None,
    created_to: str | None,
) -> ActivityLogList:
    created_from, created_to = date_range(created_from, created_to)
    filters = repository.filters(actor_id, action, object_type, object_id, created_from, created_to)
    async with db.read(actor.tenant_id) as conn:
        rows, total = await repository.list_page(conn, actor.tenant_id, params, filters)
    rows, next_cursor = page_of(rows, params)
    return ActivityLogList(activity_logs=rows, next_cursor=next_cursor, total=total)
