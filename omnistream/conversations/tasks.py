"""Background jobs of the conversations area."""

from __future__ import annotations

from typing import Any

import structlog

from omnistream.chat_expiration import service as chat_expiration
from omnistream.conversations import service
from omnistream.conversations.schemas import ExpireRequest

log = structlog.get_logger(__name__)


async def expire_stale_conversations(ctx: dict[str, Any]) -> int:
    """Every minute: apply each tenant's chat expiration rules."""
    db = ctx["db"]
    expired = 0
    for tenant_id in await chat_expiration.tenants_with_enabled_rules(db):
        result = await service.expire(db, None, tenant_id, ExpireRequest())
        expired += result.expired
    if expired:
        log.info("stale conversations expired", count=expired)
    return expired
