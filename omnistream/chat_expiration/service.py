"""Chat expiration: per channel, how long a conversation may sit idle before it expires.

The conversations area reads the enabled rules (`enabled_rules`) in its periodic sweep.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from omnistream.activity import service as activity
from omnistream.chat_expiration import repository
from omnistream.chat_expiration.schemas import (
    Channel,
    ChatExpirationRule,
    ChatExpirationRuleList,
    ChatExpirationRuleUpdate,
)
from omnistream.db import Database
from omnistream.security.principal import Actor

_STATUS_ORDER = ("open", "pending")

Rule = ChatExpirationRule


# ---------------------------------------------------------------- for other areas (caller's transaction)


async def enabled_rules(conn: asyncpg.Connection, tenant_id: UUID) -> list[Rule]:
    """The tenant's enabled rules, one per channel at most, ordered by channel."""
    return await repository.list_enabled(conn, tenant_id)


async def tenants_with_enabled_rules(db: Database) -> list[UUID]:
    """Every tenant with at least one enabled rule (across tenants, for the worker's sweep)."""
    async with db.anonymous() as conn:
        return await repository.tenants_with_enabled_rules(conn)


# ---------------------------------------------------------------- the API


async def list_rules(db: Database, actor: Actor) -> ChatExpirationRuleList:
    async with db.read(actor.tenant_id) as conn:
        rules = await repository.list_rules(conn, actor.tenant_id)
    return ChatExpirationRuleList(rules=rules, next_cursor=None, total=len(rules))


async def upsert_rule(db: Database, actor: Actor, channel: Channel, data: ChatExpirationRuleUpdate) -> Rule:
    statuses = [s for s in _STATUS_ORDER if s in data.statuses]
    async with db.tenant(actor.tenant_id) as conn:
        rule = await repository.upsert(
            conn,
            actor.tenant_id,
            channel,
            enabled=data.enabled,
            inactivity_minutes=data.inactivity_minutes,
            statuses=statuses,
            updated_by=actor.user_id,
        )
        await activity.record(
            conn,
            actor,
            "chat_expiration_rule.updated",
            "chat_expiration_rule",
            None,
            channel=channel,
            enabled=data.enabled,
            inactivity_minutes=data.inactivity_minutes,
            statuses=statuses,
        )
    return rule
