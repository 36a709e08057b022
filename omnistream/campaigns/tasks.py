"""The campaign worker: every second, batches of each due campaign at its account's rate."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from omnistream.campaigns import service

TICK_SECONDS = 0.9
"""How long one run keeps sending: under the cron's second, so runs seldom overlap (when they do,
each batch's locks keep them apart)."""


def _now() -> datetime:
    return datetime.now(UTC)


async def send_campaigns(ctx: dict[str, Any]) -> int:
    return await service.send_due(ctx["db"], ctx["redis"], ctx["settings"], _now, seconds=TICK_SECONDS)
