from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from omnistream.contacts.schemas import Channel
from omnistream.kit.schema import NO_NUL, Input, Schema

MAX_COMMENT = 2000


class CsatSurvey(Schema):
    id: UUID
    conversation_id: UUID
    status: Literal["sent", "submitted", "expired"]
    """sent: waiting for the customer; expired: the link ran out unanswered."""
    channel: Channel
    agent_id: UUID | None
    """The agent the conversation was assigned to when the survey was sent: whom it rates."""
    division_id: UUID | None
    message_id: UUID | None
    """The message that carried the link to the customer."""
    rating: int | None
    comment: str | None
    created_by: UUID | None
    """The agent who sent it; None when sent automatically on resolving."""
    sent_at: datetime
    expires_at: datetime
    submitted_at: datetime | None


class CsatSubmit(Input):
    rating: Annotated[int, msgspec.Meta(ge=1, le=5, description="1 (very unhappy) to 5 (very happy)")]
    comment: Annotated[str, msgspec.Meta(max_length=MAX_COMMENT, pattern=NO_NUL)] | None = None


class CsatSubmitted(Schema):
    message: str
    rating: int
    comment: str | None
    submitted_at: datetime


class RatingDistribution(Schema):
    """How many answers gave each rating."""

    rated_1: int
    rated_2: int
    rated_3: int
    rated_4: int
    rated_5: int


class CsatFigures(Schema):
    surveys_sent: int
    responses: int
    response_rate: float
    """responses / surveys_sent (0 when none was sent); expired surveys count as unanswered."""
    average_rating: float | None
    """None without responses."""
    distribution: RatingDistribution


class AgentCsat(CsatFigures):
    agent_id: UUID | None
    """None: surveys of conversations that had no agent."""


class DivisionCsat(CsatFigures):
    division_id: UUID | None


class ChannelCsat(CsatFigures):
    channel: Channel


class CsatAnalytics(CsatFigures):
    created_from: datetime | None
    created_to: datetime | None
    by_agent: list[AgentCsat]
    by_division: list[DivisionCsat]
    by_channel: list[ChannelCsat]


class CsatSettings(Schema):
    send_on_resolve: bool
    """Whether resolving a conversation sends its customer a survey (off unless turned on)."""


class CsatSettingsUpdate(Input):
    send_on_resolve: bool
