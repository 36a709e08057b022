"""Conversations: the threads agents work in, their assignment, status, tags and counters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from omnistream.activity import service as activity
from omnistream.agents import service as agents
from omnistream.automation.service import Outbox
from omnistream.chat_expiration import service as chat_expiration
from omnistream.contacts.service import normalize_tags
from omnistream.conversations import repository
from omnistream.conversations.schemas import (
    AssignRequest,
    BulkItemResult,
    BulkRequest,
    BulkResult,
    Conversation,
    ConversationList,
    ExpireRequest,
    ExpireResult,
    StatusRequest,
    TagsRequest,
    TakeoverRequest,
)
from omnistream.db import Database, Savepoint
from omnistream.divisions import service as divisions
from omnistream.errors import AppError, Conflict, Unprocessable, not_found
from omnistream.kit.pagination import Cursor, ListParams, date_range, page_of
from omnistream.security.permissions import RoleLevel
from omnistream.security.principal import Actor
from omnistream.transfers import service as transfers
from omnistream.transfers.schemas import Transfer, TransferRequest

MAX_TAGS = 50
STATUSES = ("open", "pending", "resolved", "closed", "expired")
SEE_ALL = {"see_all": True, "viewer_id": None, "viewer_divisions": []}


# ------------------------------------------------------------------ reading


async def visibility(conn: asyncpg.Connection, actor: Actor) -> dict[str, Any]:
    """Supervisors and admins see every conversation; agents see theirs, the unrouted ones and their divisions'."""
    if actor.level >= RoleLevel.supervisor:
        return SEE_ALL
    return {
        "see_all": False,
        "viewer_id": actor.user_id,
        "viewer_divisions": await divisions.agent_division_ids(conn, actor.tenant_id, actor.user_id),
    }


async def require_visible(conn: asyncpg.Connection, actor: Actor, conversation_id: UUID) -> Conversation:
    """The conversation if the actor may see it; otherwise 404, exactly as if it did not exist."""
    conversation = await repository.get(conn, actor.tenant_id, conversation_id, await visibility(conn, actor))
    if conversation is None:
        raise not_found("conversation")
    return conversation


async def _lock_visible(conn: asyncpg.Connection, actor: Actor, conversation_id: UUID) -> asyncpg.Record:
    await require_visible(conn, actor, conversation_id)
    row = await repository.lock(conn, actor.tenant_id, conversation_id)
    if row is None:
        raise not_found("conversation")
    return row


async def _reload(conn: asyncpg.Connection, tenant_id: UUID, conversation_id: UUID) -> Conversation:
    conversation = await repository.get(conn, tenant_id, conversation_id, SEE_ALL)
    assert conversation is not None
    return conversation


def _parse_statuses(raw: str | None) -> list[str] | None:
    if not raw:
        return None
    # The parameter's pattern admits only known statuses, separated by commas.
    return [s.strip() for s in raw.split(",") if s.strip()]


def _parse_assignee(raw: str | None, actor: Actor) -> tuple[UUID | None, bool]:
    if raw is None:
        return None, False
    if raw == "me":
        return actor.user_id, False
    if raw == "unassigned":
        return None, True
    return UUID(raw), False  # the parameter's pattern admits only an id besides the two words


async def list_conversations(
    db: Database,
    actor: Actor,
    params: ListParams,
    *,
    sort_by: str,
    status: str | None,
    channel: str | None,
    assignee: str | None,
    division_id: UUID | None,
    tag: str | None,
    contact_id: UUID | None,
    created_from: str | None,
    created_to: str | None,
    q: str | None,
    with_total: bool = False,
) -> ConversationList:
    created_from, created_to = date_range(created_from, created_to)
    assigned_agent_id, unassigned = _parse_assignee(assignee, actor)
    filters: dict[str, Any] = {
        "statuses": _parse_statuses(status),
        "channel": channel,
        "assigned_agent_id": assigned_agent_id,
        "unassigned": unassigned,
        "division_id": division_id,
        "tag": tag.strip().lower() if tag else None,
        "contact_id": contact_id,
        "created_from": created_from,
        "created_to": created_to,
        "q": q or None,
    }
    async with db.read(actor.tenant_id) as conn:
        filters |= await visibility(conn, actor)
        rows = await repository.list_page(conn, actor.tenant_id, params, sort_by, filters)
        # Counting is the costliest part of a page in a large inbox: it comes with the first
        # page, or on request, and a cursor walk does not pay for it again.
        total = await repository.count(conn, actor.tenant_id, filters) if params.cursor is None or with_total else None
    key = (lambda c: Cursor(c.last_activity_at, c.id)) if sort_by == "last_activity_at" else None
    rows, next_cursor = page_of(rows, params, key) if key else page_of(rows, params)
    return ConversationList(conversations=rows, next_cursor=next_cursor, total=total)


