from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from omnistream.automation_events.schemas import AutomationEvent, AutomationRun, AutomationRunDetail, EventStats
from omnistream.db import load_queries
from omnistream.kit.pagination import ListParams
from omnistream.kit.records import many, one

queries = load_queries("automation_events")


# ------------------------------------------------------------------ the workers


async def claim_due(conn: asyncpg.Connection, limit: int, lease: timedelta) -> list[asyncpg.Record]:
    return await queries.claim_due(conn, limit=limit, lease=lease)


async def finish(conn: asyncpg.Connection, tenant_id: UUID, claims: Sequence[tuple[UUID, int]]) -> set[UUID]:
    rows = await queries.finish_events(
        conn, tenant_id=tenant_id, ids=[c[0] for c in claims], attempts=[c[1] for c in claims]
    )
    return {row["id"] for row in rows}


async def retry(
    conn: asyncpg.Connection,
    tenant_id: UUID,
    event_id: UUID,
    attempts: int,
    *,
    delay: timedelta,
    give_up: bool,
    error: str,
) -> str | None:
    return await queries.retry_event(
        conn, tenant_id=tenant_id, id=event_id, attempts=attempts, delay=delay, give_up=give_up, error=error
    )


async def lock_claimed(conn: asyncpg.Connection, tenant_id: UUID, event_id: UUID, attempts: int) -> set[UUID] | None:
    """The rules that already ran for the claimed event, or None when the claim is no longer ours."""
    row = await queries.lock_event(conn, tenant_id=tenant_id, id=event_id, attempts=attempts)
    return None if row is None else set(row["already_run"])


async def count_worker_events(conn: asyncpg.Connection, tenant_id: UUID, counts: dict[str, list[int]]) -> None:
    """counts: event type -> [claimed, done, retried, failed]."""
    types = sorted(counts)
    await queries.count_worker_events(
        conn,
        tenant_id=tenant_id,
        event_types=types,
        claimed=[counts[t][0] for t in types],
        done=[counts[t][1] for t in types],
        retried=[counts[t][2] for t in types],
        failed=[counts[t][3] for t in types],
    )


async def last_runs(
    conn: asyncpg.Connection, tenant_id: UUID, conversation_id: UUID, rule_ids: list[UUID]
) -> dict[UUID, datetime]:
    rows = await queries.last_runs(conn, tenant_id=tenant_id, conversation_id=conversation_id, rule_ids=rule_ids)
    return {row["rule_id"]: row["at"] for row in rows}


async def existing_runs(conn: asyncpg.Connection, tenant_id: UUID, event_id: UUID) -> set[UUID]:
    return {row["rule_id"] for row in await queries.existing_runs(conn, tenant_id=tenant_id, event_id=event_id)}


async def insert_run(conn: asyncpg.Connection, tenant_id: UUID, **run: Any) -> UUID | None:
    """The run's id, or None when the event already has a run of that rule."""
    return await queries.insert_run(conn, tenant_id=tenant_id, **run)


async def last_round_robin_agent(
    conn: asyncpg.Connection, tenant_id: UUID, rule_id: UUID, division_id: UUID
) -> UUID | None:
    return await queries.last_round_robin_agent(conn, tenant_id=tenant_id, rule_id=rule_id, division_id=division_id)


async def lock_for_reprocess(conn: asyncpg.Connection, tenant_id: UUID, event_id: UUID) -> asyncpg.Record | None:
    return await queries.lock_for_reprocess(conn, tenant_id=tenant_id, id=event_id)


async def mark_done(conn: asyncpg.Connection, tenant_id: UUID, event_id: UUID) -> None:
    await queries.mark_done(conn, tenant_id=tenant_id, id=event_id)


async def lock_run_for_webhooks(conn: asyncpg.Connection, tenant_id: UUID, run_id: UUID) -> asyncpg.Record | None:
    return await queries.get_run_for_webhooks(conn, tenant_id=tenant_id, id=run_id)


async def set_run_result(
    conn: asyncpg.Connection, tenant_id: UUID, run_id: UUID, result: dict[str, Any], webhooks_pending: bool
) -> None:
    await queries.set_run_result(conn, tenant_id=tenant_id, id=run_id, result=result, webhooks_pending=webhooks_pending)


