"""Agents: the people (users) of a tenant who answer conversations."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from omnistream.activity import service as activity
from omnistream.agents import repository
from omnistream.agents.schemas import Agent, AgentCreate, AgentList, AgentStatusUpdate, AgentUpdate
from omnistream.api_keys import service as api_keys
from omnistream.auth import sessions
from omnistream.db import Database
from omnistream.errors import Conflict, Forbidden, not_found
from omnistream.kit.pagination import ListParams, page_of
from omnistream.roles import service as roles
from omnistream.security.passwords import hash_password
from omnistream.security.principal import Actor


async def create_first_admin(
    conn: asyncpg.Connection, tenant_id: UUID, *, email: str, name: str, password: str
) -> UUID:
    admin_role = await roles.builtin_role_id(conn, tenant_id, "admin")
    return await repository.insert(
        conn,
        tenant_id,
        email=email.lower(),
        name=name.strip(),
        password_hash=await hash_password(password),
        role_id=admin_role,
    )


async def get_in(conn: asyncpg.Connection, tenant_id: UUID, agent_id: UUID) -> Agent | None:
    """An agent of the tenant, inside the caller's transaction (for other areas)."""
    return await repository.get(conn, tenant_id, agent_id)


async def lock_active_ids(conn: asyncpg.Connection, tenant_id: UUID, agent_ids: list[UUID]) -> set[UUID]:
    """Which of the ids are active agents of the tenant (for other areas, inside their transaction).

    The ones returned are share-locked: they stay active and undeleted until the caller commits.
    """
    return await repository.lock_active_ids(conn, tenant_id, agent_ids)


async def touch_last_seen(conn: asyncpg.Connection, tenant_id: UUID, agent_id: UUID) -> None:
    await repository.touch_last_seen(conn, tenant_id, agent_id)


async def _check_manageable(conn: asyncpg.Connection, actor: Actor, target: Agent) -> None:
    """Nobody changes, suspends or deletes an account whose rights are not a subset of their own:
    a deputy who could reset the owner's password could sign in as the owner."""
    role = await roles.get_in(conn, actor.tenant_id, target.role_id)
    if not roles.within_rights(actor, role.base_role, role.permissions):
        raise Forbidden("this account holds rights beyond your own; you cannot change, suspend or delete it")


async def list_agents(db: Database, actor: Actor, params: ListParams, **filters: Any) -> AgentList:
    async with db.read(actor.tenant_id) as conn:
        rows, total = await repository.list_page(conn, actor.tenant_id, params, filters)
    rows, next_cursor = page_of(rows, params)
    return AgentList(agents=rows, next_cursor=next_cursor, total=total)


async def get_agent(db: Database, actor: Actor, agent_id: UUID) -> Agent:
    async with db.read(actor.tenant_id) as conn:
        agent = await repository.get(conn, actor.tenant_id, agent_id)
    if agent is None:
        raise not_found("agent")
    return agent


async def create_agent(db: Database, actor: Actor, data: AgentCreate) -> Agent:
    password_hash = await hash_password(data.password)
    async with db.tenant(actor.tenant_id) as conn:
        role_id = data.role_id or await roles.builtin_role_id(conn, actor.tenant_id, "agent")
        # Even the default role: nobody creates an account with rights they do not hold.
        await roles.lock_for_assignment(conn, actor, role_id)
        if await repository.email_taken(conn, actor.tenant_id, data.email, None):
            raise Conflict(f"an agent with email {data.email!r} exists", field="email")
        try:
            agent_id = await repository.insert(
                conn,
                actor.tenant_id,
                email=data.email.lower(),
                name=data.name.strip(),
                password_hash=password_hash,
                role_id=role_id,
            )
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(f"an agent with email {data.email!r} exists", field="email") from exc
        await activity.record(
            conn, actor, "agent.created", "agent", agent_id, email=data.email.lower(), role_id=str(role_id)
        )
        agent = await repository.get(conn, actor.tenant_id, agent_id)
    assert agent is not None
    return agent


