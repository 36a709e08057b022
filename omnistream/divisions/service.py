"""Divisions: teams of agents (sales, support, ...) that conversations are routed to."""

from __future__ import annotations

from uuid import UUID

import asyncpg
import msgspec

from omnistream.activity import service as activity
from omnistream.agents import service as agents
from omnistream.db import Database
from omnistream.divisions import repository
from omnistream.divisions.schemas import (
    DivisionAgentIds,
    DivisionAgentList,
    DivisionCreate,
    DivisionList,
    DivisionUpdate,
    DivisionWithAgents,
)
from omnistream.errors import Conflict, Unprocessable, not_found
from omnistream.kit.pagination import Cursor, ListParams, page_of
from omnistream.security.principal import Actor

# ---------------------------------------------------------------- for other areas (caller's transaction)


async def agent_division_ids(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID) -> list[UUID]:
    """The divisions an agent belongs to (none for a deleted agent)."""
    return await repository.agent_division_ids(conn, tenant_id, user_id)


async def exists(conn: asyncpg.Connection, tenant_id: UUID, division_id: UUID) -> bool:
    return await repository.exists(conn, tenant_id, division_id)


async def is_member(conn: asyncpg.Connection, tenant_id: UUID, division_id: UUID, user_id: UUID) -> bool:
    return await repository.is_member(conn, tenant_id, division_id, user_id)


# ---------------------------------------------------------------- the API


def _unique(ids: list[UUID]) -> list[UUID]:
    return list(dict.fromkeys(ids))


def _name_conflict(name: str) -> Conflict:
    return Conflict(f"a division named {name!r} exists", field="name")


async def _check_active_agents(conn: asyncpg.Connection, tenant_id: UUID, agent_ids: list[UUID]) -> None:
    """Every id must be an active agent of the tenant; they stay so until the transaction ends."""
    found = await agents.lock_active_ids(conn, tenant_id, agent_ids)
    invalid = [str(agent_id) for agent_id in agent_ids if agent_id not in found]
    if invalid:
        raise Unprocessable(
            f"not active agents of this organisation: {', '.join(invalid)}",
            field="agent_ids",
            invalid_agent_ids=invalid,
        )


async def _with_agents(conn: asyncpg.Connection, tenant_id: UUID, division_id: UUID) -> DivisionWithAgents:
    division = await repository.get(conn, tenant_id, division_id)
    if division is None:
        raise not_found("division")
    members = await repository.members(conn, tenant_id, division_id)
    return DivisionWithAgents(**msgspec.structs.asdict(division), agents=members)


async def list_divisions(db: Database, actor: Actor, params: ListParams, *, q: str | None) -> DivisionList:
    async with db.read(actor.tenant_id) as conn:
        rows, total = await repository.list_page(conn, actor.tenant_id, params, q)
    rows, next_cursor = page_of(rows, params)
    return DivisionList(divisions=rows, next_cursor=next_cursor, total=total)


async def get_division(db: Database, actor: Actor, division_id: UUID) -> DivisionWithAgents:
    async with db.read(actor.tenant_id) as conn:
        return await _with_agents(conn, actor.tenant_id, division_id)


async def create_division(db: Database, actor: Actor, data: DivisionCreate) -> DivisionWithAgents:
    name = data.name.strip()
    agent_ids = _unique(data.agent_ids)
    async with db.tenant(actor.tenant_id) as conn:
        if await repository.name_taken(conn, actor.tenant_id, name, None):
            raise _name_conflict(name)
        if agent_ids:
            await _check_active_agents(conn, actor.tenant_id, agent_ids)
        try:
            division_id = await repository.insert(conn, actor.tenant_id, name=name, description=data.description)
        except asyncpg.UniqueViolationError as exc:
            raise _name_conflict(name) from exc
        if agent_ids:
            await repository.add_agents(conn, actor.tenant_id, division_id, agent_ids)
        await activity.record(
            conn,
            actor,
            "division.created",
            "division",
            division_id,
            name=name,
            description=data.description,
            agent_ids=[str(a) for a in agent_ids],
        )
        return await _with_agents(conn, actor.tenant_id, division_id)


async def update_division(db: Database, actor: Actor, division_id: UUID, data: DivisionUpdate) -> DivisionWithAgents:
    changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
    if "name" in changes:
        changes["name"] = changes["name"].strip()
    async with db.tenant(actor.tenant_id) as conn:
        if await repository.lock(conn, actor.tenant_id, division_id) is None:
            raise not_found("division")
        if changes:
            if "name" in changes and await repository.name_taken(conn, actor.tenant_id, changes["name"], division_id):
                raise _name_conflict(changes["name"])
            try:
                await repository.update(
                    conn,
                    actor.tenant_id,
                    division_id,
                    name=changes.get("name"),
                    description=changes.get("description"),
                )
            except asyncpg.UniqueViolationError as exc:
                raise _name_conflict(changes["name"]) from exc
            await activity.record(conn, actor, "division.updated", "division", division_id, changes=changes)
        return await _with_agents(conn, actor.tenant_id, division_id)


async def delete_division(db: Database, actor: Actor, division_id: UUID) -> None:
    """Members go with it; conversations, transfers and schedules that named it lose the reference."""
    async with db.tenant(actor.tenant_id) as conn:
        deleted = await repository.delete(conn, actor.tenant_id, division_id)
        if deleted is None:
            raise not_found("division")
        await activity.record(conn, actor, "division.deleted", "division", division_id, name=deleted["name"])


async def list_division_agents(
    db: Database, actor: Actor, division_id: UUID, params: ListParams, *, q: str | None
) -> DivisionAgentList:
    async with db.read(actor.tenant_id) as conn:
        if not await repository.exists(conn, actor.tenant_id, division_id):
            raise not_found("division")
        rows, total = await repository.list_agents_page(conn, actor.tenant_id, division_id, params, q)
    rows, next_cursor = page_of(rows, params, lambda agent: Cursor(agent.added_at, agent.id))
    return DivisionAgentList(agents=rows, next_cursor=next_cursor, total=total)


async def add_agents(db: Database, actor: Actor, division_id: UUID, data: DivisionAgentIds) -> DivisionWithAgents:
    """Add agents; those already members stay as they are. All or nothing."""
    agent_ids = _unique(data.agent_ids)
    async with db.tenant(actor.tenant_id) as conn:
        if await repository.lock(conn, actor.tenant_id, division_id) is None:
            raise not_found("division")
        await _check_active_agents(conn, actor.tenant_id, agent_ids)
        added = await repository.add_agents(conn, actor.tenant_id, division_id, agent_ids)
        if added:
            await repository.touch(conn, actor.tenant_id, division_id)
            await activity.record(
                conn, actor, "division.agents_added", "division", division_id, agent_ids=[str(a) for a in added]
            )
        return await _with_agents(conn, actor.tenant_id, division_id)


async def remove_agents(db: Database, actor: Actor, division_id: UUID, data: DivisionAgentIds) -> DivisionWithAgents:
    """Remove agents; ids that are not members are ignored, so a repeated request does no harm."""
    agent_ids = _unique(data.agent_ids)
    async with db.tenant(actor.tenant_id) as conn:
        if await repository.lock(conn, actor.tenant_id, division_id) is None:
            raise not_found("division")
        removed = await repository.remove_agents(conn, actor.tenant_id, division_id, agent_ids)
        if removed:
            await repository.touch(conn, actor.tenant_id, division_id)
            await activity.record(
                conn, actor, "division.agents_removed", "division", division_id, agent_ids=[str(a) for a in removed]
            )
        return await _with_agents(conn, actor.tenant_id, division_id)
