"""The automation event queue and the runs of rules on its events: listings, exports, retries.

The worker's processing is `processing.py`; this module is what supervisors see and do.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import msgspec
from arq import ArqRedis

from omnistream.activity import service as activity
from omnistream.automation.service import REDACTED
from omnistream.automation_events import repository
from omnistream.automation_events.schemas import (
    AutomationEvent,
    AutomationRun,
    AutomationRunDetail,
    CleanedUp,
    Cleanup,
    EventList,
    EventRetried,
    EventStats,
    ReplayContext,
    Reprocessed,
    RetriedEvents,
    RetryFailed,
    RunList,
    WorkerMetrics,
)
from omnistream.db import Database
from omnistream.errors import Conflict, Unprocessable, not_found
from omnistream.kit.pagination import ListParams, date_range, page_of
from omnistream.security.principal import Actor

EXPORT_BATCH = 1000


def _check_cursor(params: ListParams, sort_by: str) -> None:
    if params.cursor is not None and sort_by != "created_at":
        raise Unprocessable(
            "a cursor continues the created_at order only; page by number for other orders", field="cursor"
        )


# ------------------------------------------------------------------ runs


async def list_runs(db: Database, actor: Actor, params: ListParams, sort_by: str, **filters: Any) -> RunList:
    _check_cursor(params, sort_by)
    async with db.read(actor.tenant_id) as conn:
        rows, total = await repository.list_runs(conn, actor.tenant_id, params, sort_by, filters)
    rows, next_cursor = page_of(rows, params) if sort_by == "created_at" else (rows[: params.per_page], None)
    return RunList(runs=rows, next_cursor=next_cursor, total=total)


async def get_run(db: Database, actor: Actor, run_id: UUID) -> AutomationRunDetail:
    async with db.read(actor.tenant_id) as conn:
        run = await repository.get_run(conn, actor.tenant_id, run_id)
    if run is None:
        raise not_found("automation run")
    return run


def redact_actions(actions: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Actions as shown to people: a webhook's secret is never shown again."""
    return [a | {"secret": REDACTED} if a.get("type") == "send_webhook" and a.get("secret") else a for a in actions]


async def replay_context(db: Database, actor: Actor, run_id: UUID) -> ReplayContext:
    async with db.read(actor.tenant_id) as conn:
        row = await repository.replay_context(conn, actor.tenant_id, run_id)
    if row is None:
        raise not_found("automation run")
    run = msgspec.convert({k: row[k] for k in AutomationRun.__struct_fields__}, AutomationRun)
    snapshot = row["rule_snapshot"] or {}
    return ReplayContext(
        run=run,
        event_payload=row["event_payload"] or {},
        rule_conditions=snapshot.get("conditions", {}),
        rule_actions=redact_actions(snapshot.get("actions", [])),
    )


RUN_COLUMNS = (
    "id",
    "created_at",
    "rule_id",
    "rule_name",
    "event_id",
    "event_type",
    "conversation_id",
    "matched",
    "executed",
    "outcome",
    "duration_ms",
    "result",
)
EVENT_COLUMNS = (
    "id",
    "created_at",
    "event_type",
    "status",
    "source",
    "conversation_id",
    "contact_id",
    "attempts",
    "available_at",
    "processed_at",
    "error",
    "payload_hash",
    "payload",
)
# Cells a spreadsheet would run as a formula when opened (OWASP's CSV injection advice).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dict | list):
        return msgspec.json.encode(value).decode()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return "" if value is None else value