async def update_agent(db: Database, actor: Actor, agent_id: UUID, data: AgentUpdate) -> Agent:
    changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
    password = changes.pop("password", None)
    values: dict[str, Any] = dict(changes)
    if "email" in values:
        values["email"] = values["email"].lower()
    if "name" in values:
        values["name"] = values["name"].strip()
    if password is not None:
        values["password_hash"] = await hash_password(password)
    async with db.tenant(actor.tenant_id) as conn:
        admins = await repository.lock_active_admins(conn, actor.tenant_id)
        current = await repository.get(conn, actor.tenant_id, agent_id)
        if current is None:
            raise not_found("agent")
        await _check_manageable(conn, actor, current)
        role_is_builtin_admin: bool | None = None
        if "role_id" in values:
            role_is_builtin_admin = await roles.lock_for_assignment(conn, actor, values["role_id"])
        if agent_id in admins and len(admins) == 1:
            keeps_admin_role = role_is_builtin_admin is not False
            if not (keeps_admin_role and values.get("status", current.status) == "active"):
                raise Conflict("this is the organisation's last active admin; make another admin first")
        if agent_id == actor.user_id and values.get("status") == "suspended":
            raise Conflict("you cannot suspend yourself")
        if "email" in values and await repository.email_taken(conn, actor.tenant_id, values["email"], agent_id):
            raise Conflict(f"an agent with email {values['email']!r} exists", field="email")
        await repository.update(conn, actor.tenant_id, agent_id, **values)
        if values.get("status") == "suspended" or password is not None:
            # A suspended agent, or one whose password was reset, is signed out everywhere and its
            # keys stop working: whoever held the old password may have made a key with it.
            await sessions.revoke_all_for_user(conn, actor.tenant_id, agent_id)
            await api_keys.revoke_all_for_user(conn, actor.tenant_id, agent_id)
        logged = {k: (str(v) if isinstance(v, UUID) else v) for k, v in changes.items()}
        if password is not None:
            logged["password"] = "changed"
        await activity.record(conn, actor, "agent.updated", "agent", agent_id, changes=logged)
        agent = await repository.get(conn, actor.tenant_id, agent_id)
    await sessions.forget_tenant(actor.tenant_id)
    assert agent is not None
    return agent


async def set_online_status(db: Database, actor: Actor, agent_id: UUID, data: AgentStatusUpdate) -> Agent:
    if agent_id != actor.user_id and not actor.can("agents.manage"):
        raise Forbidden("agents can set only their own status; agents.manage sets anyone's")
    async with db.tenant(actor.tenant_id) as conn:
        if not await repository.set_online_status(conn, actor.tenant_id, agent_id, data.status):
            raise not_found("agent")
        await activity.record(conn, actor, "agent.status_changed", "agent", agent_id, online_status=data.status)
        agent = await repository.get(conn, actor.tenant_id, agent_id)
    assert agent is not None
    return agent


async def delete_agent(db: Database, actor: Actor, agent_id: UUID) -> None:
    if agent_id == actor.user_id:
        raise Conflict("you cannot delete yourself")
    async with db.tenant(actor.tenant_id) as conn:
        admins = await repository.lock_active_admins(conn, actor.tenant_id)
        agent = await repository.get(conn, actor.tenant_id, agent_id)
        if agent is None:
            raise not_found("agent")
        await _check_manageable(conn, actor, agent)
        if agent_id in admins and len(admins) == 1:
            raise Conflict("this is the organisation's last active admin; make another admin first")
        await repository.soft_delete(conn, actor.tenant_id, agent_id)
        await sessions.revoke_all_for_user(conn, actor.tenant_id, agent_id)
        await api_keys.revoke_all_for_user(conn, actor.tenant_id, agent_id)
        await activity.record(conn, actor, "agent.deleted", "agent", agent_id, email=agent.email)
    await sessions.forget_tenant(actor.tenant_id)
