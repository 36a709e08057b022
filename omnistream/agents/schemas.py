from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

import msgspec

from omnistream.kit.schema import Email, Input, Name, Password, Schema

AgentStatus = Literal["active", "suspended"]
OnlineStatus = Literal["online", "away", "offline"]


class Agent(Schema):
    id: UUID
    email: str
    name: str
    role_id: UUID
    role: str
    base_role: Literal["agent", "supervisor", "admin"]
    status: AgentStatus
    online_status: OnlineStatus
    last_seen_at: datetime | None
    created_at: datetime
    updated_at: datetime


class AgentCreate(Input):
    email: Email
    name: Name
    password: Password
    role_id: UUID | None = None
    """A role of this organisation; defaults to the built-in agent role."""


class AgentUpdate(Input):
    email: Email | msgspec.UnsetType = msgspec.UNSET
    name: Name | msgspec.UnsetType = msgspec.UNSET
    password: Password | msgspec.UnsetType = msgspec.UNSET
    role_id: UUID | msgspec.UnsetType = msgspec.UNSET
    status: AgentStatus | msgspec.UnsetType = msgspec.UNSET


class AgentStatusUpdate(Input):
    status: OnlineStatus


class AgentList(Schema):
    agents: list[Agent]
    next_cursor: str | None
    total: int