async def get_conversation(db: Database, actor: Actor, conversation_id: UUID) -> Conversation:
    async with db.read(actor.tenant_id) as conn:
        return await require_visible(conn, actor, conversation_id)


# ------------------------------------------------------------------ changing


def snapshot(row: asyncpg.Record) -> dict[str, Any]:
    """The conversation as automation events carry it."""
    return {
        "conversation_id": row["id"],
        "contact_id": row["contact_id"],
        "channel": row["channel"],
        "account_id": row["account_id"],
        "status": row["status"],
        "assigned_agent_id": row["assigned_agent_id"],
        "division_id": row["division_id"],
        "tags": list(row["tags"]),
        "priority": row["priority"],
        "handled_by": row["handled_by"],
    }


async def _assign(
    conn: asyncpg.Connection,
    actor: Actor,
    row: asyncpg.Record,
    agent_id: UUID | None,
    division_id: UUID | msgspec.UnsetType | None,
    fields: tuple[str, str] = ("agent_id", "division_id"),
) -> None:
    """Assign (or unassign) and optionally move to a division; the agent must be active and, when a
    division is named, belong to it. Errors name the request's own `fields` (agent, division)."""
    agent_field, division_field = fields
    new_division = row["division_id"]
    if division_id is not msgspec.UNSET:
        new_division = division_id
        if division_id is not None and not await divisions.exists(conn, actor.tenant_id, division_id):
            raise Unprocessable("no such division in this organisation", field=division_field)
    if agent_id is not None:
        agent = await agents.get_in(conn, actor.tenant_id, agent_id)
        if agent is None or agent.status != "active":
            raise Unprocessable(f"{agent_field} must be an active agent of this organisation", field=agent_field)
        if (
            new_division is not None
            and division_id is not msgspec.UNSET
            and not await divisions.is_member(conn, actor.tenant_id, new_division, agent_id)
        ):
            raise Unprocessable("the agent does not belong to that division", field=agent_field)
    await repository.set_assignment(conn, actor.tenant_id, row["id"], agent_id, new_division)
    if agent_id != row["assigned_agent_id"] or new_division != row["division_id"]:
        outbox = Outbox(actor.tenant_id, source="api" if actor.user_id else "automation")
        current = await repository.event_snapshot(conn, actor.tenant_id, row["id"])
        outbox.add(
            "conversation_assigned",
            row["id"],
            row["contact_id"],
            {
                **snapshot(current),
                "previous_agent_id": row["assigned_agent_id"],
                "previous_division_id": row["division_id"],
                "assigned_by": actor.user_id,
            },
        )
        await outbox.write(conn)
    await activity.record(
        conn,
        actor,
        "conversation.assigned" if agent_id else "conversation.unassigned",
        "conversation",
        row["id"],
        agent_id=str(agent_id) if agent_id else None,
        previous_agent_id=_str(row["assigned_agent_id"]),
        division_id=_str(new_division),
    )


def _str(value: UUID | None) -> str | None:
    return str(value) if value else None


async def _set_status(
    conn: asyncpg.Connection,
    actor: Actor | None,
    row: asyncpg.Record,
    status: str,
    outbox: Outbox,
    reason: str | None = None,
) -> None:
    if row["status"] == status:
        return
    changed_by = actor.user_id if actor else None
    try:
        await repository.set_status(conn, outbox.tenant_id, row["id"], status, changed_by)
    except asyncpg.UniqueViolationError as exc:
        # Reopening a closed or expired thread while the contact already has a newer live one.
        raise Conflict(
            "the contact has another live conversation on this channel; continue there", field="status"
        ) from exc
    current = await repository.event_snapshot(conn, outbox.tenant_id, row["id"])
    outbox.add(
        "status_changed",
        row["id"],
        row["contact_id"],
        {**snapshot(current), "previous_status": row["status"], "changed_by": changed_by, "reason": reason},
    )
    if actor is not None:
        await activity.record(
            conn,
            actor,
            "conversation.status_changed",
            "conversation",
            row["id"],
            previous_status=row["status"],
            status=status,
            reason=reason,
        )


