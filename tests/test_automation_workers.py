"""Automation with real worker processes: a worker killed in the middle of an event leaves no trace
of it, and the worker that picks the event up again acts exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from uuid import UUID

import asyncpg
import pytest

from omnistream.config import Settings
from omnistream.db import Database
from tests.automation_helpers import events_of, make_rule, runs_of
from tests.conftest import Tenant, ingest


def worker_environment(settings: Settings) -> dict[str, str]:
    return os.environ | {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "OMNISTREAM_REDIS_PREFIX": settings.redis_prefix,
        "OMNISTREAM_JWT_SECRET": settings.jwt_secret,
        "OMNISTREAM_ENV": "test",
        "PYTHONUNBUFFERED": "1",
    }


class Workers:
    """Worker processes started by a test, each logging to its own file (shown when a wait fails)."""

    def __init__(self, settings: Settings, logs: Path) -> None:
        self.settings, self.logs, self.started = settings, logs, []

    def start(self) -> subprocess.Popen[bytes]:
        log = self.logs / f"worker-{len(self.started)}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "omnistream.cli", "worker"],
                env=worker_environment(self.settings),
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self.started.append(process)
        return process

    async def wait_for(self, condition: Callable[[], Awaitable[bool]], what: str, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while not await condition():
            if time.monotonic() > deadline:
                output = "\n".join(log.read_text() for log in sorted(self.logs.glob("worker-*.log")))
                raise AssertionError(f"timed out waiting for {what}; the workers said:\n{output}")
            await asyncio.sleep(0.05)

    def stop(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
            process.wait(10)


@pytest.fixture
def workers(settings: Settings, tmp_path: Path) -> Iterator[Workers]:
    started = Workers(settings, tmp_path)
    yield started
    started.stop()


async def test_a_worker_killed_mid_event_leaves_nothing_and_the_next_acts_once(
    tenant: Tenant, db: Database, database: str, workers: Workers
) -> None:
    tenant_id = UUID(tenant.id)
    rule = await make_rule(
        db,
        tenant,
        "message_received_inbound",
        [{"type": "add_tags", "tags": ["refund"]}, {"type": "add_note", "text": "asked for a refund"}],
        conditions={"message_contains_any": ["refund"]},
    )
    created = await ingest(db, tenant, "I want a refund")
    [event] = [e for e in await events_of(db, tenant) if e["event_type"] == "message_received_inbound"]

    owner = await asyncpg.connect(database)
    blocker = owner.transaction()
    await blocker.start()
    # A run of the rule for the event, written and not committed: the worker acts (tags, note), then
    # its own run waits on this one's key, in the middle of the event. Written without foreign-key
    # checks, whose share lock on the event would keep the worker from claiming it at all.
    await owner.execute("SET session_replication_role = replica")
    await owner.execute(
        """INSERT INTO automation_runs (tenant_id, event_id, rule_id, rule_name, conversation_id, matched, executed,
                                        result, rule_snapshot)
           VALUES ($1, $2, $3, 'Rule', $4, true, true, '{}', '{}')""",
        tenant_id,
        event["id"],
        rule,
        created.conversation_id,
    )
    first = workers.start()

    # Watched from outside the transaction: inside it, pg_stat_activity would stay as first read.
    watcher = await asyncpg.connect(database)

    async def worker_waits_on_the_run() -> bool:
        return bool(
            await watcher.fetchval(
                """SELECT count(*) FROM pg_stat_activity
                    WHERE wait_event_type = 'Lock' AND query ILIKE '%INSERT INTO automation_runs%'
                      AND pid <> pg_backend_pid()"""
            )
        )

    await workers.wait_for(worker_waits_on_the_run, "the worker to act and reach its run")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    await blocker.rollback()

    # The lease (a minute) is what the next worker waits for; here it runs out now.
    await owner.execute("UPDATE automation_events SET available_at = now() WHERE id = $1", event["id"])
    async with db.tenant(tenant_id) as conn:
        tags = await conn.fetchval("SELECT tags FROM conversations WHERE id = $1", created.conversation_id)
    assert tags == []  # what the killed worker did went with its transaction
    assert await runs_of(db, tenant) == []

    workers.start()

    async def event_done() -> bool:
        return all(e["status"] == "done" for e in await events_of(db, tenant))

    await workers.wait_for(event_done, "the second worker to process the event")
    [run] = await runs_of(db, tenant)
    assert (run["rule_id"], run["executed"]) == (rule, True)
    async with db.tenant(tenant_id) as conn:
        tags = await conn.fetchval("SELECT tags FROM conversations WHERE id = $1", created.conversation_id)
        notes = await conn.fetchval(
            "SELECT count(*) FROM notes WHERE conversation_id = $1 AND author_type = 'automation'",
            created.conversation_id,
        )
    assert (tags, notes) == (["refund"], 1)
    again = [e for e in await events_of(db, tenant) if e["id"] == event["id"]]
    assert again[0]["attempts"] == 2
    await owner.close()
    await watcher.close()
