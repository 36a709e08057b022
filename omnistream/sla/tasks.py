"""Background jobs of the SLA area."""

from __future__ import annotations

from typing import Any

import structlog

from omnistream.sla import service

log = structlog.get_logger(__name__)

MONITOR_SECONDS = set(range(0, 60, 10))
"""Every ten seconds: a breach is recorded (and its automation fires) at most that late."""


async def monitor_sla_breaches(ctx: dict[str, Any]) -> int:
    """Record the breaches of the clocks past their due time, each with its sla_breached event."""
    recorded = await service.monitor(ctx["db"])
    if recorded:
        log.info("SLA breaches recorded", count=recorded)
    return recorded
