"""The worker's automation: the event processor it runs beside its jobs, and the webhook jobs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import Any

import structlog

from omnistream.automation_events.processing import Processor
from omnistream.automation_events.webhooks import MAX_ATTEMPTS as WEBHOOK_ATTEMPTS
from omnistream.automation_events.webhooks import deliver_automation_webhooks, sweep_pending_webhooks

log = structlog.get_logger(__name__)

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
    task.add_done_callback(_stop_the_worker_if_it_crashed)
    ctx["automation"] = task


def _stop_the_worker_if_it_crashed(task: asyncio.Task[None]) -> None:
    """A worker whose processor died would run its jobs and process no event, silently: it exits
    instead, loudly, and its supervisor starts it again."""
    if task.cancelled() or task.exception() is None:
        return
    log.error("the automation processor stopped; stopping the worker", exc_info=task.exception())
    os.kill(os.getpid(), signal.SIGTERM)


async def stop_processor(ctx: dict[str, Any]) -> None:
    task = ctx.pop("automation", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
