"""Roles: the three built-in levels plus custom roles made of permissions."""

from __future__ import annotations

from uuid import UUID

import asyncpg
import msgspec

from omnistream.activity import service as activity
from omnistream.auth import sessions
from omnistream.db import Database
from omnistream.errors import Conflict, Forbidden, Unprocessable, not_found
from omnistream.roles import repository
from omnistream.roles.schemas import (
    Permission,
    PermissionList,
    Role,
    RoleCreate,
    RoleList,
    RoleUpdate,
)
from omnistream.security.permissions import BUILTIN_PERMISSIONS, PERMISSIONS, RoleLevel, role_permissions
from omnistream.security.principal import Actor

_BUILTIN_DESCRIPTIONS = {
    "agent": "Answers the conversations they can see",
    "supervisor": "Agent, plus automation, campaigns, SLA, analytics and team oversight",
    "admin": "Everything, including agents, roles, integrations and billing",
}


def _role(row: asyncpg.Record) -> Role:
    values = dict(row)
    values["permissions"] = sorted(role_permissions(row["base_role"], row["is_builtin"], row["permissions"]))
    return Role(**values)


def within_rights(actor: Actor, base_role: str, permissions: frozenset[str] | set[str] | list[str]) -> bool:
    """Whether rights (a level and permissions) are a subset of the actor's own. The built-in admin
    role holds every permission, so only rights as full as its own reach an account that has it."""
    return RoleLevel[base_role] <= actor.level and set(permissions) <= actor.permissions


def _check_grantable(actor: Actor, base_role: str, permissions: frozenset[str] | set[str]) -> None:
    """Nobody hands out more than they hold: no higher level, no permission they lack."""
    if RoleLevel[base_role] > actor.level:
        raise Forbidden(f"you cannot grant the {base_role} level, which is above your own", field="base_role")
    beyond = sorted(set(permissions) - actor.permissions)
    if beyond:
        raise Forbidden(f"you cannot grant permissions you do not hold: {', '.join(beyond)}", field="permissions")


def _check_changeable(actor: Actor, role: Role) -> None:
    """A role whose rights reach beyond the actor's is not theirs to narrow, widen or delete: narrowing
    it would demote whoever holds it."""
    if not within_rights(actor, role.base_role, role.permissions):
        raise Forbidden("this role holds rights beyond your own; you cannot change or delete it")


async def create_builtin_roles(conn: asyncpg.Connection, tenant_id: UUID) -> dict[str, UUID]:
    return {
        level.name: await repository.insert(
            conn,
            tenant_id,
            name=level.name.capitalize(),
            description=_BUILTIN_DESCRIPTIONS[level.name],
            base_role=level.name,
            is_builtin=True,
            permissions=[],
        )
        for level in RoleLevel
    }


async def builtin_role_id(conn: asyncpg.Connection, tenant_id: UUID, base_role: str) -> UUID:
    return await repository.builtin_id(conn, tenant_id, base_role)


async def lock_for_assignment(conn: asyncpg.Connection, actor: Actor, role_id: UUID) -> bool:
    """Lock a role the actor is about to give an agent, refusing one above the actor's own rights;
    returns whether it is the built-in admin role."""
    row = await repository.lock(conn, actor.tenant_id, role_id)
    if row is None:
        raise Unprocessable("no such role in this organisation", field="role_id")
    role = await get_in(conn, actor.tenant_id, role_id)
    _check_grantable(actor, role.base_role, set(role.permissions))
    return bool(row["is_builtin"] and row["base_role"] == "admin")


async def get_in(conn: asyncpg.Connection, tenant_id: UUID, role_id: UUID) -> Role:
    row = await repository.get(conn, tenant_id, role_id)
    if row is None:
        raise not_found("role")
    return _role(row)


async def list_roles(db: Database, actor: Actor) -> RoleList:
    async with db.read(actor.tenant_id) as conn:
        roles = [_role(r) for r in await repository.list_all(conn, actor.tenant_id)]
    return RoleList(roles=roles, next_cursor=None, total=len(roles))


