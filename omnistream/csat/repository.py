from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from omnistream.csat.schemas import CsatSurvey
from omnistream.db import load_queries
from omnistream.kit.records import one

queries = load_queries("csat")


async def close_expired(conn: asyncpg.Connection, tenant_id: UUID, conversation_id: UUID, now: datetime) -> None:
    await queries.close_expired(conn, tenant_id=tenant_id, conversation_id=conversation_id, now=now)


async def open_survey_exists(conn: asyncpg.Connection, tenant_id: UUID, conversation_id: UUID) -> bool:
    return bool(await queries.open_survey_exists(conn, tenant_id=tenant_id, conversation_id=conversation_id))


async def survey_for_event_exists(conn: asyncpg.Connection, tenant_id: UUID, event_id: UUID) -> bool:
    return bool(await queries.survey_for_event_exists(conn, tenant_id=tenant_id, event_id=event_id))


async def insert(conn: asyncpg.Connection, tenant_id: UUID, **fields: Any) -> UUID:
    return await queries.insert_survey(conn, tenant_id=tenant_id, **fields)


async def latest(conn: Any, tenant_id: UUID, conversation_id: UUID, now: datetime) -> CsatSurvey | None:
    row = await queries.latest_survey(conn, tenant_id=tenant_id, conversation_id=conversation_id, now=now)
    return one(row, CsatSurvey)


async def tenant_by_token_hash(conn: asyncpg.Connection, token_hash: bytes) -> UUID | None:
    return await queries.tenant_by_token_hash(conn, token_hash=token_hash)


async def lock_by_token_hash(conn: asyncpg.Connection, tenant_id: UUID, token_hash: bytes) -> asyncpg.Record | None:
    return await queries.lock_by_token_hash(conn, tenant_id=tenant_id, token_hash=token_hash)


async def submit(
    conn: asyncpg.Connection, tenant_id: UUID, survey_id: UUID, rating: int, comment: str | None, now: datetime
) -> None:
    await queries.submit(conn, tenant_id=tenant_id, id=survey_id, rating=rating, comment=comment, now=now)


async def send_on_resolve(conn: Any, tenant_id: UUID) -> bool:
    return bool(await queries.send_on_resolve(conn, tenant_id=tenant_id))


async def set_send_on_resolve(
    conn: asyncpg.Connection, tenant_id: UUID, enabled: bool, user_id: UUID | None, now: datetime
) -> None:
    await queries.set_send_on_resolve(conn, tenant_id=tenant_id, send_on_resolve=enabled, user_id=user_id, now=now)


async def analytics(
    conn: Any, tenant_id: UUID, created_from: datetime | None, created_to: datetime | None
) -> list[asyncpg.Record]:
    return list(await queries.analytics(conn, tenant_id=tenant_id, created_from=created_from, created_to=created_to))
