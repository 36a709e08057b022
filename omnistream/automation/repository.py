from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from omnistream.automation.schemas import AutomationControl, AutomationRule
from omnistream.db import load_queries
from omnistream.kit.records import many, one

queries = load_queries("automation")


async def insert_events(conn: asyncpg.Connection, events: list[dict[str, Any]]) -> None:
    await queries.insert_events(conn, events)


async def rules_for_matching(conn: asyncpg.Connection, tenant_id: UUID) -> list[AutomationRule]:
    return many(await queries.rules_for_matching(conn, tenant_id=tenant_id), AutomationRule)


async def control(conn: asyncpg.Connection, tenant_id: UUID) -> tuple[AutomationControl | None, int]:
    """The tenant's control state (None when never set) and its rules version."""
    row = await queries.get_control(conn, tenant_id=tenant_id)
    if row is None:
        return None, 1
    return one(row, AutomationControl), row["rules_version"]
