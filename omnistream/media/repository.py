from __future__ import annotations

from uuid import UUID

import asyncpg

from omnistream.db import load_queries
from omnistream.kit.records import one
from omnistream.media.schemas import StoredMedia

queries = load_queries("media")


async def insert(
    conn: asyncpg.Connection,
    tenant_id: UUID,
    media_id: UUID,
    *,
    storage: str,
    storage_key: str,
    bucket: str | None,
    filename: str,
    mime_type: str,
    size_bytes: int,
    sha256: str,
    source: str,
    uploaded_by: UUID | None,
) -> UUID:
    return await queries.insert_media_file(
        conn,
        tenant_id=tenant_id,
        id=media_id,
        storage=storage,
        storage_key=storage_key,
        bucket=bucket,
        filename=filename,
        mime_type=mime_type,
        size_bytes=size_bytes,
        sha256=sha256,
        source=source,
        uploaded_by=uploaded_by,
    )


async def get(conn: asyncpg.Connection, tenant_id: UUID, media_id: UUID) -> StoredMedia | None:
    return one(await queries.get_media_file(conn, tenant_id=tenant_id, id=media_id), StoredMedia)


async def existing_ids(conn: asyncpg.Connection, tenant_id: UUID, ids: list[UUID]) -> set[UUID]:
    return {r["id"] for r in await queries.existing_ids(conn, tenant_id=tenant_id, ids=ids)}