async def _csv(
    db: Database,
    tenant_id: UUID,
    columns: Sequence[str],
    fetch: Callable[..., Any],
    filters: dict[str, Any],
    descending: bool,
    limit: int,
) -> AsyncIterator[bytes]:
    """The rows as CSV, a batch at a time: a header, then at most `limit` rows, never all in memory."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    yield buffer.getvalue().encode()
    after, sent = None, 0
    while sent < limit:
        async with db.read(tenant_id) as conn:
            rows = await fetch(conn, tenant_id, filters, descending, after, min(EXPORT_BATCH, limit - sent))
        if not rows:
            break
        buffer.seek(0)
        buffer.truncate()
        for row in rows:
            writer.writerow([_cell(row[column]) for column in columns])
        yield buffer.getvalue().encode()
        sent += len(rows)
        after = (rows[-1]["created_at"], rows[-1]["id"])
        if len(rows) < EXPORT_BATCH:
            break


def export_runs(
    db: Database,
    actor: Actor,
    *,
    descending: bool,
    limit: int,
    created_from: str | None,
    created_to: str | None,
    **f: Any,
) -> AsyncIterator[bytes]:
    f["created_from"], f["created_to"] = date_range(created_from, created_to)
    return _csv(db, actor.tenant_id, RUN_COLUMNS, repository.export_runs_batch, f, descending, limit)


# ------------------------------------------------------------------ events


async def list_events(db: Database, actor: Actor, params: ListParams, sort_by: str, **filters: Any) -> EventList:
    _check_cursor(params, sort_by)
    async with db.read(actor.tenant_id) as conn:
        rows, total = await repository.list_events(conn, actor.tenant_id, params, sort_by, filters)
    rows, next_cursor = page_of(rows, params) if sort_by == "created_at" else (rows[: params.per_page], None)
    return EventList(events=rows, next_cursor=next_cursor, total=total)


async def events_by_fingerprint(db: Database, actor: Actor, payload_hash: str) -> list[AutomationEvent]:
    """Every event with the fingerprint, newest first (a payload's events are few)."""
    params = ListParams(page=1, per_page=1000, cursor=None, descending=True)
    async with db.read(actor.tenant_id) as conn:
        rows, _ = await repository.list_events(
            conn, actor.tenant_id, params, "created_at", {"payload_hash": payload_hash}
        )
    return rows[:1000]


async def get_event(db: Database, actor: Actor, event_id: UUID) -> AutomationEvent:
    async with db.read(actor.tenant_id) as conn:
        event = await repository.get_event(conn, actor.tenant_id, event_id)
    if event is None:
        raise not_found("automation event")
    return event


async def event_stats(db: Database, actor: Actor, window_days: int) -> EventStats:
    async with db.read(actor.tenant_id) as conn:
        return await repository.event_stats(conn, actor.tenant_id, datetime.now(UTC) - timedelta(days=window_days))


def export_events(
    db: Database,
    actor: Actor,
    *,
    descending: bool,
    limit: int,
    created_from: str | None,
    created_to: str | None,
    **f: Any,
) -> AsyncIterator[bytes]:
    f["created_from"], f["created_to"] = date_range(created_from, created_to)
    return _csv(db, actor.tenant_id, EVENT_COLUMNS, repository.export_events_batch, f, descending, limit)


async def retry_event(db: Database, actor: Actor, event_id: UUID) -> EventRetried:
    async with db.tenant(actor.tenant_id) as conn:
        event = await repository.get_event(conn, actor.tenant_id, event_id)
        if event is None:
            raise not_found("automation event")
        if not await repository.retry_one(conn, actor.tenant_id, event_id):
            raise Conflict("the event is being processed now; retry it once it is done or failed")
        await activity.record(conn, actor, "automation_event.retried", "automation_event", event_id)
    return EventRetried(message="event queued for retry", id=event_id)


async def retry_failed(db: Database, actor: Actor, data: RetryFailed) -> RetriedEvents:
    async with db.tenant(actor.tenant_id) as conn:
        count = await repository.retry_failed(conn, actor.tenant_id, data.limit)
        if count:
            await activity.record(conn, actor, "automation_event.retried_failed", "automation_event", None, count=count)
    return RetriedEvents(message=f"{count} failed events queued for retry", retried_count=count)


async def cleanup(db: Database, actor: Actor, data: Cleanup) -> CleanedUp:
    before = datetime.now(UTC) - timedelta(days=data.older_than_days)
    async with db.tenant(actor.tenant_id) as conn:
        count = await repository.cleanup_failed(conn, actor.tenant_id, before, data.limit)
        if count:
            await activity.record(
                conn,
                actor,
                "automation_event.cleaned_up",
                "automation_event",
                None,
                count=count,
                before=before.isoformat(),
            )
    return CleanedUp(message=f"{count} failed events deleted", deleted_count=count)


async def reprocess(db: Database, arq: ArqRedis, actor: Actor, event_id: UUID) -> Reprocessed:
    from omnistream.automation_events.processing import reprocess_event

    async with db.read(actor.tenant_id) as conn:
        if await repository.get_event(conn, actor.tenant_id, event_id) is None:
            raise not_found("automation event")
    await reprocess_event(db, arq, actor, event_id)
    async with db.read(actor.tenant_id) as conn:
        params = ListParams(page=1, per_page=100, cursor=None, descending=False)
        runs, _ = await repository.list_runs(conn, actor.tenant_id, params, "created_at", {"event_id": event_id})
    return Reprocessed(message="event reprocessed with the current rules", id=event_id, runs=runs)


async def worker_metrics(db: Database, actor: Actor) -> list[WorkerMetrics]:
    async with db.read(actor.tenant_id) as conn:
        rows = await repository.worker_counters(conn, actor.tenant_id)
        lag = await repository.event_lag(conn, actor.tenant_id)
    return [
        WorkerMetrics(
            event_type=row["event_type"],
            claimed_events=row["claimed_events"],
            retried_events=row["retried_events"],
            failed_events=row["failed_events"],
            done_events=row["done_events"],
            lag_seconds=round(lag, 3),
        )
        for row in rows
    ]
