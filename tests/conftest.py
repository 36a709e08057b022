"""Real PostgreSQL and Redis for every test.

One embedded PostgreSQL and Redis per test process (or TEST_DATABASE_URL / TEST_REDIS_URL,
superuser URL and Redis URL of servers you run). Migrations go once into a template
database; every test gets a database cloned from it (or one a test before it used, emptied
again, when its schema is still the template's) and a Redis key prefix of its own.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from litestar.testing.transport import TestClientTransport
from litestar.types import Empty

from omnistream.app import create_app
from omnistream.config import Settings, load_settings
from omnistream.db import APP_ROLE, ensure_app_login, ensure_database, migrate, with_database
from omnistream.security.passwords import use_cheap_hashing_for_tests
from tests.standins import (
    GraphStandIn,
    S3StandIn,
    SmtpSink,
    start_graph_stand_in,
    start_s3_stand_in,
    start_smtp_sink,
)

use_cheap_hashing_for_tests()
warnings.filterwarnings("ignore", module="platformdirs")

TEMPLATE = "omnistream_template"
APP_PASSWORD = "test-app-password"
PASSWORD = "correct horse battery"
JWT_SECRET = secrets.token_urlsafe(32)  # one a test process: the apps its tests share are built with it


@dataclass(frozen=True)
class Servers:
    admin_url: str  # superuser, database "postgres"
    redis_url: str


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    external_pg, external_redis = os.environ.get("TEST_DATABASE_URL"), os.environ.get("TEST_REDIS_URL")
    embedded = None
    if not (external_pg and external_redis):
        from omnistream.embedded import EmbeddedServers

        data_dir = tempfile.mkdtemp(prefix="omni-test-")
        embedded = EmbeddedServers(data_dir, durable=False)  # a throwaway folder: nothing to keep after a crash
        urls = embedded.start(with_postgres=not external_pg, with_redis=not external_redis)
        external_pg = external_pg or urls.database_url
        external_redis = external_redis or urls.redis_url

    async def prepare() -> None:
        await ensure_database(external_pg, TEMPLATE)
        await migrate(with_database(external_pg, TEMPLATE))
        await ensure_app_login(external_pg, APP_PASSWORD)

    asyncio.run(prepare())
    try:
        yield Servers(admin_url=external_pg, redis_url=external_redis)
    finally:
        if embedded is not None:
            embedded.stop()
            shutil.rmtree(embedded.data_dir, ignore_errors=True)


# What a database's schema is: its relations (with row security and grants), functions, triggers,
# policies and extensions. A database emptied after its test is reused only while this is still
# the template's, so a test that changed the schema cannot leave that change to the next one.
_SCHEMA_FINGERPRINT = """
SELECT md5(string_agg(item, ',' ORDER BY item)) FROM (
  SELECT 'rel:' || c.oid::regclass::text || c.relkind::text || c.relrowsecurity::text || c.relforcerowsecurity::text
         || coalesce(c.relacl::text, '')
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg_temp%'
     AND n.nspname NOT LIKE 'pg_toast_temp%'
  UNION ALL
  SELECT 'fn:' || p.oid::regprocedure::text || md5(p.prosrc) || coalesce(p.proacl::text, '') || p.prosecdef::text
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
   WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  UNION ALL
  SELECT 'trigger:' || tgrelid::regclass::text || tgname || tgenabled::text FROM pg_trigger WHERE NOT tgisinternal
  UNION ALL
  SELECT 'policy:' || polrelid::regclass::text || polname || coalesce(pg_get_expr(polqual, polrelid), '')
    FROM pg_policy
  UNION ALL
  SELECT 'extension:' || extname FROM pg_extension
) AS schema(item)
"""
_EMPTY_TABLES = """
SELECT array_agg(c.oid::regclass::text) FILTER (WHERE c.relkind IN ('r', 'p') AND c.relname <> ALL($1::text[])),
       coalesce(array_agg(c.oid::regclass::text) FILTER (WHERE c.relkind = 'S'), '{}')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public'
