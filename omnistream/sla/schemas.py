from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from omnistream.contacts.schemas import Channel
from omnistream.conversations.schemas import Priority
from omnistream.kit.schema import NOT_BLANK, Input, Schema, Text

TargetName = Literal["first_response", "next_response", "resolution"]
TARGETS: tuple[TargetName, ...] = ("first_response", "next_response", "resolution")
MAX_TARGET_MINUTES = 43_200
"""30 days: even counted in business hours of a few hours a week, a due time stays within reach."""
MAX_POSITION = 10_000

Minutes = Annotated[
    int,
    msgspec.Meta(ge=1, le=MAX_TARGET_MINUTES, description=f"Minutes, 1 to {MAX_TARGET_MINUTES} (30 days)"),
]
PolicyName = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=NOT_BLANK)]
Position = Annotated[
    int,
    msgspec.Meta(
        ge=0, le=MAX_POSITION, description="Lower first: the first matching enabled policy applies (ties: the older)"
    ),
]


class SlaTargets(Schema):
    first_response_minutes: Minutes | None = None
    """From the conversation's opening to the first agent reply."""
    next_response_minutes: Minutes | None = None
    """From a customer's message after an agent reply to the next agent reply."""
    resolution_minutes: Minutes | None = None
    """From the opening (or a reopening) to resolved or closed; paused while pending."""


class SlaTargetsInput(Input):
    first_response_minutes: Minutes | None = None
    next_response_minutes: Minutes | None = None
    resolution_minutes: Minutes | None = None


class SlaConditions(Schema):
    """What a conversation must have for the policy to apply; an empty list matches any."""

    channels: list[Channel] = []
    division_ids: list[UUID] = []
    priorities: list[Priority] = []


class SlaConditionsInput(Input):
    channels: Annotated[list[Channel], msgspec.Meta(max_length=4)] = []
    division_ids: Annotated[list[UUID], msgspec.Meta(max_length=100)] = []
    """Divisions of this organisation (422 otherwise)."""
    priorities: Annotated[list[Priority], msgspec.Meta(max_length=4)] = []


class SlaPolicy(Schema):
    id: UUID
    name: str
    description: str | None
    enabled: bool
    position: int
    business_hours: bool
    """True: only the open hours of the conversation's division (else the organisation's) count."""
    targets: SlaTargets
    conditions: SlaConditions
    created_at: datetime
    updated_at: datetime


class SlaPolicyCreate(Input):
    name: PolicyName
    targets: SlaTargetsInput
    """At least one target (422 otherwise)."""
    description: Text | None = None
    enabled: bool = True
    position: Position | None = None
    """Omitted: after every existing policy."""
    business_hours: bool = False
    conditions: SlaConditionsInput | None = None


class SlaPolicyUpdate(Input):
    name: PolicyName | msgspec.UnsetType = msgspec.UNSET
    description: Text | msgspec.UnsetType | None = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    position: Position | msgspec.UnsetType = msgspec.UNSET
    business_hours: bool | msgspec.UnsetType = msgspec.UNSET
    targets: SlaTargetsInput | msgspec.UnsetType = msgspec.UNSET
    """Replaces all three targets (an omitted one is removed); at least one must remain."""
    conditions: SlaConditionsInput | msgspec.UnsetType = msgspec.UNSET
    """Replaces all conditions."""


class SlaPolicyList(Schema):
    sla_policies: list[SlaPolicy]
    """In the order they are tried."""
    total: int


class SlaBreach(Schema):
    id: UUID
    policy_id: UUID
    conversation_id: UUID
    target: TargetName
    due_at: datetime
    breached_at: datetime
    event_id: UUID | None
    """The sla_breached automation event it wrote."""


class SlaBreachList(Schema):
    breaches: list[SlaBreach]
    next_cursor: str | None
    total: int


class SlaTargetStatus(Schema):
    target: TargetName
    policy_id: UUID
    state: Literal["running", "paused", "met", "stopped"]
    started_at: datetime
    due_at: datetime | None
    """None while paused (seconds_left then holds what is left)."""
    met_at: datetime | None
    breached_at: datetime | None
    stopped_at: datetime | None
    paused_at: datetime | None
    seconds_left: int | None
    """Until the due time; negative when late. None once met or stopped."""
    late: bool
    """Past its due time (still running or paused), or met after it."""


class SlaPolicySummary(Schema):
    id: UUID
    name: str
    business_hours: bool


class ConversationSla(Schema):
    conversation_id: UUID
    policy: SlaPolicySummary | None
    """The policy now applying; None when none matches."""
    targets: list[SlaTargetStatus]
    """Every clock the conversation had, oldest first (next_response once per customer turn)."""
