from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from omnistream.kit.schema import Schema


class ActivityLog(Schema):
    id: UUID
    actor_type: Literal["user", "api_key", "system"]
    actor_id: UUID | None
    actor_email: str | None
    action: str
    object_type: str
    object_id: UUID | None
    ip: str | None
    request_id: str | None
    details: dict[str, Any]
    created_at: datetime


class ActivityLogList(Schema):
    activity_logs: list[ActivityLog]
    next_cursor: str | None
    total: int
