"""Automation events processed per second by one worker, and how long an event waits.

    python -m benchmarks.automation [--tenants 4] [--rules 50] [--messages 20000] [--contacts 4000]
                                    [--live-rate 400] [--live-seconds 10]

Each tenant has --rules rules of the kinds tenants write most: keyword rules that tag the
conversation, a few that raise the priority of complaints, a welcome tag on new conversations,
an auto-reply with a cooldown, and routing rules for a channel the messages do not come from (so
they never match). Messages come in through the ingestion service, as channel workers deliver
them, and the worker's own processor (`automation_events.processing.Processor`) does the rest.

Backlog: the messages are ingested with no worker running, then one worker drains the queue:
events per second from its first claim to the last event done; then what it stored is checked
(every event done, every conversation tagged as its messages say). Live: the worker runs,
woken by NOTIFY as events commit, while messages come in at --live-rate a second; the wait of
each event from its commit to its processing, at the 50th and 99th percentile.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections import defaultdict
from uuid import UUID

import msgspec
import uvloop
from arq import create_pool
from arq.connections import RedisSettings

from benchmarks._servers import BenchServers, new_tenant, servers
from omnistream.automation.schemas import AutomationRuleCreate
from omnistream.automation_events.processing import Processor
from omnistream.db import Database
from omnistream.messages.schemas import InboundMessage
from omnistream.messages.service import ingest_inbound_many

TOPICS = {
    "shipping": ["shipping", "delivery", "courier", "pengiriman", "envío"],
    "payment": ["payment", "invoice", "bayar", "pago"],
    "returns": ["return", "exchange", "retur", "devolución"],
    "account": ["password", "login", "akun", "cuenta"],
    "stock": ["stock", "available", "tersedia", "disponible"],
}
COMPLAINT_WORDS = ["refund", "broken", "rusak", "terrible"]
HOURS_WORD = "hours"
FILLER = ["hi", "hello", "please", "thanks", "my order", "today", "can you help", "kak", "gracias", "ok"]


def rule_bodies(count: int) -> list[dict]:
    """`count` rules; the first few are the ones that match, the rest route Instagram (never matches)."""
    rules: list[dict] = [
        {
            "name": "Welcome",
            "trigger_type": "conversation_created",
            "actions": [{"type": "add_tags", "tags": ["new"]}],
        },
        {
            "name": "Complaints",
            "trigger_type": "message_received_inbound",
            "priority": 10,
            "conditions": {"message_contains_any": COMPLAINT_WORDS},
            "actions": [{"type": "set_priority", "priority": "high"}, {"type": "add_tags", "tags": ["complaint"]}],
        },
        {
            "name": "Opening hours",
            "trigger_type": "message_received_inbound",
            "cooldown_secs": 3600,
            "conditions": {"message_contains_any": [HOURS_WORD]},
            "actions": [{"type": "send_message", "text": "We answer every day from 9 to 17, {{contact.name}}."}],
        },
    ]
    rules += [
        {
            "name": f"Topic {topic}",
            "trigger_type": "message_received_inbound",
            "conditions": {"message_contains_any": words},
            "actions": [{"type": "add_tags", "tags": [topic]}],
        }
        for topic, words in TOPICS.items()
    ]
    index = 0
    while len(rules) < count:
        index += 1
        rules.append(
            {
                "name": f"Instagram route {index}",
                "trigger_type": "message_received_inbound",
                "conditions": {"channel_in": ["instagram"], "message_contains_any": [f"campaign{index}"]},
                "actions": [{"type": "add_tags", "tags": [f"ig-{index}"]}],
            }
        )
    return rules[:count]


async def store_rules(db: Database, tenant_id: UUID, bodies: list[dict]) -> None:
    """The rules as the API stores them: each body decoded by the API's own Struct first."""
    columns = [
        "name",
        "description",
        "is_active",
        "trigger_type",
        "conditions",
        "actions",
        "alert_settings",
        "schedule_settings",
        "priority",
        "rollout_percentage",
        "stop_on_match",
        "cooldown_secs",
    ]
    rows = []
    for body in bodies:
        decoded = msgspec.to_builtins(msgspec.convert(body, AutomationRuleCreate))
        rows.append((tenant_id, *(decoded[column] for column in columns)))
    async with db.tenant(tenant_id) as conn:
        await conn.executemany(
            f"INSERT INTO automation_rules (tenant_id, {', '.join(columns)}) "
            f"VALUES ({', '.join(f'${i + 1}' for i in range(len(columns) + 1))})",
            rows,
        )


def messages(rng: random.Random, tenant_id: UUID, count: int, contacts: int, prefix: str) -> list[InboundMessage]:
    senders = [f"{prefix}{n:07d}" for n in range(contacts)]
    order = senders + [rng.choice(senders) for _ in range(max(0, count - contacts))]
    rng.shuffle(order)
    out = []
    for i, sender in enumerate(order):
        words = rng.sample(FILLER, 2)
        roll = rng.random()
        if roll < 0.45:
            words.append(rng.choice(rng.choice(list(TOPICS.values()))))
        elif roll < 0.55:
            words.append(rng.choice(COMPLAINT_WORDS))
        elif roll < 0.60:
            words.append(f"opening {HOURS_WORD}?")
        rng.shuffle(words)
        out.append(
            InboundMessage(
                tenant_id=tenant_id,
                channel="whatsapp",
                external_id=sender,
                provider_message_id=f"wamid.{prefix}.{i}",
                text=" ".join(words),
                contact_name=f"Customer {sender}",
            )
        )
    return out


