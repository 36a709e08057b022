"""Row-level security: PostgreSQL itself keeps tenants apart, even from a query without a tenant filter."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from omnistream.config import Settings
from omnistream.db import APP_ROLE, Database, tenant_scoped
from tests.conftest import Tenant, create_agent, ingest


@pytest.fixture
async def app_conn(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the application's role, exactly as the app's pool makes them."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def admin_conn(database: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the schema owner (superuser), for looking at the catalogue."""
    conn = await asyncpg.connect(database)
    try:
        yield conn
    finally:
        await conn.close()


async def as_tenant(conn: asyncpg.Connection, tenant_id: str) -> None:
    await conn.execute("SELECT set_config('app.tenant_id', $1, true)", tenant_id)


async def execute_as(conn: asyncpg.Connection, tenant_id: str | None, sql: str, *args: object) -> str:
    async with conn.transaction():
        if tenant_id is not None:
            await as_tenant(conn, tenant_id)
        return await conn.execute(sql, *args)


async def test_app_connects_as_the_app_role(app_conn: asyncpg.Connection) -> None:
    assert await app_conn.fetchval("SELECT current_user") == APP_ROLE


async def test_queries_without_a_tenant_filter_see_only_the_current_tenant(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant, app_conn: asyncpg.Connection
) -> None:
    ours = await create_agent(client, tenant)
    theirs = await create_agent(client, other_tenant)

    async with app_conn.transaction():
        await as_tenant(app_conn, tenant.id)
        emails = {r["email"] for r in await app_conn.fetch("SELECT email FROM users")}
        assert emails == {tenant.admin_email, ours["email"]}
        tenants = await app_conn.fetch("SELECT id FROM tenants")
        assert [str(r["id"]) for r in tenants] == [tenant.id]
        role_tenants = {str(r["tenant_id"]) for r in await app_conn.fetch("SELECT tenant_id FROM roles")}
        assert role_tenants == {tenant.id}
        assert {str(r["tenant_id"]) for r in await app_conn.fetch("SELECT tenant_id FROM sessions")} == {tenant.id}
        logged = {str(r["tenant_id"]) for r in await app_conn.fetch("SELECT tenant_id FROM activity_logs")}
        assert logged == {tenant.id}
        # Even naming the other tenant's rows outright finds nothing.
        assert await app_conn.fetchval("SELECT count(*) FROM users WHERE id = $1", UUID(theirs["id"])) == 0
        assert await app_conn.fetchval("SELECT count(*) FROM users WHERE tenant_id = $1", UUID(other_tenant.id)) == 0

    async with app_conn.transaction():
        await as_tenant(app_conn, other_tenant.id)
        emails = {r["email"] for r in await app_conn.fetch("SELECT email FROM users")}
        assert emails == {other_tenant.admin_email, theirs["email"]}


async def test_the_tenant_setting_ends_with_the_transaction(
    client: AsyncTestClient, tenant: Tenant, app_conn: asyncpg.Connection
) -> None:
    async with app_conn.transaction():
        await as_tenant(app_conn, tenant.id)
        assert await app_conn.fetchval("SELECT count(*) FROM users") == 1
    # A pooled connection handed to the next request carries no tenant over.
    assert await app_conn.fetchval("SELECT count(*) FROM users") == 0


async def test_no_tenant_set_sees_nothing(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant, app_conn: asyncpg.Connection
) -> None:
    for table in ("users", "tenants", "roles", "sessions", "api_keys", "activity_logs"):
        assert await app_conn.fetchval(f"SELECT count(*) FROM {table}") == 0, table
    async with app_conn.transaction():
        await as_tenant(app_conn, "")
        assert await app_conn.fetchval("SELECT count(*) FROM users") == 0


