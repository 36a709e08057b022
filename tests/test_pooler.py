"""The API behind pgbouncer in transaction pooling mode, as production runs many API processes.

A transaction pooler hands each transaction whichever server connection is free, so anything
set for a session would reach whoever gets that server connection next: the tenant must live
exactly as long as one transaction. Two tenants read and write at once through a pool of four
server connections; every answer must be that tenant's, complete.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import asyncpg
import httpx
import msgspec
import pytest

from omnistream.app import create_app
from omnistream.config import Settings
from omnistream.db import APP_ROLE, TENANT_SETTING, Database
from tests.conftest import APP_PASSWORD, Servers, Tenant, ingest, register

PGBOUNCER = shutil.which("pgbouncer") or next(
    (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(p, os.X_OK)), None
)
SERVER_CONNECTIONS = 4

pytestmark = pytest.mark.skipif(PGBOUNCER is None, reason="pgbouncer is not installed (apt-get install pgbouncer)")


def _version() -> tuple[int, ...]:
    out = subprocess.run([PGBOUNCER, "--version"], capture_output=True, text=True, check=True).stdout  # type: ignore[list-item]
    found = re.search(r"(\d+)\.(\d+)", out)
    assert found, out
    return tuple(int(part) for part in found.groups())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Pgbouncer:
    def __init__(self, servers: Servers, *, prepared_statements: bool) -> None:
        target = urlsplit(servers.admin_url)
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="omni-pgbouncer-"))
        (self.dir / "users.txt").write_text(f'"{APP_ROLE}" "{APP_PASSWORD}"\n')
        settings = {
            "listen_addr": "127.0.0.1",
            "listen_port": self.port,
            "unix_socket_dir": "",
            "auth_type": "scram-sha-256",
            "auth_file": self.dir / "users.txt",
            "pool_mode": "transaction",
            "default_pool_size": SERVER_CONNECTIONS,
            "min_pool_size": 0,
            "reserve_pool_size": 0,
            "max_client_conn": 500,
            "max_db_connections": SERVER_CONNECTIONS,
            "logfile": self.dir / "pgbouncer.log",
            "pidfile": self.dir / "pgbouncer.pid",
            "ignore_startup_parameters": "extra_float_digits",
        }
        if prepared_statements:
            settings["max_prepared_statements"] = 200
        lines = ["[databases]", f"* = host={target.hostname} port={target.port}", "[pgbouncer]"]
        lines += [f"{key} = {value}" for key, value in settings.items()]
        (self.dir / "pgbouncer.ini").write_text("\n".join(lines) + "\n")
        command = [PGBOUNCER, str(self.dir / "pgbouncer.ini")]
        if os.geteuid() == 0:  # pgbouncer refuses to run as root
            command[1:1] = ["-u", "nobody"]
            shutil.chown(self.dir, "nobody")
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)  # type: ignore[arg-type]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        log = (self.dir / "pgbouncer.log").read_text() if (self.dir / "pgbouncer.log").exists() else ""
        self.stop()
        raise RuntimeError(f"pgbouncer did not start: {log[-2000:]}")

    def url(self, database: str) -> str:
        return f"postgresql://{APP_ROLE}:{APP_PASSWORD}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


MODES = [pytest.param(False, id="no-prepared-statements")]
if PGBOUNCER is not None and _version() >= (1, 21):
    MODES.append(pytest.param(True, id="prepared-statements"))


@pytest.fixture(params=MODES)
def pooler(request: pytest.FixtureRequest, servers: Servers) -> Iterator[tuple[Pgbouncer, bool]]:
    bouncer = Pgbouncer(servers, prepared_statements=request.param)
    try:
        yield bouncer, request.param
    finally:
        bouncer.stop()


@pytest.fixture
def pooled_settings(settings: Settings, pooler: tuple[Pgbouncer, bool]) -> Settings:
    bouncer, prepared = pooler
    database = settings.database_url.rsplit("/", 1)[-1]
    return msgspec.structs.replace(
        settings,
        database_url=bouncer.url(database),
        db_pool_min=1,
        db_pool_max=20,
        db_statement_cache_size=100 if prepared else 0,
    )


CONVERSATIONS_EACH = 12


async def _seed(client: httpx.AsyncClient, db: Database) -> dict[str, Any]:
    """Two tenants, each with its own agents, divisions and conversations."""
    world: dict[str, Any] = {}
    for key in ("a", "b"):
        tenant = await register(client, f"Pooled {key}")
        division = await client.post("/api/divisions", json={"name": f"Team {key}"}, headers=tenant.headers)
        assert division.status_code == 201, division.text
        conversations = {
            str((await ingest(db, tenant, f"hello from {key} {n}")).conversation_id) for n in range(CONVERSATIONS_EACH)
        }
        world[key] = {"tenant": tenant, "division": division.json()["id"], "conversations": conversations}
    return world


async def _check_one(client: httpx.AsyncClient, n: int, mine: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """One request of the mix, and what was wrong with its answer."""
    tenant: Tenant = mine["tenant"]
    kind = n % 6
    if kind == 0:
        response = await client.get("/api/conversations", params={"per_page": 100}, headers=tenant.headers)
        body = response.json()
        ids = {c["id"] for c in body.get("conversations", [])}
        if response.status_code != 200 or ids != mine["conversations"] or body["total"] != CONVERSATIONS_EACH:
            return [f"list: {response.status_code} {len(ids)} rows, total {body.get('total')}"]
    elif kind == 1:
        conversation = sorted(mine["conversations"])[n % CONVERSATIONS_EACH]
        response = await client.get(f"/api/conversations/{conversation}", headers=tenant.headers)
        if response.status_code != 200 or response.json()["id"] != conversation:
            return [f"own conversation: {response.status_code}"]
    elif kind == 2:
        conversation = sorted(theirs["conversations"])[n % CONVERSATIONS_EACH]
        response = await client.get(f"/api/conversations/{conversation}", headers=tenant.headers)
        if response.status_code != 404:
            return [f"other tenant's conversation: {response.status_code}"]
    elif kind == 3:
        response = await client.get("/api/agents", headers=tenant.headers)
        emails = [a["email"] for a in response.json().get("agents", [])]
        if response.status_code != 200 or emails != [tenant.admin_email]:
            return [f"agents: {response.status_code} {emails}"]
    elif kind == 4:
        response = await client.get(f"/api/divisions/{mine['division']}", headers=tenant.headers)
        if response.status_code != 200:
            return [f"own division: {response.status_code}"]
    else:
        conversation = sorted(mine["conversations"])[n % CONVERSATIONS_EACH]
        response = await client.post(
            f"/api/conversations/{conversation}/notes", json={"body": f"note {n}"}, headers=tenant.headers
        )
        if response.status_code != 201:
            return [f"note: {response.status_code} {response.text[:200]}"]
    return []


async def test_two_tenants_at_once_through_a_transaction_pooler(
    servers: Servers, settings: Settings, pooled_settings: Settings
) -> None:
    direct = await Database.connect(settings.database_url, min_size=1, max_size=2)
    try:
        app = create_app(pooled_settings)
        # Litestar's test client runs one request at a time: these go through httpx's ASGI
        # transport instead, all at once, in this event loop.
        async with (
            app.lifespan(),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://pooled") as client,
        ):
            world = await _seed(client, direct)
            requests = 3000
            gate = asyncio.Semaphore(60)

            async def one(n: int) -> list[str]:
                mine, theirs = (world["a"], world["b"]) if (n // 6) % 2 else (world["b"], world["a"])
                async with gate:
                    return await _check_one(client, n, mine, theirs)

            problems = [p for found in await asyncio.gather(*(one(n) for n in range(requests))) for p in found]
            assert not problems, f"{len(problems)} wrong answers of {requests}: {problems[:10]}"

            # Every write landed, each in its own tenant.
            assert await direct_count_notes(direct, world) == {"a": requests // 12, "b": requests // 12}
    finally:
        await direct.close()

    # Whoever connects next finds no tenant left on any server connection.
    bouncer_url = pooled_settings.database_url
    conns = [await asyncpg.connect(bouncer_url, statement_cache_size=0) for _ in range(SERVER_CONNECTIONS * 2)]
    try:

        async def setting(conn: asyncpg.Connection) -> str | None:
            async with conn.transaction():
                await asyncio.sleep(0.05)  # hold the server connection so the others get the rest
                return await conn.fetchval(f"SELECT current_setting('{TENANT_SETTING}', true)")

        left = await asyncio.gather(*(setting(conn) for conn in conns))
        assert all(value in (None, "") for value in left), left
    finally:
        for conn in conns:
            await conn.close()


async def direct_count_notes(db: Database, world: dict[str, Any]) -> dict[str, int]:
    counts = {}
    for key, part in world.items():
        async with db.tenant(UUID(part["tenant"].id)) as conn:
            counts[key] = await conn.fetchval("SELECT count(*) FROM notes")
    return counts
