from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from omnistream.kit.schema import Input, Name, Schema, Text

MAX_AGENT_IDS = 500

AgentIds = Annotated[
    list[UUID],
    msgspec.Meta(min_length=1, max_length=MAX_AGENT_IDS, description="Agent ids (at most 500 per request)"),
]


class DivisionAgent(Schema):
    """An agent as seen in a division."""

    id: UUID
    name: str
    email: str
    role: str
    status: Literal["active", "suspended"]
    online_status: Literal["online", "away", "offline"]
    added_at: datetime
    """When the agent joined the division."""


class Division(Schema):
    id: UUID
    name: str
    description: str
    agent_count: int
    created_at: datetime
    updated_at: datetime


class DivisionWithAgents(Division):
    agents: list[DivisionAgent]


class DivisionCreate(Input):
    name: Name
    """Unique in the organisation, ignoring case."""
    description: Text = ""
    agent_ids: Annotated[list[UUID], msgspec.Meta(max_length=MAX_AGENT_IDS)] = []
    """Active agents of this organisation to put in the division right away."""


class DivisionUpdate(Input):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    description: Text | msgspec.UnsetType = msgspec.UNSET


class DivisionAgentIds(Input):
    agent_ids: AgentIds


class DivisionList(Schema):
    divisions: list[Division]
    next_cursor: str | None
    total: int


class DivisionAgentList(Schema):
    agents: list[DivisionAgent]
    next_cursor: str | None
    total: int