async def test_writes_into_another_tenant_are_refused(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant, app_conn: asyncpg.Connection, database: str
) -> None:
    plant = "INSERT INTO roles (tenant_id, name, base_role) VALUES ($1, 'Planted', 'admin')"
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        await execute_as(app_conn, tenant.id, plant, UUID(other_tenant.id))
    # Moving one's own row into another tenant is refused as well.
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        await execute_as(
            app_conn, tenant.id, "UPDATE roles SET tenant_id = $1 WHERE name = 'Agent'", UUID(other_tenant.id)
        )
    # And with no tenant set, nothing can be written at all.
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        await execute_as(app_conn, None, plant, UUID(other_tenant.id))

    async with app_conn.transaction():
        await as_tenant(app_conn, tenant.id)
        # Updates and deletes aimed at the other tenant touch nothing.
        assert await app_conn.execute("UPDATE users SET name = 'Pwned'") == "UPDATE 1"
        assert await app_conn.execute("DELETE FROM activity_logs WHERE tenant_id = $1", UUID(other_tenant.id)) == (
            "DELETE 0"
        )
        await app_conn.execute("UPDATE users SET name = 'Ada Admin'")

    owner = await asyncpg.connect(database)
    try:
        names = await owner.fetch("SELECT name FROM roles WHERE tenant_id = $1 ORDER BY name", UUID(other_tenant.id))
        assert [r["name"] for r in names] == ["Admin", "Agent", "Supervisor"]
        their_admin = await owner.fetchval("SELECT name FROM users WHERE id = $1", UUID(other_tenant.admin_id))
        assert their_admin == "Ada Admin"
        assert await owner.fetchval("SELECT count(*) FROM activity_logs WHERE tenant_id = $1", UUID(other_tenant.id))
    finally:
        await owner.close()
    # Through the API, the other tenant is untouched.
    response = await client.get("/api/roles", headers=other_tenant.headers)
    assert {r["name"] for r in response.json()["roles"]} == {"Agent", "Supervisor", "Admin"}


async def test_every_tenant_table_has_row_level_security(admin_conn: asyncpg.Connection) -> None:
    tables = await admin_conn.fetch(
        """SELECT c.oid, c.relname, c.relrowsecurity, c.relforcerowsecurity, pg_get_userbyid(c.relowner) AS owner
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
              AND EXISTS (SELECT 1 FROM pg_attribute a
                           WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)"""
    )
    names = {t["relname"] for t in tables}
    assert {"roles", "users", "sessions", "api_keys", "activity_logs"} <= names
    owner = await admin_conn.fetchval("SELECT current_user")
    problems = []
    for table in tables:
        if not table["relrowsecurity"]:
            problems.append(f"{table['relname']}: row-level security is off")
        # The owner skips its own table's policies unless they are forced.
        if not table["relforcerowsecurity"]:
            problems.append(f"{table['relname']}: row-level security is not forced")
        policies = await admin_conn.fetch(
            """SELECT polname, polcmd::text AS polcmd, polpermissive, pg_get_expr(polqual, polrelid) AS using_expr,
                      pg_get_expr(polwithcheck, polrelid) AS check_expr,
                      ARRAY(SELECT CASE WHEN r = 0 THEN 'public' ELSE r::regrole::text END
                              FROM unnest(polroles) r) AS roles
                 FROM pg_policy WHERE polrelid = $1""",
            table["oid"],
        )
        if not policies:
            problems.append(f"{table['relname']}: no policy")
            continue
        restrictive_all = [p for p in policies if p["polcmd"] == "*" and "tenant_id" in (p["using_expr"] or "")]
        if not restrictive_all:
            problems.append(f"{table['relname']}: no policy for every command that compares tenant_id")
        for policy in policies:
            where = f"{table['relname']}.{policy['polname']}"
            if policy["polname"] == "definer_lookup":
                # The cross-tenant lookups' own policy: for the owner alone, never the service.
                if policy["roles"] != [owner]:
                    problems.append(f"{where}: admits {policy['roles']}, not only the owner")
                continue
            if policy["polpermissive"] and "tenant_id" not in (policy["using_expr"] or ""):
                problems.append(f"{where}: a permissive policy ignores tenant_id")
            if policy["polcmd"] in ("*", "a", "w") and policy["check_expr"] is None and policy["using_expr"] is None:
                problems.append(f"{where}: writes are not checked")
    assert not problems, "\n".join(problems)


async def test_tenants_table_is_isolated_too(admin_conn: asyncpg.Connection) -> None:
    row = await admin_conn.fetchrow(
        "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'public.tenants'::regclass"
    )
    assert row["relrowsecurity"]
    assert row["relforcerowsecurity"]
    assert await admin_conn.fetchval("SELECT count(*) FROM pg_policy WHERE polrelid = 'public.tenants'::regclass")


async def test_app_role_cannot_bypass_row_level_security(
    admin_conn: asyncpg.Connection, app_conn: asyncpg.Connection
) -> None:
    role = await admin_conn.fetchrow(
        "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = $1", APP_ROLE
    )
    assert role is not None
    assert role["rolsuper"] is False
    assert role["rolbypassrls"] is False
    assert role["rolcreaterole"] is False
    # Nor through a role it is a member of.
    inherited = await admin_conn.fetchval(
        """SELECT count(*) FROM pg_roles r
            WHERE pg_has_role($1, r.oid, 'USAGE') AND (r.rolsuper OR r.rolbypassrls)""",
        APP_ROLE,
    )
    assert inherited == 0
    # Seen from the app's own connection, and it cannot switch policies off.
    assert (
        await app_conn.fetchval("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user") is False
    )
    assert await app_conn.fetchval("SELECT current_setting('row_security')") == "on"
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await app_conn.execute("ALTER TABLE users DISABLE ROW LEVEL SECURITY")
    # The migration ledger is out of its reach.
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await app_conn.fetch("SELECT * FROM schema_migrations")


