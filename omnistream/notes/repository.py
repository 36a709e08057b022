from __future__ import annotations

from uuid import UUID

import asyncpg

from omnistream.db import load_queries
from omnistream.kit.pagination import ListParams
from omnistream.kit.records import many, one
from omnistream.notes.schemas import Note

queries = load_queries("notes")


async def get(conn: asyncpg.Connection, tenant_id: UUID, note_id: UUID) -> Note | None:
    return one(await queries.get_note(conn, tenant_id=tenant_id, id=note_id), Note)


async def list_page(
    conn: asyncpg.Connection, tenant_id: UUID, conversation_id: UUID, params: ListParams
) -> tuple[list[Note], int]:
    rows = await queries.list_notes(conn, tenant_id=tenant_id, conversation_id=conversation_id, **params.sql_args())
    total = await queries.count_notes(conn, tenant_id=tenant_id, conversation_id=conversation_id)
    return many(rows, Note), total


async def insert(
    conn: asyncpg.Connection, tenant_id: UUID, conversation_id: UUID, author_id: UUID | None, body: str
) -> UUID:
    return await queries.insert_note(
        conn, tenant_id=tenant_id, conversation_id=conversation_id, author_id=author_id, body=body
    )


async def update(conn: asyncpg.Connection, tenant_id: UUID, note_id: UUID, body: str) -> None:
    await queries.update_note(conn, tenant_id=tenant_id, id=note_id, body=body)


async def delete(conn: asyncpg.Connection, tenant_id: UUID, note_id: UUID) -> None:
    await queries.delete_note(conn, tenant_id=tenant_id, id=note_id)
