from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from litestar import Controller, get, post
from litestar.params import FromPath, FromQuery, JSONBody, PathParameter, QueryParameter
from litestar.response import Stream

from omnistream.automation.schemas import TriggerType
from omnistream.automation_events import service
from omnistream.automation_events.schemas import (
    AutomationEvent,
    AutomationRunDetail,
    CleanedUp,
    Cleanup,
    EventList,
    EventRetried,
    EventStats,
    EventStatus,
    ReplayContext,
    Reprocessed,
    RetriedEvents,
    RetryFailed,
    RunList,
    WorkerMetrics,
)
from omnistream.kit.deps import DB, CurrentActor, Jobs, Paging
from omnistream.kit.pagination import QueryDateTime
from omnistream.kit.schema import pattern
from omnistream.security.guards import access

MANAGE = access("supervisor", "automation.manage")
FINGERPRINT = pattern(r"^[0-9a-f]{64}$", "must be a SHA-256 digest: 64 lowercase hexadecimal digits")
Fingerprint = Annotated[str | None, QueryParameter(pattern=FINGERPRINT, description="SHA-256 hex digest of a payload")]
SOURCE = pattern(r"^[a-z_]+$", "may hold only lowercase letters and _")
Source = Annotated[
    str | None,
    QueryParameter(
        min_length=1, max_length=50, pattern=SOURCE, description="Who wrote the event: ingestion, api, automation ..."
    ),
]
ExportLimit = Annotated[int, QueryParameter(ge=1, le=1_000_000, description="At most this many rows")]
WindowDays = Annotated[int, QueryParameter(ge=1, le=365, description="The last this many days")]
CSV_DESCRIPTION = (
    "A CSV file (UTF-8, a header row), streamed: read in batches, however many rows it has. Times are "
    "RFC 3339 UTC; `result` and `payload` are JSON; a text that a spreadsheet would run as a formula "
    "starts with a single quote."
)

RunSort = Literal["created_at", "matched", "executed", "rule_id", "event_id"]
EventSort = Literal["created_at", "available_at", "processed_at", "attempts", "status", "event_type"]
SORT_NOTE = " A cursor continues the created_at order; other orders page by number."


def _csv(name: str, rows: object) -> Stream:
    return Stream(
        rows,  # type: ignore[arg-type]
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}.csv"'},
    )


class RunController(Controller):
    path = "/api/automation-runs"
    tags = ["Automation"]

    @get(
        operation_id="listAutomationRuns",
        summary="List automation rule runs",
        opt=MANAGE,
        description="Paginated (cursor or offset)." + SORT_NOTE,
    )
    async def list_runs(
        self,
        db: DB,
        actor: CurrentActor,
        params: Paging,
        rule_id: FromQuery[UUID | None] = None,
        event_id: FromQuery[UUID | None] = None,
        matched: FromQuery[bool | None] = None,
        executed: FromQuery[bool | None] = None,
        sort_by: FromQuery[RunSort] = "created_at",
    ) -> RunList:
        return await service.list_runs(
            db, actor, params, sort_by, rule_id=rule_id, event_id=event_id, matched=matched, executed=executed
        )

    @get(
        "/export",
        operation_id="exportAutomationRuns",
        summary="Export automation runs as CSV",
        opt=MANAGE,
        media_type="text/csv",
        description=CSV_DESCRIPTION,
    )
    async def export_runs(
        self,
        db: DB,
        actor: CurrentActor,
        limit: ExportLimit = 100_000,
        rule_id: FromQuery[UUID | None] = None,
        event_id: FromQuery[UUID | None] = None,
        matched: FromQuery[bool | None] = None,
        executed: FromQuery[bool | None] = None,
        sort_by: FromQuery[Literal["created_at"]] = "created_at",
        sort_order: FromQuery[Literal["asc", "desc"]] = "desc",
        created_from: QueryDateTime = None,
        created_to: QueryDateTime = None,
    ) -> Stream:
        rows = service.export_runs(
            db,
            actor,
            descending=sort_order == "desc",
            limit=limit,
            created_from=created_from,
            created_to=created_to,
            rule_id=rule_id,
            event_id=event_id,
            matched=matched,
            executed=executed,
        )
        return _csv("automation-runs", rows)

    @get(
        "/by-rule/{rule_id:uuid}",
        operation_id="listAutomationRunsByRule",
        summary="List automation runs for a specific rule",
        opt=MANAGE,
        description="The runs of a rule (one that was deleted keeps its runs)." + SORT_NOTE,
    )
    async def by_rule(
        self,
        db: DB,
        actor: CurrentActor,
        params: Paging,
        rule_id: FromPath[UUID],
        event_id: FromQuery[UUID | None] = None,
        sort_by: FromQuery[Literal["created_at", "matched", "executed", "event_id"]] = "created_at",
    ) -> RunList:
        return await service.list_runs(db, actor, params, sort_by, rule_id=rule_id, event_id=event_id)

    @get(
        "/by-event/{event_id:uuid}",
        operation_id="listAutomationRunsByEvent",
        summary="List automation runs for a specific event",
        opt=MANAGE,
        description=SORT_NOTE.strip(),
    )
    async def by_event(
        self,
        db: DB,
        actor: CurrentActor,
        params: Paging,
        event_id: FromPath[UUID],
        rule_id: FromQuery[UUID | None] = None,
        sort_by: FromQuery[Literal["created_at", "matched", "executed", "rule_id"]] = "created_at",
    ) -> RunList:
        return await service.list_runs(db, actor, params, sort_by, rule_id=rule_id, event_id=event_id)

    @get("/{run_id:uuid}", operation_id="getAutomationRun", summary="Get a single automation run by ID", opt=MANAGE)
    async def get_run(self, db: DB, actor: CurrentActor, run_id: FromPath[UUID]) -> AutomationRunDetail:
        return await service.get_run(db, actor, run_id)

    @get(
        "/{run_id:uuid}/replay-context",
        operation_id="getAutomationRunReplayContext",
        summary="Get replay context for an automation run",
        opt=MANAGE,
        description="The run, its event's payload, and the rule's conditions and actions as they were when it "
        "ran (a webhook's secret is not shown).",
    )
    async def replay_context(self, db: DB, actor: CurrentActor, run_id: FromPath[UUID]) -> ReplayContext:
        return await service.replay_context(db, actor, run_id)


