"""Loops a worker runs beside its jobs (the event processor, the webhook dispatcher)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable

import asyncpg
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


async def listen(url: str | None, channel: str, wake: asyncio.Event, what: str) -> asyncpg.Connection | None:
    """A connection that sets `wake` at each NOTIFY on `channel`; None (the loop polls) when there
    is no URL or it cannot listen (behind a transaction pooler it needs a direct connection)."""
    if not url:
        return None
    try:
        conn = await asyncpg.connect(url)
        await conn.add_listener(channel, lambda *_: wake.set())
    except (OSError, asyncpg.PostgresError) as exc:
        log.warning(f"cannot listen for {what}; polling", error=str(exc))
        return None
    return conn