async def get_role(db: Database, actor: Actor, role_id: UUID) -> Role:
    async with db.read(actor.tenant_id) as conn:
        row = await repository.get(conn, actor.tenant_id, role_id)
    if row is None:
        raise not_found("role")
    return _role(row)


async def create_role(db: Database, actor: Actor, data: RoleCreate) -> Role:
    permissions = sorted(set(data.permissions))
    _check_grantable(actor, data.base_role, set(permissions))
    name = data.name.strip()
    async with db.tenant(actor.tenant_id) as conn:
        if await repository.name_taken(conn, actor.tenant_id, name, None):
            raise Conflict(f"a role named {name!r} exists", field="name")
        try:
            role_id = await repository.insert(
                conn,
                actor.tenant_id,
                name=name,
                description=data.description,
                base_role=data.base_role,
                is_builtin=False,
                permissions=permissions,
            )
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(f"a role named {name!r} exists", field="name") from exc
        await activity.record(
            conn,
            actor,
            "role.created",
            "role",
            role_id,
            name=name,
            base_role=data.base_role,
            permissions=permissions,
        )
        row = await repository.get(conn, actor.tenant_id, role_id)
    return _role(row)


async def update_role(db: Database, actor: Actor, role_id: UUID, data: RoleUpdate) -> Role:
    async with db.tenant(actor.tenant_id) as conn:
        locked = await repository.lock(conn, actor.tenant_id, role_id)
        if locked is None:
            raise not_found("role")
        if locked["is_builtin"]:
            raise Conflict("built-in roles cannot be changed; create a custom role instead")
        current = await repository.get(conn, actor.tenant_id, role_id)
        _check_changeable(actor, _role(current))
        changes = msgspec.structs.asdict(data)
        changes = {k: v for k, v in changes.items() if v is not msgspec.UNSET}
        if "permissions" in changes:
            changes["permissions"] = sorted(set(changes["permissions"]))
        if "name" in changes:
            changes["name"] = changes["name"].strip()
            if await repository.name_taken(conn, actor.tenant_id, changes["name"], role_id):
                raise Conflict(f"a role named {changes['name']!r} exists", field="name")
        merged = {k: current[k] for k in ("name", "description", "base_role", "permissions")} | changes
        _check_grantable(actor, merged["base_role"], set(merged["permissions"]))
        await repository.update(conn, actor.tenant_id, role_id, **merged)
        await activity.record(conn, actor, "role.updated", "role", role_id, changes=changes)
        row = await repository.get(conn, actor.tenant_id, role_id)
    await sessions.forget_tenant(actor.tenant_id)
    return _role(row)


async def delete_role(db: Database, actor: Actor, role_id: UUID) -> None:
    async with db.tenant(actor.tenant_id) as conn:
        locked = await repository.lock(conn, actor.tenant_id, role_id)
        if locked is None:
            raise not_found("role")
        if locked["is_builtin"]:
            raise Conflict("built-in roles cannot be deleted")
        row = await repository.get(conn, actor.tenant_id, role_id)
        _check_changeable(actor, _role(row))
        if row["agent_count"]:
            raise Conflict(f"the role is held by {row['agent_count']} agent(s); move them to another role first")
        await repository.delete(conn, actor.tenant_id, role_id)
        await activity.record(conn, actor, "role.deleted", "role", role_id, name=row["name"])
    await sessions.forget_tenant(actor.tenant_id)


def permission_catalogue() -> PermissionList:
    permissions = [
        Permission(
            name=name,
            description=description,
            builtin_roles=[level.name for level in RoleLevel if name in BUILTIN_PERMISSIONS[level]],
        )
        for name, description in sorted(PERMISSIONS.items())
    ]
    return PermissionList(permissions=permissions, next_cursor=None, total=len(permissions))