class EventController(Controller):
    path = "/api/automation-events"
    tags = ["Automation"]

    @get(
        operation_id="listAutomationEvents",
        summary="List automation event queue items",
        opt=MANAGE,
        description=SORT_NOTE.strip(),
    )
    async def list_events(
        self,
        db: DB,
        actor: CurrentActor,
        params: Paging,
        status: FromQuery[EventStatus | None] = None,
        event_type: FromQuery[TriggerType | None] = None,
        source: Source = None,
        payload_hash: Fingerprint = None,
        sort_by: FromQuery[EventSort] = "created_at",
    ) -> EventList:
        return await service.list_events(
            db, actor, params, sort_by, status=status, event_type=event_type, source=source, payload_hash=payload_hash
        )

    @get("/stats", operation_id="getAutomationEventStats", summary="Automation event queue stats", opt=MANAGE)
    async def stats(self, db: DB, actor: CurrentActor, window_days: WindowDays = 7) -> EventStats:
        return await service.event_stats(db, actor, window_days)

    @get(
        "/export",
        operation_id="exportAutomationEvents",
        summary="Export automation events as CSV",
        opt=MANAGE,
        media_type="text/csv",
        description=CSV_DESCRIPTION,
    )
    async def export_events(
        self,
        db: DB,
        actor: CurrentActor,
        limit: ExportLimit = 100_000,
        status: FromQuery[EventStatus | None] = None,
        event_type: FromQuery[TriggerType | None] = None,
        source: Source = None,
        payload_hash: Fingerprint = None,
        sort_by: FromQuery[Literal["created_at"]] = "created_at",
        sort_order: FromQuery[Literal["asc", "desc"]] = "desc",
        created_from: QueryDateTime = None,
        created_to: QueryDateTime = None,
    ) -> Stream:
        rows = service.export_events(
            db,
            actor,
            descending=sort_order == "desc",
            limit=limit,
            created_from=created_from,
            created_to=created_to,
            status=status,
            event_type=event_type,
            source=source,
            payload_hash=payload_hash,
        )
        return _csv("automation-events", rows)

    @post(
        "/retry-failed",
        operation_id="retryFailedAutomationEvents",
        summary="Retry all failed automation events",
        opt=MANAGE,
        status_code=200,
        description="Resets failed events (the oldest first, at most `limit`) to pending, their attempts "
        "counted afresh.",
    )
    async def retry_failed(
        self, db: DB, actor: CurrentActor, data: JSONBody[RetryFailed | None] = None
    ) -> RetriedEvents:
        return await service.retry_failed(db, actor, data or RetryFailed())

    @post(
        "/cleanup",
        operation_id="cleanupAutomationEvents",
        summary="Clean up old failed automation events",
        opt=MANAGE,
        status_code=200,
        description="Deletes failed events created more than `older_than_days` days ago (at most `limit`), "
        "and their runs.",
    )
    async def cleanup(self, db: DB, actor: CurrentActor, data: JSONBody[Cleanup | None] = None) -> CleanedUp:
        return await service.cleanup(db, actor, data or Cleanup())

    @get(
        "/by-conversation/{conversation_id:uuid}",
        operation_id="listAutomationEventsByConversation",
        summary="List automation events for a conversation",
        opt=MANAGE,
        description=SORT_NOTE.strip(),
    )
    async def by_conversation(
        self,
        db: DB,
        actor: CurrentActor,
        params: Paging,
        conversation_id: FromPath[UUID],
        status: FromQuery[EventStatus | None] = None,
        event_type: FromQuery[TriggerType | None] = None,
        source: Source = None,
        sort_by: FromQuery[EventSort] = "created_at",
    ) -> EventList:
        return await service.list_events(
            db,
            actor,
            params,
            sort_by,
            conversation_id=conversation_id,
            status=status,
            event_type=event_type,
            source=source,
        )

    @get(
        "/by-rule/{rule_id:uuid}",
        operation_id="listAutomationEventsByRule",
        summary="List automation events for a rule",
        opt=MANAGE,
        description="The events the rule ran on (that have a run of it)." + SORT_NOTE,
    )
    async def by_rule(
        self,
        db: DB,
        actor: CurrentActor,
        params: Paging,
        rule_id: FromPath[UUID],
        status: FromQuery[EventStatus | None] = None,
        event_type: FromQuery[TriggerType | None] = None,
        source: Source = None,
        payload_hash: Fingerprint = None,
        sort_by: FromQuery[EventSort] = "created_at",
    ) -> EventList:
        return await service.list_events(
            db,
            actor,
            params,
            sort_by,
            rule_id=rule_id,
            status=status,
            event_type=event_type,
            source=source,
            payload_hash=payload_hash,
        )

    @get(
        "/by-fingerprint/{payload_hash:str}",
        operation_id="listAutomationEventsByFingerprint",
        summary="List automation events by payload fingerprint",
        opt=MANAGE,
        description="Every event with the SHA-256 payload hash, newest first (at most 1,000).",
    )
    async def by_fingerprint(
        self,
        db: DB,
        actor: CurrentActor,
        payload_hash: Annotated[str, PathParameter(pattern=FINGERPRINT, description="64-char hex SHA-256 digest")],
    ) -> list[AutomationEvent]:
        return await service.events_by_fingerprint(db, actor, payload_hash)

    @get(
        "/{event_id:uuid}", operation_id="getAutomationEvent", summary="Get a single automation event by ID", opt=MANAGE
    )
    async def get_event(self, db: DB, actor: CurrentActor, event_id: FromPath[UUID]) -> AutomationEvent:
        return await service.get_event(db, actor, event_id)

    @post(
        "/{event_id:uuid}/retry",
        operation_id="retryAutomationEvent",
        summary="Retry a single automation event",
        opt=MANAGE,
        status_code=200,
        description="Resets a failed or done event to pending, its attempts counted afresh; 409 while a worker "
        "processes it. Rules that already ran for the event do not run again.",
    )
    async def retry(self, db: DB, actor: CurrentActor, event_id: FromPath[UUID]) -> EventRetried:
        return await service.retry_event(db, actor, event_id)

    @post(
        "/{event_id:uuid}/reprocess",
        operation_id="reprocessAutomationEvent",
        summary="Reprocess an automation event with the current rule set",
        opt=MANAGE,
        status_code=200,
        description="Evaluates the stored event now against the current rules: each matching rule that has no "
        "run for the event yet runs (a rule runs once per event); answers every run of the event.",
    )
    async def reprocess(self, db: DB, arq: Jobs, actor: CurrentActor, event_id: FromPath[UUID]) -> Reprocessed:
        return await service.reprocess(db, arq, actor, event_id)


class WorkerMetricsController(Controller):
    path = "/api/automation-worker"
    tags = ["Automation"]

    @get(
        "/metrics",
        operation_id="getAutomationWorkerMetrics",
        summary="Get automation worker metrics",
        opt=MANAGE,
        description="Per event type: events claimed, done, retried (an attempt failed and waits) and failed for "
        "good, counted by the workers since the organisation began; and the age of its oldest waiting event.",
    )
    async def metrics(self, db: DB, actor: CurrentActor) -> list[WorkerMetrics]:
        return await service.worker_metrics(db, actor)


CONTROLLERS = [RunController, EventController, WorkerMetricsController]
