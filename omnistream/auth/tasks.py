"""Background jobs of the auth area."""

from __future__ import annotations

from typing import Any

import structlog

from omnistream.auth import repository

log = structlog.get_logger(__name__)


async def purge_ended_sessions(ctx: dict[str, Any]) -> int:
    async with ctx["db"].anonymous() as conn:
        purged = await repository.purge_ended_sessions(conn)
    log.info("ended sessions purged", count=purged)
    return purged
