from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from omnistream.db import load_queries
from omnistream.kit.pagination import ListParams
from omnistream.kit.records import many, one
from omnistream.wa_templates.schemas import WaTemplate

queries = load_queries("wa_templates")


async def get(conn: Any, tenant_id: UUID, template_id: UUID) -> WaTemplate | None:
    return one(await queries.get_template(conn, tenant_id=tenant_id, id=template_id), WaTemplate)


async def list_page(
    conn: Any, tenant_id: UUID, params: ListParams, filters: dict[str, str | None]
) -> tuple[list[WaTemplate], int]:
    rows = await queries.list_templates(conn, tenant_id=tenant_id, **filters, **params.sql_args())
    total = await queries.count_templates(conn, tenant_id=tenant_id, **filters)
    return many(rows, WaTemplate), total


async def exists(conn: Any, tenant_id: UUID, business_account_id: str, name: str, language: str) -> bool:
    return bool(
        await queries.template_exists(
            conn, tenant_id=tenant_id, business_account_id=business_account_id, name=name, language=language
        )
    )


async def insert(
    conn: asyncpg.Connection,
    tenant_id: UUID,
    *,
    business_account_id: str,
    provider_template_id: str | None,
    name: str,
    language: str,
    category: str,
    status: str,
    components: list[Any],
    created_by: UUID | None,
) -> UUID:
    return await queries.insert_template(
        conn,
        tenant_id=tenant_id,
        business_account_id=business_account_id,
        provider_template_id=provider_template_id,
        name=name,
        language=language,
        category=category,
        status=status,
        components=components,
        created_by=created_by,
    )


async def upsert_synced(
    conn: asyncpg.Connection, tenant_id: UUID, business_account_id: str, fields: dict[str, Any]
) -> str:
    """created, updated or unchanged."""
    row = await queries.upsert_synced_template(
        conn, tenant_id=tenant_id, business_account_id=business_account_id, **fields
    )
    if row is None:
        return "unchanged"
    return "created" if row["created"] else "updated"


async def delete(conn: asyncpg.Connection, tenant_id: UUID, template_id: UUID) -> asyncpg.Record | None:
    return await queries.delete_template(conn, tenant_id=tenant_id, id=template_id)


async def set_header_media_url(conn: asyncpg.Connection, tenant_id: UUID, template_id: UUID, url: str | None) -> None:
    await queries.set_header_media_url(conn, tenant_id=tenant_id, id=template_id, header_media_url=url)


async def for_send(conn: Any, tenant_id: UUID, name: str, language: str) -> WaTemplate | None:
    return one(await queries.template_for_send(conn, tenant_id=tenant_id, name=name, language=language), WaTemplate)


async def apply_review(conn: Any, tenant_id: UUID, business_account_id: str, **news: str | None) -> int:
    rows = await queries.apply_review(conn, tenant_id=tenant_id, business_account_id=business_account_id, **news)
    return len(rows)