async def runs_with_pending_webhooks(conn: asyncpg.Connection, older_than: timedelta, limit: int) -> list[Any]:
    return await queries.runs_with_pending_webhooks(conn, older_than=older_than, limit=limit)


# ------------------------------------------------------------------ runs


def _order(params: ListParams, sort_by: str) -> dict[str, Any]:
    """The flags that pick a list's ORDER BY line; a cursor continues only the creation order."""
    direction = "desc" if params.descending else "asc"
    args = params.sql_args()
    if sort_by != "created_at":
        args[f"after_{direction}"] = False
    return args | {f"by_{sort_by}_{direction}": True}


async def list_runs(
    conn: asyncpg.Connection, tenant_id: UUID, params: ListParams, sort_by: str, filters: dict[str, Any]
) -> tuple[list[AutomationRun], int]:
    rows = await queries.list_runs(conn, tenant_id=tenant_id, **filters, **_order(params, sort_by))
    total = await queries.count_runs(conn, tenant_id=tenant_id, **filters)
    return many(rows, AutomationRun), total


async def export_runs_batch(
    conn: asyncpg.Connection, tenant_id: UUID, filters: dict[str, Any], descending: bool, after: Any, limit: int
) -> list[asyncpg.Record]:
    return await queries.export_runs(conn, tenant_id=tenant_id, **filters, **_export_args(descending, after, limit))


def _export_args(descending: bool, after: tuple[datetime, UUID] | None, limit: int) -> dict[str, Any]:
    direction = "desc" if descending else "asc"
    return {
        direction: True,
        f"after_{direction}": after is not None,
        "cursor_at": after[0] if after else None,
        "cursor_id": after[1] if after else None,
        "limit": limit,
    }


async def get_run(conn: asyncpg.Connection, tenant_id: UUID, run_id: UUID) -> AutomationRunDetail | None:
    return one(await queries.get_run(conn, tenant_id=tenant_id, id=run_id), AutomationRunDetail)


async def replay_context(conn: asyncpg.Connection, tenant_id: UUID, run_id: UUID) -> asyncpg.Record | None:
    return await queries.get_replay_context(conn, tenant_id=tenant_id, id=run_id)


# ------------------------------------------------------------------ events


async def list_events(
    conn: asyncpg.Connection, tenant_id: UUID, params: ListParams, sort_by: str, filters: dict[str, Any]
) -> tuple[list[AutomationEvent], int]:
    rows = await queries.list_events(conn, tenant_id=tenant_id, **filters, **_order(params, sort_by))
    total = await queries.count_events(conn, tenant_id=tenant_id, **filters)
    return many(rows, AutomationEvent), total


async def export_events_batch(
    conn: asyncpg.Connection, tenant_id: UUID, filters: dict[str, Any], descending: bool, after: Any, limit: int
) -> list[asyncpg.Record]:
    return await queries.export_events(conn, tenant_id=tenant_id, **filters, **_export_args(descending, after, limit))


async def get_event(conn: asyncpg.Connection, tenant_id: UUID, event_id: UUID) -> AutomationEvent | None:
    return one(await queries.get_event(conn, tenant_id=tenant_id, id=event_id), AutomationEvent)


async def event_stats(conn: asyncpg.Connection, tenant_id: UUID, since: datetime) -> EventStats:
    stats = one(await queries.event_stats(conn, tenant_id=tenant_id, since=since), EventStats)
    assert stats is not None
    return stats


async def retry_one(conn: asyncpg.Connection, tenant_id: UUID, event_id: UUID) -> bool:
    return await queries.retry_one(conn, tenant_id=tenant_id, id=event_id) is not None


async def retry_failed(conn: asyncpg.Connection, tenant_id: UUID, limit: int) -> int:
    return len(await queries.retry_failed(conn, tenant_id=tenant_id, limit=limit))


async def cleanup_failed(conn: asyncpg.Connection, tenant_id: UUID, before: datetime, limit: int) -> int:
    return len(await queries.cleanup_failed(conn, tenant_id=tenant_id, before=before, limit=limit))


async def worker_counters(conn: asyncpg.Connection, tenant_id: UUID) -> list[asyncpg.Record]:
    return await queries.worker_counters(conn, tenant_id=tenant_id)


async def event_lag(conn: asyncpg.Connection, tenant_id: UUID) -> float:
    return await queries.event_lag(conn, tenant_id=tenant_id)
