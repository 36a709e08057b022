"""The worker's outgoing webhooks: a loop that posts due deliveries for as long as the worker runs.

A fan-out notifies `omnistream_outgoing_webhooks` at commit and the loop claims at once; polling
every `POLL_SECONDS` is the fallback (a lost notification, a retry whose time has come, a
connection that cannot listen behind a transaction pooler: `OMNISTREAM_LISTEN_DATABASE_URL`).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import structlog

from omnistream.config import Settings
from omnistream.db import Database
from omnistream.kit.background import listen, stop_the_worker_if_it_crashed
from omnistream.outgoing_webhooks import repository
from omnistream.outgoing_webhooks.delivery import BATCH, deliver_due

log = structlog.get_logger(__name__)

CHANNEL = "omnistream_outgoing_webhooks"
POLL_SECONDS = 1.0
LOG_RETENTION = timedelta(days=30)
PURGE_BATCH = 5000


class Dispatcher:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db, self.settings = db, settings
        self._wake = asyncio.Event()

    async def run(self) -> None:
        url = self.settings.listen_database_url or self.settings.database_url
        listener = await listen(url, CHANNEL, self._wake, "webhook deliveries")
        try:
            async with httpx.AsyncClient(follow_redirects=False) as client:
                while True:
                    try:
                        claimed = await deliver_due(
                            self.db,
                            self.settings.secrets,
                            client,
                            datetime.now(UTC),
                            allow_private=self.settings.webhooks_allow_private,
                        )
                    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                        log.warning("webhook deliveries not claimed; trying again", error=str(exc))
                        claimed = 0
                    if claimed < BATCH:
                        self._wake.clear()
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
        finally:
            if listener is not None:
                await listener.close()


async def start_dispatcher(ctx: dict[str, Any]) -> None:
    """Post webhook deliveries for as long as the worker runs (arq's startup hook calls this)."""
    task = asyncio.create_task(Dispatcher(ctx["db"], ctx["settings"]).run(), name="outgoing-webhooks")
    task.add_done_callback(stop_the_worker_if_it_crashed("outgoing webhook dispatcher"))
    ctx["outgoing_webhooks"] = task


async def stop_dispatcher(ctx: dict[str, Any]) -> None:
    task = ctx.pop("outgoing_webhooks", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def purge_webhook_log(ctx: dict[str, Any], now: datetime | None = None) -> int:
    """Drop the log's attempts and finished deliveries older than LOG_RETENTION (an arq cron); how many."""
    before = (now or datetime.now(UTC)) - LOG_RETENTION
    purged = 0
    while True:
        async with ctx["db"].anonymous() as conn:
            removed = await repository.purge_log(conn, before, PURGE_BATCH)
        purged += removed
        if removed == 0:
            return purged
