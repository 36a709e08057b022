from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

from omnistream.kit.schema import NO_NUL, Input, Schema


class Transfer(Schema):
    id: UUID
    conversation_id: UUID
    from_agent_id: UUID | None
    to_agent_id: UUID | None
    from_division_id: UUID | None
    to_division_id: UUID | None
    reason: str
    transferred_by: UUID | None
    created_at: datetime


class TransferRequest(Input):
    to_agent_id: UUID | None = None
    to_division_id: UUID | None = None
    """With only a division the conversation waits unassigned in that division's queue."""
    reason: Annotated[str, msgspec.Meta(max_length=1000, pattern=NO_NUL)] = ""


class TransferList(Schema):
    transfers: list[Transfer]
    next_cursor: str | None
    total: int