def _merged_tags(current: list[str], add: list[str], remove: list[str], replace: list[str] | None) -> list[str]:
    tags = normalize_tags(replace) if replace is not None else list(current)
    removed = set(normalize_tags(remove))
    tags = [t for t in normalize_tags(tags + add) if t not in removed]
    if len(tags) > MAX_TAGS:
        raise Unprocessable(f"a conversation can carry at most {MAX_TAGS} tags", field="tags")
    return tags


async def _change_tags(
    conn: asyncpg.Connection,
    actor: Actor,
    row: asyncpg.Record,
    add: list[str],
    remove: list[str],
    replace: list[str] | None,
) -> None:
    tags = _merged_tags(list(row["tags"]), add, remove, replace)
    if tags != list(row["tags"]):
        await repository.set_tags(conn, actor.tenant_id, row["id"], tags)
        await activity.record(
            conn, actor, "conversation.tags_changed", "conversation", row["id"], previous=list(row["tags"]), tags=tags
        )


async def assign(db: Database, actor: Actor, conversation_id: UUID, data: AssignRequest) -> Conversation:
    async with db.tenant(actor.tenant_id) as conn:
        row = await _lock_visible(conn, actor, conversation_id)
        await _assign(conn, actor, row, data.agent_id, data.division_id)
        return await _reload(conn, actor.tenant_id, conversation_id)


async def set_status(db: Database, actor: Actor, conversation_id: UUID, data: StatusRequest) -> Conversation:
    outbox = Outbox(actor.tenant_id, source="api")
    async with db.tenant(actor.tenant_id) as conn:
        row = await _lock_visible(conn, actor, conversation_id)
        await _set_status(conn, actor, row, data.status, outbox, data.reason)
        await outbox.write(conn)
        return await _reload(conn, actor.tenant_id, conversation_id)


async def mark_read(db: Database, actor: Actor, conversation_id: UUID) -> Conversation:
    async with db.tenant(actor.tenant_id) as conn:
        await require_visible(conn, actor, conversation_id)
        await repository.mark_read(conn, actor.tenant_id, conversation_id, actor.user_id)
        return await _reload(conn, actor.tenant_id, conversation_id)


async def update_tags(db: Database, actor: Actor, conversation_id: UUID, data: TagsRequest) -> Conversation:
    if data.set is not None and (data.add or data.remove):
        raise Unprocessable("use either set, or add and remove", field="set")
    async with db.tenant(actor.tenant_id) as conn:
        row = await _lock_visible(conn, actor, conversation_id)
        await _change_tags(conn, actor, row, data.add, data.remove, data.set)
        return await _reload(conn, actor.tenant_id, conversation_id)


async def take_over(db: Database, actor: Actor, conversation_id: UUID, data: TakeoverRequest) -> Conversation:
    async with db.tenant(actor.tenant_id) as conn:
        row = await _lock_visible(conn, actor, conversation_id)
        if row["assigned_agent_id"] == actor.user_id and row["handled_by"] == "human":
            raise Conflict("you are already handling this conversation")
        await repository.take_over(conn, actor.tenant_id, conversation_id, actor.user_id)
        await transfers.record(
            conn,
            actor,
            conversation_id,
            from_agent_id=row["assigned_agent_id"],
            to_agent_id=actor.user_id,
            from_division_id=row["division_id"],
            to_division_id=row["division_id"],
            reason=data.reason or ("takeover from AI agent" if row["handled_by"] == "ai" else "takeover"),
        )
        await activity.record(
            conn,
            actor,
            "conversation.taken_over",
            "conversation",
            conversation_id,
            previous_agent_id=_str(row["assigned_agent_id"]),
            previous_handler=row["handled_by"],
            previous_ai_agent_id=_str(row["ai_agent_id"]),
        )
        return await _reload(conn, actor.tenant_id, conversation_id)