# ------------------------------------------------------------------ tenant-scoped keys

TENANT_TABLES = """
    SELECT c.oid, c.relname
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
       AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
                                                  AND NOT a.attisdropped)
"""


# Unique across tenants on purpose, each for its reason.
GLOBAL_BY_DESIGN = {
    # a phone number, page, Instagram account or mailbox is connected to one tenant at most:
    # inbound webhooks are routed by it before any tenant is known
    "integration_accounts_route_key",
}


async def tenant_key_problems(conn: asyncpg.Connection) -> list[str]:
    """Every tenant-owned table: its primary key led by tenant_id, tenant_id in each unique index,
    and each foreign key to another tenant table matching tenant_id to tenant_id."""
    tables = {r["oid"]: r["relname"] for r in await conn.fetch(TENANT_TABLES)}
    problems = []
    for oid, name in tables.items():
        tenant_col = await conn.fetchval(
            "SELECT attnum FROM pg_attribute WHERE attrelid = $1 AND attname = 'tenant_id'", oid
        )
        if not await conn.fetchval(
            "SELECT attnotnull FROM pg_attribute WHERE attrelid = $1 AND attnum = $2", oid, tenant_col
        ):
            problems.append(f"{name}: tenant_id may be null")
        primary = await conn.fetchval("SELECT conkey FROM pg_constraint WHERE conrelid = $1 AND contype = 'p'", oid)
        if not primary or primary[0] != tenant_col:
            problems.append(f"{name}: the primary key is not led by tenant_id")
        for index in await conn.fetch(
            "SELECT indexrelid::regclass::text AS name, indkey::int2[] AS keys FROM pg_index "
            "WHERE indrelid = $1 AND indisunique",
            oid,
        ):
            if tenant_col not in index["keys"] and index["name"] not in GLOBAL_BY_DESIGN:
                problems.append(f"{name}: unique index {index['name']} lacks tenant_id")
        for fk in await conn.fetch(
            "SELECT conname, conkey, confrelid, confkey FROM pg_constraint WHERE conrelid = $1 AND contype = 'f'", oid
        ):
            if fk["confrelid"] not in tables:
                continue  # a shared table (tenants): referenced by id alone
            target_tenant_col = await conn.fetchval(
                "SELECT attnum FROM pg_attribute WHERE attrelid = $1 AND attname = 'tenant_id'", fk["confrelid"]
            )
            pairs = list(zip(fk["conkey"], fk["confkey"], strict=True))
            if (tenant_col, target_tenant_col) not in pairs:
                problems.append(f"{name}: foreign key {fk['conname']} does not carry tenant_id")
    return problems


async def test_every_tenant_table_is_keyed_by_tenant(admin_conn: asyncpg.Connection) -> None:
    tables = {r["relname"] for r in await admin_conn.fetch(TENANT_TABLES)}
    assert {"users", "conversations", "messages", "automation_events", "working_schedules"} <= tables
    problems = await tenant_key_problems(admin_conn)
    assert not problems, "\n".join(problems)


async def test_the_key_check_finds_a_table_that_breaks_the_rule(admin_conn: asyncpg.Connection) -> None:
    """Tables keyed the old way (id alone, a global unique key, a foreign key by id) are caught."""
    await admin_conn.execute(
        """CREATE TABLE careless_parent (id uuid PRIMARY KEY, tenant_id uuid NOT NULL);
           CREATE TABLE careless (id uuid PRIMARY KEY, tenant_id uuid NOT NULL, code text UNIQUE,
                                  parent_id uuid REFERENCES careless_parent (id))"""
    )
    try:
        problems = [p for p in await tenant_key_problems(admin_conn) if p.startswith("careless")]
    finally:
        await admin_conn.execute("DROP TABLE careless, careless_parent")
    assert "careless: the primary key is not led by tenant_id" in problems
    assert "careless: unique index careless_code_key lacks tenant_id" in problems
    assert "careless: foreign key careless_parent_id_fkey does not carry tenant_id" in problems


