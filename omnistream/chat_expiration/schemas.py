from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from omnistream.kit.schema import Input, Schema

Channel = Literal["whatsapp", "messenger", "instagram", "email"]
ExpirableStatus = Literal["open", "pending"]
InactivityMinutes = Annotated[
    int, msgspec.Meta(ge=1, le=525_600, description="Minutes without activity before expiry (at most a year)")
]


class ChatExpirationRule(Schema):
    """Conversations of the channel in one of `statuses` expire after `inactivity_minutes` without activity."""

    channel: Channel
    enabled: bool
    inactivity_minutes: int
    statuses: list[ExpirableStatus]
    updated_at: datetime
    updated_by: UUID | None


class ChatExpirationRuleUpdate(Input):
    inactivity_minutes: InactivityMinutes
    enabled: bool = True
    statuses: Annotated[list[ExpirableStatus], msgspec.Meta(min_length=1, max_length=2)] = msgspec.field(
        default_factory=lambda: ["open", "pending"]
    )
    """Which conversation statuses expire; both by default."""


class ChatExpirationRuleList(Schema):
    rules: list[ChatExpirationRule]
    next_cursor: str | None
    total: int
