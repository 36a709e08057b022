"""Registration, sign-in and sign-out."""

from __future__ import annotations

import asyncio
from datetime import datetime
from uuid import UUID, uuid4

import asyncpg
import msgspec

from omnistream.activity import service as activity
from omnistream.agents import service as agents
from omnistream.auth import repository, sessions
from omnistream.auth.schemas import AuthSession, LoginRequest, Profile, RegisterRequest
from omnistream.config import Settings
from omnistream.db import Database
from omnistream.errors import Forbidden, Unauthorized, Unprocessable
from omnistream.roles import service as roles
from omnistream.security import csrf, tokens
from omnistream.security.passwords import verify_password
from omnistream.security.permissions import RoleLevel
from omnistream.security.principal import Actor
from omnistream.security.rate_limits import LoginThrottle
from omnistream.tenants import service as tenants

INVALID_LOGIN = "invalid email or password"


async def register(
    db: Database,
    settings: Settings,
    data: RegisterRequest,
    *,
    ip: str | None,
    user_agent: str | None,
    request_id: str | None,
) -> AuthSession:
    tenant_id = uuid4()
    async with db.tenant(tenant_id) as conn:
        await tenants.create(conn, tenant_id, data.organization_name.strip(), data.slug, data.timezone)
        await roles.create_builtin_roles(conn, tenant_id)
        user_id = await agents.create_first_admin(
            conn, tenant_id, email=data.email, name=data.name, password=data.password
        )
        actor = await _actor_in(conn, tenant_id, user_id, ip=ip, request_id=request_id)
        await activity.record(
            conn, actor, "tenant.registered", "tenant", tenant_id, organization_name=data.organization_name
        )
        return await _start_session(conn, settings, actor, user_agent)


async def login(
    db: Database,
    settings: Settings,
    throttle: LoginThrottle,
    data: LoginRequest,
    *,
    ip: str | None,
    user_agent: str | None,
    request_id: str | None,
) -> AuthSession:
    email = data.email.lower()
    delay = await throttle.check(email, ip)
    if delay:
        # The email is being guessed at from many addresses: every attempt waits, the owner's too,
        # and none is refused for it.
        await asyncio.sleep(delay)
    async with db.anonymous() as conn:
        candidates = await repository.login_candidates(conn, email)
    if data.tenant is not None:
        candidates = [c for c in candidates if c["tenant_slug"] == data.tenant.lower()]
    elif len(candidates) > 1:
        # Which organisation is meant is for the client to say. Trying the password on each account
        # would tell the holder of one of them whether another organisation's account has the same
        # password, and record their attempts in organisations that are not theirs.
        raise Unprocessable(
            "this email belongs to several organisations; pass the organisation's slug as tenant", field="tenant"
        )
    # At most one account now: the one the sign-in was addressed to.
    candidate = candidates[0] if candidates else None
    if not await verify_password(candidate["password_hash"] if candidate else None, data.password):
        await throttle.failed(email, ip)
        if candidate is not None:
            async with db.tenant(candidate["tenant_id"]) as conn:
                actor = await _actor_in(
                    conn, candidate["tenant_id"], candidate["user_id"], ip=ip, request_id=request_id
                )
                await activity.record(conn, actor, "auth.login_failed", "agent", candidate["user_id"])
        raise Unauthorized(INVALID_LOGIN)
    assert candidate is not None
    match = candidate
    if match["tenant_status"] != "active":
        raise Forbidden("this organisation is suspended")
    if match["user_status"] != "active":
        raise Forbidden("this account is suspended")
    await throttle.succeeded(email, ip)
    async with db.tenant(match["tenant_id"]) as conn:
        actor = await _actor_in(conn, match["tenant_id"], match["user_id"], ip=ip, request_id=request_id)
        await agents.touch_last_seen(conn, actor.tenant_id, actor.user_id)
        result = await _start_session(conn, settings, actor, user_agent)
        await activity.record(conn, actor, "auth.login", "agent", actor.user_id)
    return result