async def transfer(db: Database, actor: Actor, conversation_id: UUID, data: TransferRequest) -> Transfer:
    if data.to_agent_id is None and data.to_division_id is None:
        raise Unprocessable("name to_agent_id, to_division_id or both", field="to_agent_id")
    async with db.tenant(actor.tenant_id) as conn:
        row = await _lock_visible(conn, actor, conversation_id)
        division: UUID | msgspec.UnsetType | None = (
            data.to_division_id if data.to_division_id is not None else msgspec.UNSET
        )
        # To a division alone: the conversation waits there unassigned.
        agent_id = data.to_agent_id
        await _assign(conn, actor, row, agent_id, division, fields=("to_agent_id", "to_division_id"))
        return await transfers.record(
            conn,
            actor,
            conversation_id,
            from_agent_id=row["assigned_agent_id"],
            to_agent_id=agent_id,
            from_division_id=row["division_id"],
            to_division_id=data.to_division_id if data.to_division_id is not None else row["division_id"],
            reason=data.reason,
        )


async def bulk(db: Database, actor: Actor, data: BulkRequest) -> BulkResult:
    if data.action == "status" and data.status is None:
        raise Unprocessable("status is required for the status action", field="status")
    if data.action == "tags" and not (data.add_tags or data.remove_tags):
        raise Unprocessable("add_tags or remove_tags is required for the tags action", field="add_tags")
    results: list[BulkItemResult] = []
    outbox = Outbox(actor.tenant_id, source="api")
    async with db.tenant(actor.tenant_id) as conn:
        for conversation_id in dict.fromkeys(data.conversation_ids):
            try:
                # A savepoint per conversation: one that fails leaves no partial change behind.
                async with Savepoint(conn):
                    row = await _lock_visible(conn, actor, conversation_id)
                    if data.action == "assign":
                        await _assign(conn, actor, row, data.agent_id, data.division_id)
                    elif data.action == "status":
                        item_outbox = Outbox(actor.tenant_id, source="api")
                        await _set_status(conn, actor, row, data.status or "", item_outbox)
                        outbox.events.extend(item_outbox.events)
                    else:
                        await _change_tags(conn, actor, row, data.add_tags, data.remove_tags, None)
                results.append(BulkItemResult(id=conversation_id, ok=True))
            except AppError as exc:
                results.append(BulkItemResult(id=conversation_id, ok=False, error=exc.detail))
        await outbox.write(conn)
    succeeded = sum(r.ok for r in results)
    return BulkResult(results=results, succeeded=succeeded, failed=len(results) - succeeded)


async def expire(
    db: Database, actor: Actor | None, tenant_id: UUID, data: ExpireRequest, limit: int = 10_000
) -> ExpireResult:
    """Expire conversations idle past their channel's rule; a dry run only reports which."""
    outbox = Outbox(tenant_id, source="expiration")
    expired: list[UUID] = []
    now = datetime.now(UTC)
    async with db.tenant(tenant_id) as conn:
        rules = [
            r
            for r in await chat_expiration.enabled_rules(conn, tenant_id)
            if data.channel is None or r.channel == data.channel
        ]
        async with Savepoint(conn, "expire_preview") as preview:
            for rule in rules:
                rows = await repository.expire_stale(
                    conn,
                    tenant_id,
                    channel=rule.channel,
                    statuses=list(rule.statuses),
                    idle_before=now - timedelta(minutes=rule.inactivity_minutes),
                    changed_by=actor.user_id if actor else None,
                    limit=limit - len(expired),
                )
                for row in rows:
                    expired.append(row["id"])
                    outbox.add(
                        "status_changed",
                        row["id"],
                        row["contact_id"],
                        {
                            **snapshot(row),
                            "previous_status": row["previous_status"],
                            "changed_by": actor.user_id if actor else None,
                            "reason": "expired by rule",
                        },
                    )
            if data.dry_run:
                await preview.rollback()
        if not data.dry_run:
            await outbox.write(conn)
            if actor is not None and expired:
                await activity.record(
                    conn, actor, "conversation.expired", "conversation", None, count=len(expired), channel=data.channel
                )
    return ExpireResult(expired=len(expired), conversation_ids=expired, dry_run=data.dry_run)


