from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from omnistream.activity.schemas import ActivityLog
from omnistream.db import load_queries
from omnistream.kit.pagination import ListParams
from omnistream.kit.records import many

queries = load_queries("activity")


async def insert(conn: asyncpg.Connection, **values: Any) -> None:
    await queries.insert_activity(conn, **values)


async def list_page(
    conn: asyncpg.Connection, tenant_id: UUID, params: ListParams, filters: dict[str, Any]
) -> tuple[list[ActivityLog], int]:
    rows = await queries.list_activity(conn, tenant_id=tenant_id, **filters, **params.sql_args())
    total = await queries.count_activity(conn, tenant_id=tenant_id, **filters)
    return many(rows, ActivityLog), total


def filters(
    actor_id: UUID | None,
    action: str | None,
    object_type: str | None,
    object_id: UUID | None,
    created_from: datetime | None,
    created_to: datetime | None,
) -> dict[str, Any]:
    return {
        "actor_id": actor_id,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "created_from": created_from,
        "created_to": created_to,
    }
