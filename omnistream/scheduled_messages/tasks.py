"""Background job of the scheduled messages area."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog

from omnistream.scheduled_messages import service

log = structlog.get_logger(__name__)


async def send_due_scheduled_messages(ctx: dict[str, Any]) -> int:
    """Every few seconds: send the scheduled messages whose time has come."""
    sent = await service.send_due(ctx["db"], ctx["redis"], datetime.now(UTC))
    if sent:
        log.info("scheduled messages sent", count=sent)
    return sent