"""


@dataclass
class _Template:
    fingerprint: str
    seeded_tables: list[str]  # tables the migrations fill (schema_migrations): never emptied


_template: _Template | None = None
_clean_databases: list[str] = []  # this process's databases, emptied after their test


async def _template_facts(admin_url: str) -> _Template:
    global _template
    if _template is None:
        conn = await asyncpg.connect(with_database(admin_url, TEMPLATE))
        try:
            tables = await conn.fetch(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')"
            )
            seeded = [t["relname"] for t in tables if await conn.fetchval(f'SELECT EXISTS (TABLE "{t["relname"]}")')]
            _template = _Template(await conn.fetchval(_SCHEMA_FINGERPRINT), seeded)
        finally:
            await conn.close()
    return _template


async def _emptied(admin_url: str, name: str) -> bool:
    """Whether the database is as the template left it again: its schema untouched and its
    tables emptied (far cheaper than cloning the template anew for every test)."""
    template = await _template_facts(admin_url)
    try:
        conn = await asyncpg.connect(with_database(admin_url, name))
    except (OSError, asyncpg.PostgresError):
        return False
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        if await conn.fetchval(_SCHEMA_FINGERPRINT) != template.fingerprint:
            return False
        await conn.execute("SET lock_timeout = '5s'")
        tables, sequences = await conn.fetchrow(_EMPTY_TABLES, template.seeded_tables)
        # DELETE, not TRUNCATE: a test leaves a few rows, and TRUNCATE costs a scan of the shared
        # buffers per table. With foreign keys and triggers off (replica), in any order.
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute(
                ";".join([f"DELETE FROM {t}" for t in tables] + [f"ALTER SEQUENCE {q} RESTART" for q in sequences])
            )
        return True
    except (OSError, asyncpg.PostgresError):
        return False
    finally:
        await conn.close()


@pytest.fixture
async def database(servers: Servers) -> AsyncIterator[str]:
    """A migrated database with nothing in it; yields its superuser URL."""
    if _clean_databases:
        name = _clean_databases.pop()
    else:
        name = f"test_{uuid4().hex[:16]}"
        admin = await asyncpg.connect(servers.admin_url)
        try:
            await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
        finally:
            await admin.close()
    yield with_database(servers.admin_url, name)
    if await _emptied(servers.admin_url, name):
        _clean_databases.append(name)
        return
    admin = await asyncpg.connect(servers.admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def graph_stand_in() -> Iterator[GraphStandIn]:
    yield from start_graph_stand_in()


@pytest.fixture(scope="session")
def s3_stand_in() -> Iterator[S3StandIn]:
    """moto's S3 server; each test that uses it makes a bucket of its own."""
    yield from start_s3_stand_in()


@pytest.fixture
def graph(graph_stand_in: GraphStandIn) -> GraphStandIn:
    """The Graph API stand-in, emptied for this test (the settings of every test point at it)."""
    graph_stand_in.reset()
    return graph_stand_in


@pytest.fixture(scope="session")
def smtp_sink() -> Iterator[SmtpSink]:
    yield from start_smtp_sink()


@pytest.fixture
def smtp(smtp_sink: SmtpSink) -> SmtpSink:
    """The SMTP sink (aiosmtpd on loopback), emptied for this test: point an account's SMTP
    settings at smtp.host and smtp.port."""
    smtp_sink.reset()
    return smtp_sink


@pytest.fixture
def settings(servers: Servers, database: str, graph_stand_in: GraphStandIn, tmp_path: Any) -> Settings:
    return load_settings(
        environ={},
        env="test",
        database_url=with_database(database, database.rsplit("/", 1)[-1], user=APP_ROLE, password=APP_PASSWORD),
        migrations_database_url=database,
        redis_url=servers.redis_url,
        redis_prefix=f"test-{uuid4().hex[:12]}",
        jwt_secret=JWT_SECRET,
        db_pool_min=1,
        db_pool_max=10,
        graph_api_url=graph_stand_in.url,
        data_dir=str(tmp_path / "data"),
    )


# What differs from one test's settings to the next; the rest is the same in a test process.
_PER_TEST = {"database_url": "", "migrations_database_url": "", "redis_prefix": "", "data_dir": ""}
_apps: dict[bytes, Litestar] = {}


def app_for(settings: Settings) -> Litestar:
    """The app for these settings: built once a process for what tests share (building one costs
    half a second), and started by each test with its own database, Redis prefix and folder, as
    the app reads them from its state when it starts."""
    key = msgspec.json.encode(msgspec.structs.replace(settings, **_PER_TEST))
    app = _apps.get(key)
    if app is None:
        app = _apps[key] = create_app(settings)
    app.state.settings = settings
    # Resources resolved once per app (use_cache) are the last test's: resolved again.
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            for provide in handler.resolve_dependencies().values():
                provide.value = Empty
    return app


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncTestClient]:
    async with AsyncTestClient(app=app_for(settings)) as test_client:
        yield test_client


class _PeerTransport(TestClientTransport):  # type: ignore[type-arg]
    def __init__(self, client: AsyncTestClient, host: str) -> None:
        super().__init__(client=client)
        self.host = host

    def parse_request(self, request: httpx.Request) -> dict[str, Any]:
        scope = super().parse_request(request)
        scope["client"] = (self.host, 40000)
        return scope

    async def __aenter__(self) -> _PeerTransport:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def aclose(self) -> None:
        return None


def from_address(client: AsyncTestClient, host: str) -> httpx.AsyncClient:
    """A client of the same running app whose connection comes from `host` (the test client's
    own connection comes from "testclient", which is no address)."""
    return httpx.AsyncClient(transport=_PeerTransport(client, host), base_url=str(client.base_url))