# ------------------------------------------------------------------ for ingestion and messages


async def record_outbound(
    conn: asyncpg.Connection, tenant_id: UUID, conversation_id: UUID, at: datetime, preview: str
) -> None:
    await repository.record_outbound(conn, tenant_id, conversation_id, at, preview[:200])


async def lock_for_message(conn: asyncpg.Connection, actor: Actor, conversation_id: UUID) -> asyncpg.Record:
    return await _lock_visible(conn, actor, conversation_id)


async def open_threads(
    conn: asyncpg.Connection, tenant_id: UUID, channel: str, account_id: UUID, contact_ids: list[UUID], now: datetime
) -> dict[UUID, asyncpg.Record]:
    """Each contact's live conversation on the account (opened where there is none), locked as
    lock_for_message locks one, by contact: for sending to many contacts at once."""
    rows = await repository.open_threads(conn, tenant_id, channel, account_id, contact_ids, now)
    return {row["contact_id"]: row for row in rows}


async def record_outbound_many(
    conn: asyncpg.Connection, tenant_id: UUID, at: datetime, previews: dict[UUID, str]
) -> None:
    """record_outbound for many conversations (conversation id: preview) in one statement."""
    await repository.record_outbound_many(conn, tenant_id, at, {k: v[:200] for k, v in previews.items()})


# ------------------------------------------------------------------ for automation (caller's transaction)
# Automation acts for the tenant (Actor.automation): it sees every conversation, and the events
# its changes cause carry the source "automation", which no rule matches.


async def lock_for_automation(
    conn: asyncpg.Connection, tenant_id: UUID, conversation_id: UUID
) -> asyncpg.Record | None:
    """The conversation, locked for the rest of the transaction; None when it is gone."""
    return await repository.lock(conn, tenant_id, conversation_id)


async def snapshot_of(conn: asyncpg.Connection, tenant_id: UUID, conversation_id: UUID) -> dict[str, Any] | None:
    """The conversation as automation events carry it, without locking it; None when it is gone."""
    row = await repository.event_snapshot(conn, tenant_id, conversation_id)
    return None if row is None else snapshot(row)


async def assign_in(
    conn: asyncpg.Connection, actor: Actor, row: asyncpg.Record, agent_id: UUID | None, division_id: UUID | None
) -> None:
    """Assign to the agent (None: unassign); move to the division when one is named."""
    await _assign(conn, actor, row, agent_id, division_id if division_id is not None else msgspec.UNSET)


async def move_to_division_in(conn: asyncpg.Connection, actor: Actor, row: asyncpg.Record, division_id: UUID) -> None:
    """Route to the division; an assigned agent who is not a member of it is unassigned."""
    agent_id = row["assigned_agent_id"]
    if agent_id is not None and not await divisions.is_member(conn, actor.tenant_id, division_id, agent_id):
        agent_id = None
    await _assign(conn, actor, row, agent_id, division_id)


async def set_status_in(
    conn: asyncpg.Connection, actor: Actor, row: asyncpg.Record, status: str, outbox: Outbox, reason: str | None
) -> None:
    await _set_status(conn, actor, row, status, outbox, reason)


async def change_tags_in(
    conn: asyncpg.Connection, actor: Actor, row: asyncpg.Record, add: list[str], remove: list[str]
) -> None:
    await _change_tags(conn, actor, row, add, remove, None)


async def set_priority_in(conn: asyncpg.Connection, actor: Actor, row: asyncpg.Record, priority: str) -> None:
    if row["priority"] == priority:
        return
    await repository.set_priority(conn, actor.tenant_id, row["id"], priority)
    await activity.record(
        conn,
        actor,
        "conversation.priority_changed",
        "conversation",
        row["id"],
        previous=row["priority"],
        priority=priority,
    )


async def online_agents_by_load(conn: asyncpg.Connection, tenant_id: UUID, division_id: UUID) -> list[tuple[UUID, int]]:
    """The division's online agents with their live conversations, least busy first; no other
    transaction chooses among them until this one ends, so concurrent assignments see each other."""
    return await repository.online_agents_by_load(conn, tenant_id, division_id)
