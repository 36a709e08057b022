"""The automation event queue and the runs of rules on its events, as the API shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

from omnistream.automation.schemas import TriggerType
from omnistream.kit.schema import Input, Schema

EventStatus = Literal["pending", "processing", "done", "failed"]
Outcome = Literal["executed", "failed", "cooldown"]


class ActionOutcome(Schema):
    """What one action of a run did."""

    type: str
    ok: bool
    detail: dict[str, Any] = {}
    """What it did (the agent assigned, the message queued, the webhook's answer ...)."""
    error: str | None = None


class RunResult(Schema):
    """A run's `result`: its outcome and each action's."""

    outcome: Outcome
    """executed: every action succeeded; failed: one failed (the rest did not run); cooldown:
    the rule matched but had run for the conversation less than cooldown_secs before."""
    actions: list[ActionOutcome] = []
    duration_ms: float = 0.0


class AutomationRun(Schema):
    id: UUID
    event_id: UUID
    rule_id: UUID
    rule_name: str
    conversation_id: UUID
    matched: bool
    executed: bool
    result: dict[str, Any]
    """The run's outcome and each action's (RunResult)."""
    created_at: datetime


class AutomationRunDetail(AutomationRun):
    event_type: str | None = None
    event_source: str | None = None
    event_status: str | None = None
    contact_id: UUID | None = None
    channel_source: str | None = None


class RunList(Schema):
    runs: list[AutomationRun]
    next_cursor: str | None
    total: int


class ReplayContext(Schema):
    """A run, its event's payload and its rule as it was when it ran."""

    run: AutomationRun
    event_payload: dict[str, Any]
    rule_conditions: dict[str, Any]
    rule_actions: list[dict[str, Any]]


class AutomationEvent(Schema):
    id: UUID
    event_type: str
    conversation_id: UUID
    payload: dict[str, Any]
    payload_hash: str
    """SHA-256 hex digest of the payload."""
    source: str
    status: EventStatus
    attempts: int
    available_at: datetime
    created_at: datetime
    contact_id: UUID | None = None
    processed_at: datetime | None = None
    error: str | None = None


class EventList(Schema):
    events: list[AutomationEvent]
    next_cursor: str | None
    total: int


class EventStats(Schema):
    total_events: int
    pending_events: int
    processing_events: int
    done_events: int
    failed_events: int


class RetryFailed(Input):
    limit: Annotated[int, msgspec.Meta(ge=1, le=10_000, description="At most this many events")] = 1000


class RetriedEvents(Schema):
    message: str
    retried_count: int


class Cleanup(Input):
    older_than_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] = 30
    limit: Annotated[int, msgspec.Meta(ge=1, le=100_000, description="At most this many events")] = 10_000


class CleanedUp(Schema):
    message: str
    deleted_count: int


class EventRetried(Schema):
    message: str
    id: UUID


class Reprocessed(Schema):
    message: str
    id: UUID
    runs: list[AutomationRun]
    """Every run of the event after reprocessing, the new ones included."""


class WorkerMetrics(Schema):
    event_type: TriggerType | str
    claimed_events: int
    retried_events: int
    failed_events: int
    done_events: int = 0
    lag_seconds: float = 0.0
    """How long the oldest event still waiting (of any type) has waited."""
