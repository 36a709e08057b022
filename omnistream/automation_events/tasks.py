"""The worker's automation: the event processor it runs beside its jobs, and the webhook jobs."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from omnistream.automation_events.processing import Processor
from omnistream.automation_events.webhooks import MAX_ATTEMPTS as WEBHOOK_ATTEMPTS
from omnistream.automation_events.webhooks import deliver_automation_webhooks, sweep_pending_webhooks
from omnistream.kit.background import stop_the_worker_if_it_crashed

__all__ = [
    "WEBHOOK_ATTEMPTS",
    "deliver_automation_webhooks",
    "start_processor",
    "stop_processor",
    "sweep_pending_webhooks",
]


async def start_processor(ctx: dict[str, Any]) -> None:
    """Run the event processor for as long as the worker runs (arq's startup hook calls this)."""
    settings = ctx["settings"]
    processor = Processor(ctx["db"], ctx["redis"], settings.listen_database_url or settings.database_url)
    task = asyncio.create_task(processor.run(), name="automation-events")
    task.add_done_callback(stop_the_worker_if_it_crashed("automation processor"))
    ctx["automation"] = task


async def stop_processor(ctx: dict[str, Any]) -> None:
    task = ctx.pop("automation", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
