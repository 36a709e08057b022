"""Loops a worker runs beside its jobs (the event processor, the webhook dispatcher)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)


def stop_the_worker_if_it_crashed(what: str) -> Callable[[asyncio.Task[None]], None]:
    """A done-callback for a worker's loop: a worker whose loop died would run its jobs and do
    none of the loop's work, silently; it exits instead, loudly, and its supervisor starts it again."""

    def check(task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        log.error(f"the {what} stopped; stopping the worker", exc_info=task.exception())
        os.kill(os.getpid(), signal.SIGTERM)

    return check
