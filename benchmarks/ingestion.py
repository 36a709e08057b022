"""Inbound messages per second through the ingestion service, and a check of what it stored.

python -m benchmarks.ingestion [--messages 10000] [--contacts 2000] [--concurrency 16] [--batch 10]
                               [--warmup 2000]

The same messages go in twice, for two tenants: delivered one at a time, then in deliveries
of up to --batch messages (what a channel worker hands over when its queue holds several);
each run is checked against what it must have stored.

The server is fresh, so another tenant's messages go first (timed apart) and the tables are
analysed, as autovacuum would have done on a running system within its first minute: plans
made against empty, never-analysed tables scan them whole, and each connection keeps those
plans until the statistics change.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from uuid import UUID

import asyncpg
import uvloop

from benchmarks._servers import BenchServers, new_tenant, servers
from omnistream.db import Database
from omnistream.messages.schemas import InboundMessage
from omnistream.messages.service import ingest_inbound, ingest_inbound_many
from omnistream.security.passwords import use_cheap_hashing_for_tests


def _messages(tenant_id: UUID, count: int, contacts: int) -> list[InboundMessage]:
    rng = random.Random(7)
    senders = [f"62812{n:07d}" for n in range(contacts)]
    # Every contact writes at least once, the rest at random: realistic bursts per thread.
    order = senders + [rng.choice(senders) for _ in range(count - contacts)]
    rng.shuffle(order)
    return [
        InboundMessage(
            tenant_id=tenant_id,
            channel="whatsapp",
            external_id=sender,
            provider_message_id=f"wamid.{i}",
            text=f"message {i} about order {rng.randint(1, 10**6)}",
            contact_name=f"Customer {sender}",
        )
        for i, sender in enumerate(order)
    ]


async def _ingest_all(db: Database, batch: list[InboundMessage], concurrency: int, size: int = 1) -> float:
    """Seconds to ingest the batch in deliveries of `size` messages, `concurrency` at a time."""
    queue: asyncio.Queue[list[InboundMessage]] = asyncio.Queue()
    for start in range(0, len(batch), size):
        queue.put_nowait(batch[start : start + size])

    async def worker() -> None:
        while not queue.empty():
            await ingest_inbound_many(db, queue.get_nowait())

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def _analyze(admin_url: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def _stored_as_expected(admin_url: str, tenant_id: UUID, count: int, contacts: int) -> dict[str, tuple]:
    """What differs from what ingesting `count` messages of `contacts` contacts must store."""
    conn = await asyncpg.connect(admin_url)
    try:
        stored = await conn.fetchrow(
            """SELECT (SELECT count(*) FROM messages WHERE tenant_id = $1) AS messages,
                      (SELECT count(*) FROM conversations WHERE tenant_id = $1) AS conversations,
                      (SELECT count(*) FROM contacts WHERE tenant_id = $1) AS contacts,
                      (SELECT count(*) FROM automation_events WHERE tenant_id = $1
                          AND event_type = 'message_received_inbound') AS message_events,
                      (SELECT count(*) FROM automation_events WHERE tenant_id = $1
                          AND event_type = 'conversation_created') AS created_events,
                      (SELECT sum(message_count) FROM conversations WHERE tenant_id = $1) AS counted""",
            tenant_id,
        )
    finally:
        await conn.close()
    expected = {
        "messages": count,
        "conversations": contacts,
        "contacts": contacts,
        "message_events": count,
        "created_events": contacts,
        "counted": count,
    }
    return {k: (stored[k], v) for k, v in expected.items() if stored[k] != v}


async def run(
    bench: BenchServers, count: int, contacts: int, concurrency: int, size: int, warmup: int
) -> dict[str, float]:
    use_cheap_hashing_for_tests()
    print(f"ingestion: {count} messages from {contacts} contacts, {concurrency} deliveries at a time")
    if warmup:
        db = await Database.connect(bench.app_url, min_size=concurrency, max_size=concurrency)
        try:
            elapsed = await _ingest_all(db, _messages(await new_tenant(db), warmup, max(1, warmup // 5)), concurrency)
        finally:
            await db.close()
        await _analyze(bench.admin_url)
        print(f"  warm-up, another tenant, fresh tables: {warmup / elapsed:,.0f} messages/s ({warmup} messages)")
    # New connections: none keeps a plan made before the statistics existed.
    db = await Database.connect(bench.app_url, min_size=concurrency, max_size=concurrency)
    figures, problems = {}, {}
    try:
        for label, delivery in (("one message per delivery", 1), (f"up to {size} messages per delivery", size)):
            tenant_id = await new_tenant(db)
            batch = _messages(tenant_id, count, contacts)
            elapsed = await _ingest_all(db, batch, concurrency, delivery)
            # Redelivery of a tenth of them must store nothing new.
            duplicates = batch[: count // 10]
            dup_started = time.perf_counter()
            results = await asyncio.gather(*(ingest_inbound(db, m) for m in duplicates))
            dup_elapsed = time.perf_counter() - dup_started
            assert all(r.duplicate for r in results)
            if wrong := await _stored_as_expected(bench.admin_url, tenant_id, count, contacts):
                problems[label] = wrong
            figures[label] = count / elapsed
            print(f"  {label}: {count / elapsed:,.0f} messages/s ({elapsed:.1f} s in all)")
            print(f"    stored exactly as expected: {not wrong}" + (f"  MISMATCH {wrong}" if wrong else ""))
            print(f"    redelivered duplicates: {len(duplicates) / dup_elapsed:,.0f} messages/s, none stored again")
    finally:
        await db.close()
    if problems:
        raise SystemExit(1)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--contacts", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2_000)
    args = parser.parse_args()
    with servers() as bench:
        uvloop.run(run(bench, args.messages, args.contacts, args.concurrency, args.batch, args.warmup))


if __name__ == "__main__":
    main()