async def test_the_database_refuses_a_reference_to_another_tenants_object(
    client: AsyncTestClient, db: Any, tenant: Tenant, other_tenant: Tenant, admin_conn: asyncpg.Connection
) -> None:
    """Even past row-level security (as the schema owner), a row cannot point into another tenant."""
    ours = await ingest(db, tenant, "hello")
    theirs = await ingest(db, other_tenant, "hello")
    their_agent = await create_agent(client, other_tenant)
    their_division = await client.post("/api/divisions", json={"name": "Theirs"}, headers=other_tenant.headers)
    attempts = {
        "a conversation of their contact": (
            "INSERT INTO conversations (tenant_id, contact_id, channel) VALUES ($1, $2, 'whatsapp')",
            UUID(tenant.id),
            theirs.contact_id,
        ),
        "a message in their conversation": (
            "INSERT INTO messages (tenant_id, conversation_id, channel, direction, type, status, sender_type) "
            "VALUES ($1, $2, 'whatsapp', 'inbound', 'text', 'received', 'contact')",
            UUID(tenant.id),
            theirs.conversation_id,
        ),
        "our conversation assigned to their agent": (
            "UPDATE conversations SET assigned_agent_id = $2 WHERE tenant_id = $1",
            UUID(tenant.id),
            UUID(their_agent["id"]),
        ),
        "our conversation in their division": (
            "UPDATE conversations SET division_id = $2 WHERE tenant_id = $1",
            UUID(tenant.id),
            UUID(their_division.json()["id"]),
        ),
        "a note on their conversation": (
            "INSERT INTO notes (tenant_id, conversation_id, author_id, body) VALUES ($1, $2, $3, 'x')",
            UUID(tenant.id),
            theirs.conversation_id,
            UUID(tenant.admin_id),
        ),
    }
    for sql, *args in attempts.values():
        with pytest.raises(asyncpg.ForeignKeyViolationError, match="violates foreign key"):
            await admin_conn.execute(sql, *args)
    # Our own references are fine, so the refusals above are about the tenant.
    await admin_conn.execute(
        "UPDATE conversations SET assigned_agent_id = $2 WHERE tenant_id = $1 AND id = $3",
        UUID(tenant.id),
        UUID(tenant.admin_id),
        ours.conversation_id,
    )


# ------------------------------------------------------------------ reads that scope themselves


async def test_a_read_sets_its_own_tenant_for_its_statement_alone(
    client: AsyncTestClient, db: Any, tenant: Tenant, other_tenant: Tenant, settings: Settings
) -> None:
    """`Database.read()` runs each select as one statement that sets its tenant first: it sees that
    tenant's rows, leaves nothing set behind, and refuses anything but a select of its own tenant."""
    from omnistream.agents import repository as agents

    single = await Database.connect(settings.database_url, min_size=1, max_size=1)
    try:
        async with single.read(UUID(tenant.id)) as reader:
            mine = await agents.get(reader, UUID(tenant.id), UUID(tenant.admin_id))
            assert mine is not None
            assert mine.email == tenant.admin_email
            # Another tenant's id through this reader is refused before it reaches the database.
            with pytest.raises(ValueError, match="another tenant"):
                await agents.get(reader, UUID(other_tenant.id), UUID(other_tenant.admin_id))
            # A change through a reader is refused too.
            with pytest.raises(TypeError, match="selects only"):
                await agents.touch_last_seen(reader, UUID(tenant.id), UUID(tenant.admin_id))
        async with single.pool.acquire() as conn:
            # The same (only) connection carries no tenant afterwards.
            assert await conn.fetchval("SELECT current_setting('app.tenant_id', true)") in (None, "")
            assert await conn.fetchval("SELECT count(*) FROM users") == 0
    finally:
        await single.close()


def test_every_read_query_is_scoped_by_its_tenant_parameter() -> None:
    """The rewrite replaces every use of the tenant parameter, and only it ($1 is not $10)."""
    sql, position = tenant_scoped(
        "SELECT a FROM t WHERE tenant_id = $2 AND x = $1 AND y = $10"
        " AND EXISTS (SELECT 1 FROM u WHERE u.tenant_id = $2)",
        ("x", "tenant_id", *(f"p{i}" for i in range(3, 11))),
    )
    assert position == 1
    assert "$2::uuid::text" in sql
    assert sql.count("tenant_scope.tenant_id") == 2
    assert "$1 AND y = $10" in sql
    with pytest.raises(ValueError, match=":tenant_id"):
        tenant_scoped("SELECT 1 FROM t WHERE id = $1", ("id",))
