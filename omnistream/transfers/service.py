"""Transfers: the history of who handed a conversation to whom, and why."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from omnistream.conversations import service as conversations
from omnistream.db import Database
from omnistream.kit.pagination import ListParams, page_of
from omnistream.security.principal import Actor
from omnistream.transfers import repository
from omnistream.transfers.schemas import Transfer, TransferList


async def record(
    conn: asyncpg.Connection,
    actor: Actor,
    conversation_id: UUID,
    *,
    from_agent_id: UUID | None,
    to_agent_id: UUID | None,
    from_division_id: UUID | None,
    to_division_id: UUID | None,
    reason: str,
) -> Transfer:
    """Write a transfer inside the caller's transaction (the one that moved the conversation)."""
    transfer_id = await repository.insert(
        conn,
        actor.tenant_id,
        conversation_id=conversation_id,
        from_agent_id=from_agent_id,
        to_agent_id=to_agent_id,
        from_division_id=from_division_id,
        to_division_id=to_division_id,
        reason=reason,
        transferred_by=actor.user_id,
    )
    transfer = await repository.get(conn, actor.tenant_id, transfer_id)
    assert transfer is not None
    return transfer


async def list_transfers(db: Database, actor: Actor, conversation_id: UUID, params: ListParams) -> TransferList:
    async with db.read(actor.tenant_id) as conn:
        await conversations.require_visible(conn, actor, conversation_id)
        rows, total = await repository.list_page(conn, actor.tenant_id, conversation_id, params)
    rows, next_cursor = page_of(rows, params)
    return TransferList(transfers=rows, next_cursor=next_cursor, total=total)