async def logout(db: Database, actor: Actor) -> None:
    if actor.session_id is None:
        raise Forbidden("API keys have no session to end; revoke the key with DELETE /api/api-keys/{id}")
    async with db.tenant(actor.tenant_id) as conn:
        await sessions.revoke(conn, actor.tenant_id, actor.session_id)
        await activity.record(conn, actor, "auth.logout", "agent", actor.user_id)
    await sessions.forget_tenant(actor.tenant_id)


async def refresh(db: Database, settings: Settings, actor: Actor) -> AuthSession:
    if actor.session_id is None:
        # A key's scopes could be narrower than its owner's rights; a session would not be.
        raise Forbidden("an API key cannot be exchanged for a session token")
    async with db.tenant(actor.tenant_id) as conn:
        expires_at = await sessions.extend(conn, actor.tenant_id, actor.session_id, settings.jwt_ttl_seconds)
        if expires_at is None:
            raise Unauthorized("the session has ended; sign in again")
        await activity.record(conn, actor, "auth.token_refreshed", "agent", actor.user_id)
        profile = await _profile(conn, actor)
    return _auth_session(settings, actor, actor.session_id, expires_at, profile)


async def me(db: Database, actor: Actor) -> Profile:
    async with db.read(actor.tenant_id) as conn:
        return await _profile(conn, actor)


async def active_actor_in(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID) -> Actor | None:
    """The agent as the actor of work done later on their behalf (a scheduled message), with their
    rights of now; None once they are suspended or deleted."""
    agent = await agents.get_in(conn, tenant_id, user_id)
    if agent is None or agent.status != "active":
        return None
    return await _actor_in(conn, tenant_id, user_id, ip=None, request_id=None)


async def _actor_in(
    conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID, *, ip: str | None, request_id: str | None
) -> Actor:
    agent = await agents.get_in(conn, tenant_id, user_id)
    assert agent is not None
    role = await roles.get_in(conn, tenant_id, agent.role_id)
    return Actor(
        user_id=user_id,
        tenant_id=tenant_id,
        email=agent.email,
        name=agent.name,
        role_id=agent.role_id,
        role_name=agent.role,
        level=RoleLevel[agent.base_role],
        permissions=frozenset(role.permissions),
        ip=ip,
        request_id=request_id,
    )


async def _profile(conn: asyncpg.Connection, actor: Actor) -> Profile:
    agent = await agents.get_in(conn, actor.tenant_id, actor.user_id)
    tenant = await tenants.get_in(conn, actor.tenant_id)
    if agent is None or tenant is None:
        raise Unauthorized("the account no longer exists")
    return Profile(
        **msgspec.structs.asdict(agent),
        permissions=sorted(actor.permissions),
        tenant=tenant,
        auth_method="api_key" if actor.api_key_id else "session",
    )


async def _start_session(
    conn: asyncpg.Connection, settings: Settings, actor: Actor, user_agent: str | None
) -> AuthSession:
    session_id, expires_at = await sessions.create(
        conn,
        tenant_id=actor.tenant_id,
        user_id=actor.user_id,
        ip=actor.ip,
        user_agent=user_agent,
        ttl_seconds=settings.jwt_ttl_seconds,
    )
    actor = msgspec.structs.replace(actor, session_id=session_id)
    return _auth_session(settings, actor, session_id, expires_at, await _profile(conn, actor))


def _auth_session(
    settings: Settings, actor: Actor, session_id: UUID, expires_at: datetime, profile: Profile
) -> AuthSession:
    token = tokens.issue(
        settings.jwt_secret,
        settings.jwt_audience,
        user_id=actor.user_id,
        tenant_id=actor.tenant_id,
        session_id=session_id,
        expires_at=expires_at,
    )
    return AuthSession(
        access_token=token,
        token_type="bearer",
        expires_at=expires_at,
        agent=profile,
        csrf_token=csrf.token_for(settings.jwt_secret, session_id),
    )