def expected_tags(batch: list[InboundMessage]) -> dict[str, set[str]]:
    """What the rules must have tagged each sender's conversation with."""
    tags: dict[str, set[str]] = defaultdict(lambda: {"new"})
    for message in batch:
        found = tags[message.external_id]
        words = set((message.text or "").replace("?", "").split())
        found |= {topic for topic, keywords in TOPICS.items() if words & set(keywords)}
        if words & set(COMPLAINT_WORDS):
            found.add("complaint")
    return dict(tags)


async def ingest(db: Database, batch: list[InboundMessage], size: int = 10, concurrency: int = 8) -> None:
    chunks = [batch[i : i + size] for i in range(0, len(batch), size)]
    queue: asyncio.Queue[list[InboundMessage]] = asyncio.Queue()
    for chunk in chunks:
        queue.put_nowait(chunk)

    async def deliver() -> None:
        while not queue.empty():
            await ingest_inbound_many(db, queue.get_nowait())

    await asyncio.gather(*(deliver() for _ in range(concurrency)))


async def stored(db: Database, tenant_id: UUID) -> tuple[dict[str, int], dict[str, set[str]]]:
    """The tenant's events by status, and each contact's conversation tags."""
    async with db.tenant(tenant_id) as conn:
        statuses = await conn.fetch(
            "SELECT status, count(*) FROM automation_events WHERE tenant_id = $1 GROUP BY status", tenant_id
        )
        tags = await conn.fetch(
            """SELECT ci.external_id, cv.tags FROM conversations cv
                 JOIN contact_identities ci ON (ci.tenant_id, ci.contact_id) = (cv.tenant_id, cv.contact_id)
                WHERE cv.tenant_id = $1""",
            tenant_id,
        )
    return {r["status"]: r["count"] for r in statuses}, {r["external_id"]: set(r["tags"]) for r in tags}


async def waits(db: Database, tenant_ids: list[UUID], since: float) -> list[float]:
    found: list[float] = []
    for tenant_id in tenant_ids:
        async with db.tenant(tenant_id) as conn:
            found += await conn.fetchval(
                """SELECT coalesce(array_agg(EXTRACT(EPOCH FROM processed_at - created_at)::float8), '{}')
                     FROM automation_events
                    WHERE tenant_id = $1 AND created_at >= to_timestamp($2) AND status = 'done'""",
                tenant_id,
                since,
            )
    return sorted(found)


def percentile(values: list[float], share: float) -> float:
    return values[min(len(values) - 1, int(share * len(values)))] if values else float("nan")


async def bench(urls: BenchServers, args: argparse.Namespace) -> bool:
    db = await Database.connect(urls.app_url, min_size=4, max_size=20)
    arq = await create_pool(RedisSettings.from_dsn(urls.redis_url))
    rng = random.Random(11)
    try:
        tenant_ids = [await new_tenant(db) for _ in range(args.tenants)]
        for tenant_id in tenant_ids:
            await store_rules(db, tenant_id, rule_bodies(args.rules))
        per_tenant = args.messages // args.tenants
        batches = {
            tenant_id: messages(rng, tenant_id, per_tenant, args.contacts // args.tenants, f"628{n}")
            for n, tenant_id in enumerate(tenant_ids)
        }
        print(
            f"automation: {args.tenants} tenants x {args.rules} rules, {per_tenant * args.tenants:,} inbound messages "
            f"from {args.contacts:,} contacts, one worker"
        )
        await ingest(db, [m for batch in batches.values() for m in batch])
        processor = Processor(db, arq)
        started, cpu, events = time.perf_counter(), time.process_time(), 0
        while claimed := await processor.process_due():
            events += claimed
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        ok = True
        for tenant_id, batch in batches.items():
            statuses, tags = await stored(db, tenant_id)
            want = expected_tags(batch)
            if set(statuses) != {"done"} or any(not want[k] <= tags.get(k, set()) for k in want):
                ok = False
                print(f"  MISMATCH for tenant {tenant_id}: events {statuses}")
        print(
            f"  backlog of {events:,} events: {events / elapsed:,.0f} events/s ({elapsed:.1f} s, worker CPU "
            f"{cpu / events * 1e6:,.0f} µs per event); "
            f"stored as expected: {ok}"
        )

        live = asyncio.create_task(Processor(db, arq, listen_url=urls.app_url).run())
        await asyncio.sleep(0.5)
        since = time.time()
        interval = 10 / args.live_rate  # deliveries of 10 messages
        per_tenant_live = int(args.live_rate * args.live_seconds / args.tenants)
        deliveries = [
            chunk[start : start + 10]
            for n, tenant_id in enumerate(tenant_ids)
            for chunk in [messages(rng, tenant_id, per_tenant_live, 50, f"629{n}")]
            for start in range(0, len(chunk), 10)
        ]
        rng.shuffle(deliveries)
        next_at = time.perf_counter()
        for delivery in deliveries:
            await ingest_inbound_many(db, delivery)
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        await asyncio.sleep(2)
        live.cancel()
        waited = await waits(db, tenant_ids, since)
        print(
            f"  live at {args.live_rate:,} messages/s for {args.live_seconds} s: {len(waited):,} events done, "
            f"commit to processed p50 {percentile(waited, 0.5) * 1000:,.0f} ms, "
            f"p99 {percentile(waited, 0.99) * 1000:,.0f} ms"
        )
        return ok
    finally:
        await arq.aclose()
        await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=4)
    parser.add_argument("--rules", type=int, default=50)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--contacts", type=int, default=4_000)
    parser.add_argument("--live-rate", type=int, default=400)
    parser.add_argument("--live-seconds", type=int, default=10)
    args = parser.parse_args()
    with servers("omnistream_bench_automation") as urls:
        ok = uvloop.run(bench(urls, args))
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
