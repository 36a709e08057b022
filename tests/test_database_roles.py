"""The database roles: row-level security holds even for the schema's owner, the service refuses
to run as a role it would not hold, and only the service's role may call the schema's functions."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from uuid import uuid4

import asyncpg
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from omnistream.app import create_app
from omnistream.config import Settings
from omnistream.db import APP_ROLE, Database, migrate, with_database
from tests.conftest import PASSWORD, Servers, register


@dataclass(frozen=True)
class OwnedDatabase:
    owner_url: str
    app_url: str


@pytest.fixture
async def owned_database(servers: Servers, settings: Settings) -> AsyncIterator[OwnedDatabase]:
    """A database whose schema an ordinary role (no superuser, no BYPASSRLS) owns and migrated, as
    production's MIGRATIONS_DATABASE_URL does."""
    owner, password = f"owner_{uuid4().hex[:10]}", secrets.token_urlsafe(16)
    name = f"owned_{uuid4().hex[:10]}"
    admin = await asyncpg.connect(servers.admin_url)
    try:
        await admin.execute(f"CREATE ROLE {owner} LOGIN PASSWORD '{password}' NOSUPERUSER NOBYPASSRLS")
        await admin.execute(f'CREATE DATABASE "{name}" OWNER {owner}')
    finally:
        await admin.close()
    owner_url = with_database(servers.admin_url, name, user=owner, password=password)
    await migrate(owner_url)
    app_user, app_password = settings.database_url.split("//", 1)[1].split("@", 1)[0].split(":", 1)
    try:
        yield OwnedDatabase(owner_url, with_database(servers.admin_url, name, user=app_user, password=app_password))
    finally:
        admin = await asyncpg.connect(servers.admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f"DROP ROLE IF EXISTS {owner}")
        finally:
            await admin.close()


async def test_policies_hold_for_an_ordinary_owner_and_the_service_still_works(
    owned_database: OwnedDatabase, settings: Settings
) -> None:
    app_settings = msgspec.structs.replace(settings, database_url=owned_database.app_url)
    async with AsyncTestClient(app=create_app(app_settings)) as client:
        tenant = await register(client, "Owned Co")
        other = await register(client, "Other Co")
        # The cross-tenant lookups (sign-in by email, a slug, an API key) work through the owner's functions.
        login = await client.post("/api/auth/login", json={"email": tenant.admin_email, "password": PASSWORD})
        assert login.status_code == 200, login.text
        client.cookies.clear()
        assert (await client.get(f"/api/public/working-hours/{tenant.slug}")).status_code == 200
        key = await client.post("/api/api-keys", json={"name": "k"}, headers=tenant.headers)
        me = await client.get("/api/auth/me", headers={"X-API-Key": key.json()["key"]})
        assert me.status_code == 200, me.text
        assert me.json()["email"] == tenant.admin_email
        assert (await client.get("/api/auth/me", headers=other.headers)).json()["email"] == other.admin_email

    owner = await asyncpg.connect(owned_database.owner_url)
    try:
        # Forced: the owner itself sees no tenant's rows without naming the tenant...
        for table in ("tenants", "users", "roles", "sessions", "api_keys", "activity_logs"):
            assert await owner.fetchval(f"SELECT count(*) FROM {table}") == 0, table
        async with owner.transaction():
            await owner.execute("SELECT set_config('app.tenant_id', $1, true)", tenant.id)
            assert await owner.fetchval("SELECT count(*) FROM users") == 1
    finally:
        await owner.close()


async def test_the_owner_and_a_superuser_are_refused_as_the_service_role(
    owned_database: OwnedDatabase, servers: Servers, settings: Settings
) -> None:
    for url, reason in (
        (owned_database.owner_url, "it owns tables whose policies it could change or drop: activity_logs, api_keys"),
        (servers.admin_url, "it is a superuser or has BYPASSRLS"),
    ):
        db = await Database.connect(url, min_size=1, max_size=1)
        try:
            assert any(p.startswith(reason) for p in await db.confinement_problems()), url
            with pytest.raises(RuntimeError, match="not held to row-level security"):
                await db.require_confined_role()
        finally:
            await db.close()
    service = await Database.connect(owned_database.app_url, min_size=1, max_size=1)
    try:
        assert await service.confinement_problems() == []
    finally:
        await service.close()

    # Production does not start as the owner.
    production = msgspec.structs.replace(settings, env="production", database_url=owned_database.owner_url)
    with pytest.raises(BaseExceptionGroup) as refused:
        async with create_app(production).lifespan():
            pass
    assert refused.group_contains(RuntimeError, match="owns tables")


async def test_only_the_service_role_may_call_the_schemas_functions(servers: Servers, database: str) -> None:
    outsider, password = f"outsider_{uuid4().hex[:10]}", secrets.token_urlsafe(16)
    admin = await asyncpg.connect(database)
    try:
        await admin.execute(f"CREATE ROLE {outsider} LOGIN PASSWORD '{password}'")
        await admin.execute(f"GRANT USAGE ON SCHEMA public TO {outsider}")
        functions = await admin.fetch(
            """SELECT p.oid::regprocedure::text AS signature, p.prokind
                 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'"""
        )
        public_grants = [
            f["signature"]
            for f in functions
            if await admin.fetchval(
                "SELECT has_function_privilege('public', $1::regprocedure, 'EXECUTE')", f["signature"]
            )
        ]
        assert public_grants == []
        app_lacks = [
            f["signature"]
            for f in functions
            if f["prokind"] == "f"
            and not await admin.fetchval(
                "SELECT has_function_privilege($1, $2::regprocedure, 'EXECUTE')", APP_ROLE, f["signature"]
            )
        ]
        assert app_lacks == []
        conn = await asyncpg.connect(
            with_database(database, database.rsplit("/", 1)[-1], user=outsider, password=password)
        )
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied for function"):
                await conn.fetch("SELECT * FROM auth_login_candidates('someone@example.com')")
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied for function"):
                await conn.fetch("SELECT purge_ended_sessions()")
        finally:
            await conn.close()
    finally:
        await admin.execute(f"DROP OWNED BY {outsider}")
        await admin.execute(f"DROP ROLE {outsider}")
        await admin.close()
