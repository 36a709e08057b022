"""Benchmarks run against the same embedded servers the tests use, in a scratch folder."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from uuid import UUID, uuid4

from omnistream.auth import service as auth
from omnistream.auth.schemas import RegisterRequest
from omnistream.config import load_settings
from omnistream.db import APP_ROLE, Database, ensure_app_login, ensure_database, migrate, with_database

warnings.filterwarnings("ignore", module="platformdirs")


@dataclass(frozen=True)
class BenchServers:
    admin_url: str  # schema owner, the benchmark database
    app_url: str  # the app role, row-level security applies
    redis_url: str


@contextmanager
def servers(database: str = "omnistream_bench") -> Iterator[BenchServers]:
    """BENCH_DATABASE_URL (a superuser URL) and BENCH_REDIS_URL, or fresh embedded servers."""
    pg, redis = os.environ.get("BENCH_DATABASE_URL"), os.environ.get("BENCH_REDIS_URL")
    embedded = None
    if not (pg and redis):
        from omnistream.embedded import EmbeddedServers

        embedded = EmbeddedServers(tempfile.mkdtemp(prefix="omni-bench-"))
        urls = embedded.start()
        pg, redis = pg or urls.database_url, redis or urls.redis_url
    password = secrets.token_urlsafe(16)

    async def prepare() -> None:
        await ensure_database(pg, database)
        await migrate(with_database(pg, database))
        await ensure_app_login(pg, password)

    asyncio.run(prepare())
    try:
        yield BenchServers(
            admin_url=with_database(pg, database),
            app_url=with_database(pg, database, user=APP_ROLE, password=password),
            redis_url=redis,
        )
    finally:
        if embedded is not None:
            embedded.stop()
            shutil.rmtree(embedded.data_dir, ignore_errors=True)


async def new_tenant(db: Database) -> UUID:
    """A registered organisation (its admin included), as a tenant signs up."""
    settings = load_settings(environ={}, jwt_secret="x" * 40)
    session = await auth.register(
        db,
        settings,
        RegisterRequest(
            organization_name=f"Bench {uuid4().hex[:6]}",
            name="Bench",
            email=f"{uuid4().hex}@bench.test",
            password="benchmark password",
        ),
        ip=None,
        user_agent=None,
        request_id=None,
    )
    return session.agent.tenant.id
