from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from omnistream.db import load_queries
from omnistream.kit.pagination import ListParams
from omnistream.kit.records import many, one
from omnistream.quick_replies.schemas import QuickReply

queries = load_queries("quick_replies")


async def list_page(
    conn: asyncpg.Connection,
    tenant_id: UUID,
    params: ListParams,
    *,
    viewer_id: UUID | None,
    viewer_divisions: list[UUID] | None,
    division_id: UUID | None,
    q: str | None,
    by_usage: bool,
    favorites_first: bool,
) -> tuple[list[QuickReply], int]:
    direction = "desc" if params.descending else "asc"
    filters: dict[str, Any] = {"viewer_divisions": viewer_divisions, "division_id": division_id, "q": q}
    rows = await queries.list_quick_replies(
        conn,
        tenant_id=tenant_id,
        viewer_id=viewer_id,
        favorites_first=favorites_first,
        **{f"usage_{direction}": by_usage},
        **filters,
        **params.sql_args(),
    )
    total = await queries.count_quick_replies(conn, tenant_id=tenant_id, **filters)
    return many(rows, QuickReply), total


async def get(
    conn: asyncpg.Connection,
    tenant_id: UUID,
    quick_reply_id: UUID,
    *,
    viewer_id: UUID | None,
    viewer_divisions: list[UUID] | None,
) -> QuickReply | None:
    row = await queries.get_quick_reply(
        conn, tenant_id=tenant_id, id=quick_reply_id, viewer_id=viewer_id, viewer_divisions=viewer_divisions
    )
    return one(row, QuickReply)


async def lock(conn: asyncpg.Connection, tenant_id: UUID, quick_reply_id: UUID) -> asyncpg.Record | None:
    return await queries.lock_quick_reply(conn, tenant_id=tenant_id, id=quick_reply_id)


async def shortcut_taken(conn: asyncpg.Connection, tenant_id: UUID, shortcut: str, except_id: UUID | None) -> bool:
    return bool(await queries.shortcut_taken(conn, tenant_id=tenant_id, shortcut=shortcut, except_id=except_id))


async def insert(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID | None, **fields: Any) -> UUID:
    return await queries.insert_quick_reply(conn, tenant_id=tenant_id, user_id=user_id, **fields)


async def update(
    conn: asyncpg.Connection, tenant_id: UUID, quick_reply_id: UUID, user_id: UUID | None, **fields: Any
) -> None:
    await queries.update_quick_reply(conn, tenant_id=tenant_id, id=quick_reply_id, user_id=user_id, **fields)


async def delete(conn: asyncpg.Connection, tenant_id: UUID, quick_reply_id: UUID) -> asyncpg.Record | None:
    return await queries.delete_quick_reply(conn, tenant_id=tenant_id, id=quick_reply_id)


async def record_use(
    conn: asyncpg.Connection, tenant_id: UUID, quick_reply_id: UUID, viewer_divisions: list[UUID] | None
) -> bool:
    row = await queries.record_use(conn, tenant_id=tenant_id, id=quick_reply_id, viewer_divisions=viewer_divisions)
    return row is not None


async def add_favorite(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID, quick_reply_id: UUID) -> bool:
    added = await queries.add_favorite(conn, tenant_id=tenant_id, user_id=user_id, quick_reply_id=quick_reply_id)
    return added is not None


async def remove_favorite(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID, quick_reply_id: UUID) -> bool:
    removed = await queries.remove_favorite(conn, tenant_id=tenant_id, user_id=user_id, quick_reply_id=quick_reply_id)
    return removed is not None


async def export_batch(
    conn: asyncpg.Connection, tenant_id: UUID, after: tuple[datetime, UUID] | None, batch: int
) -> list[asyncpg.Record]:
    after_at, after_id = after if after else (None, None)
    return list(
        await queries.export_batch(conn, tenant_id=tenant_id, after_at=after_at, after_id=after_id, batch=batch)
    )


async def by_shortcuts(conn: asyncpg.Connection, tenant_id: UUID, shortcuts: list[str]) -> list[asyncpg.Record]:
    return list(await queries.by_shortcuts(conn, tenant_id=tenant_id, shortcuts=[s.lower() for s in shortcuts]))


async def insert_many(
    conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID | None, rows: list[dict[str, Any]]
) -> dict[str, UUID]:
    """The ids of the new replies by lowercased shortcut."""
    inserted = await queries.insert_many(
        conn, tenant_id=tenant_id, user_id=user_id, **_columns(rows, "shortcut", "title", "content")
    )
    return {r["shortcut"].lower(): r["id"] for r in inserted}


async def update_many(
    conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID | None, rows: list[dict[str, Any]]
) -> None:
    await queries.update_many(
        conn,
        tenant_id=tenant_id,
        user_id=user_id,
        ids=[r["id"] for r in rows],
        **_columns(rows, "shortcut", "title", "content"),
    )


def _columns(rows: list[dict[str, Any]], *texts: str) -> dict[str, list[Any]]:
    columns = {f"{name}s": [r[name] for r in rows] for name in texts}
    columns["division_ids"] = [r["division_id"] for r in rows]
    columns["media_ids"] = [r["media_id"] for r in rows]
    return columns