@dataclass
class Tenant:
    """A registered organisation and its admin's credentials, as a test user holds them."""

    id: str
    slug: str
    admin_id: str
    admin_email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def register(client: AsyncTestClient, name: str | None = None, **overrides: Any) -> Tenant:
    name = name or f"Org {uuid4().hex[:8]}"
    body = {
        "organization_name": name,
        "name": "Ada Admin",
        "email": f"admin-{uuid4().hex[:8]}@example.com",
        "password": PASSWORD,
    } | overrides
    response = await client.post("/api/auth/register", json=body)
    assert response.status_code == 201, response.text
    data = response.json()
    client.cookies.clear()  # tests authenticate explicitly, one identity per request
    return Tenant(
        id=data["agent"]["tenant"]["id"],
        slug=data["agent"]["tenant"]["slug"],
        admin_id=data["agent"]["id"],
        admin_email=body["email"],
        token=data["access_token"],
    )


async def create_agent(
    client: AsyncTestClient, tenant: Tenant, role: str = "agent", **overrides: Any
) -> dict[str, Any]:
    """An agent with one of the built-in roles, signed in; returns the agent plus its auth headers."""
    roles = (await client.get("/api/roles", headers=tenant.headers)).json()["roles"]
    role_id = next(r["id"] for r in roles if r["is_builtin"] and r["base_role"] == role)
    body = {
        "email": f"{role}-{uuid4().hex[:8]}@example.com",
        "name": f"{role.title()} One",
        "password": PASSWORD,
        "role_id": role_id,
    } | overrides
    response = await client.post("/api/agents", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    agent = response.json()
    login = await client.post("/api/auth/login", json={"email": body["email"], "password": body["password"]})
    assert login.status_code == 200, login.text
    client.cookies.clear()
    agent["headers"] = {"Authorization": f"Bearer {login.json()['access_token']}"}
    return agent


@pytest.fixture
async def tenant(client: AsyncTestClient) -> Tenant:
    return await register(client)


@pytest.fixture
async def other_tenant(client: AsyncTestClient) -> Tenant:
    return await register(client)


@pytest.fixture
async def arq(settings: Settings) -> AsyncIterator[Any]:
    """The arq pool a worker hands its jobs as ctx["redis"], on the test's own queue."""
    import msgspec
    from arq import create_pool
    from arq.connections import RedisSettings

    pool = await create_pool(
        RedisSettings.from_dsn(settings.redis_url),
        job_serializer=msgspec.msgpack.encode,
        job_deserializer=msgspec.msgpack.decode,
        default_queue_name=f"{settings.redis_prefix}:queue",
    )
    try:
        yield pool
    finally:
        await pool.aclose()


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Any]:
    """The service layer's own pool (as the app role), for tests that call services directly."""
    from omnistream.db import Database

    database = await Database.connect(settings.database_url, min_size=1, max_size=25)
    try:
        yield database
    finally:
        await database.close()


def inbound_message(
    tenant: Tenant,
    text: str | None = "hello",
    *,
    external_id: str | None = None,
    channel: str = "whatsapp",
    **overrides: Any,
) -> Any:
    """A customer's message as a channel webhook would deliver it (a fresh sender and provider id
    unless given)."""
    from uuid import UUID

    from omnistream.messages.schemas import InboundMessage

    return InboundMessage(
        tenant_id=UUID(tenant.id),
        channel=channel,
        external_id=external_id or f"628{uuid4().int % 10**10:010d}",
        provider_message_id=overrides.pop("provider_message_id", f"wamid.{uuid4().hex}"),
        text=text,
        contact_name=overrides.pop("contact_name", "Customer"),
        **overrides,
    )


async def ingest(db: Any, tenant: Tenant, text: str | None = "hello", **fields: Any) -> Any:
    """A customer's message arriving through the ingestion service."""
    from omnistream.messages.service import ingest_inbound

    return await ingest_inbound(db, inbound_message(tenant, text, **fields))


def fingerprint(payload_text: str) -> str:
    """An event's `payload_hash` worked out apart from the database: SHA-256 hex of the payload's
    jsonb text (`payload::text`), PostgreSQL's normal form of it."""
    import hashlib

    return hashlib.sha256(payload_text.encode()).hexdigest()


PROBLEM_JSON = "application/problem+json"


def problem(response: Any, status: int) -> dict[str, Any]:
    """The RFC 9457 body of an error response, after checking its status, media type and fields."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    return body


def refused(response: Any) -> None:
    """A client error with problem details: never a 500, never a success."""
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers


def headers_of(who: Tenant | dict[str, Any]) -> dict[str, str]:
    """The auth headers of a tenant's admin or of an agent made by `create_agent`."""
    return who.headers if isinstance(who, Tenant) else who["headers"]
