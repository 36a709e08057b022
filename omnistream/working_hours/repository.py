from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from omnistream.db import load_queries
from omnistream.working_hours.schemas import Holiday, Period, Schedule

queries = load_queries("working_hours")


def _schedule(row: Any) -> Schedule:
    return Schedule(
        periods=msgspec.convert(row["periods"], list[Period]),
        holidays=msgspec.convert(row["holidays"], list[Holiday]),
        updated_at=row["updated_at"],
    )


async def get_schedules(
    conn: asyncpg.Connection, tenant_id: UUID, division_id: UUID | None
) -> tuple[Schedule | None, Schedule | None]:
    """(the global schedule, the division's override); None for one never set."""
    rows = await queries.get_schedules(conn, tenant_id=tenant_id, division_id=division_id)
    by_division = {row["division_id"]: _schedule(row) for row in rows}
    return by_division.get(None), by_division.get(division_id) if division_id is not None else None


async def get_effective(
    conn: asyncpg.Connection, tenant_id: UUID, division_id: UUID | None
) -> tuple[list[Period], list[Holiday]]:
    row = await queries.get_effective_schedule(conn, tenant_id=tenant_id, division_id=division_id)
    if row is None:
        return [], []
    return msgspec.convert(row["periods"], list[Period]), msgspec.convert(row["holidays"], list[Holiday])


async def upsert(
    conn: asyncpg.Connection,
    tenant_id: UUID,
    division_id: UUID | None,
    *,
    periods: list[Period],
    holidays: list[Holiday],
    updated_by: UUID,
) -> Schedule:
    row = await queries.upsert_schedule(
        conn,
        tenant_id=tenant_id,
        division_id=division_id,
        periods=periods,
        holidays=holidays,
        updated_by=updated_by,
    )
    return _schedule(row)


async def delete_division_override(conn: asyncpg.Connection, tenant_id: UUID, division_id: UUID) -> bool:
    return await queries.delete_division_schedule(conn, tenant_id=tenant_id, division_id=division_id) is not None
