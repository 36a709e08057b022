"""Outgoing webhooks: events fanned out to endpoints and delivered, signed, to a loopback receiver.

    python -m benchmarks.outgoing_webhooks [--messages 2000] [--endpoints 5] [--contacts 500]

Inbound messages come in through the ingestion service, as in benchmarks.automation, for two
tenants: one with no outgoing webhook and one with --endpoints endpoints subscribed to
message.received. Measured, side by side in one run:

* fan-out: events per second the worker's processor (`automation_events.processing.Processor`)
  marks done for the tenant with endpoints (each batch also inserting one delivery per event and
  endpoint), against the same for the tenant without: the cost of the fan-out;
* delivery: deliveries per second the worker's dispatcher (`outgoing_webhooks.delivery`) claims,
  signs, posts and records (the attempt logged, the delivery and the endpoint updated), against
  a bare httpx client posting as many bodies with the same concurrency and no database: the
  ceiling the receiver and the HTTP client allow.

The receiver runs in its own process: a bare asyncio HTTP/1.1 server with keep-alive that
verifies every signature as a receiver would (`outgoing_webhooks.delivery.verify`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import time
from datetime import UTC, datetime

import httpx
import uvloop
from arq import create_pool
from arq.connections import RedisSettings

from benchmarks._servers import BenchServers, new_tenant, servers
from benchmarks.automation import ingest, messages
from benchmarks.http import _free_port
from omnistream.automation_events.processing import Processor
from omnistream.config import load_settings
from omnistream.db import Database
from omnistream.outgoing_webhooks import service
from omnistream.outgoing_webhooks.delivery import AT_ONCE, deliver_due, verify
from omnistream.outgoing_webhooks.schemas import OutgoingWebhookCreate
from omnistream.security.principal import Actor

SECRET = "benchmark-webhook-secret-0123456789"


# ---------------------------------------------------------------- the receiver (its own process)


async def _serve(port: int) -> None:
    counts = {"received": 0, "verified": 0}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while request_line := await reader.readline():
                headers = {}
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if request_line.startswith(b"GET"):
                    answer = json.dumps(counts).encode()
                else:
                    counts["received"] += 1
                    signature = headers.get("x-omnistream-signature", "")
                    counts["verified"] += verify(SECRET, body, signature, now=time.time())
                    answer = b"ok"
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def _receiver_counts(url: str) -> dict[str, int]:
    return httpx.get(url, timeout=5).json()


# ---------------------------------------------------------------- the measurements


async def _process_all(db: Database, arq: object) -> tuple[int, float]:
    processor = Processor(db, arq)  # type: ignore[arg-type]
    started, events = time.perf_counter(), 0
    while claimed := await processor.process_due():
        events += claimed
    return events, time.perf_counter() - started


async def _bare_posts(url: str, bodies: list[bytes]) -> float:
    """Posts per second with nothing but httpx between the bodies and the receiver."""
    gate = asyncio.Semaphore(AT_ONCE)
    async with httpx.AsyncClient() as client:

        async def post(body: bytes) -> None:
            async with gate:
                response = await client.post(url, content=body, headers={"content-type": "application/json"})
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(post(b) for b in bodies))
        return len(bodies) / (time.perf_counter() - started)


async def bench(urls: BenchServers, args: argparse.Namespace, receiver_url: str) -> bool:
    settings = load_settings(environ={}, jwt_secret="x" * 40, webhooks_allow_private=True)
    db = await Database.connect(urls.app_url, min_size=4, max_size=20)
    arq = await create_pool(RedisSettings.from_dsn(urls.redis_url))
    rng = random.Random(13)
    try:
        quiet, busy = await new_tenant(db), await new_tenant(db)
        actor = Actor.automation(busy)
        for _ in range(args.endpoints):
            await service.create_webhook(
                db,
                settings,
                actor,
                OutgoingWebhookCreate(url=receiver_url, event_types=["message.received"], secret=SECRET),
            )
        print(
            f"outgoing webhooks: {args.messages:,} inbound messages x {args.endpoints} endpoints subscribed to "
            f"message.received, one worker, a loopback receiver in its own process"
        )
        # A warm-up, so that neither measured run pays for cold caches and new connections.
        await ingest(db, messages(rng, await new_tenant(db), args.messages // 4, args.contacts, "6280"))
        await _process_all(db, arq)
        results = {}
        for name, tenant_id, prefix in (("without", quiet, "6281"), ("with", busy, "6282")):
            await ingest(db, messages(rng, tenant_id, args.messages, args.contacts, prefix))
            results[name] = await _process_all(db, arq)
        (quiet_events, quiet_seconds), (busy_events, busy_seconds) = results["without"], results["with"]
        quiet_rate, busy_rate = quiet_events / quiet_seconds, busy_events / busy_seconds
        print(
            f"  fan-out    {busy_rate:8,.0f} events/s processed with {args.endpoints} endpoints, "
            f"{quiet_rate:8,.0f} without ({busy_rate / quiet_rate:.2f}x)"
        )

        expected = args.messages * args.endpoints
        started, delivered = time.perf_counter(), 0
        async with httpx.AsyncClient() as client:
            while claimed := await deliver_due(db, settings.secrets, client, datetime.now(UTC), allow_private=True):
                delivered += claimed
        rate = delivered / (time.perf_counter() - started)
        async with db.tenant(busy) as conn:
            bodies = await conn.fetch(
                "SELECT body FROM outgoing_webhook_deliveries WHERE tenant_id = $1 LIMIT $2", busy, expected
            )
            statuses = dict(
                await conn.fetch(
                    "SELECT status, count(*) FROM outgoing_webhook_deliveries WHERE tenant_id = $1 GROUP BY status",
                    busy,
                )
            )
        counts = _receiver_counts(receiver_url)
        ceiling = await _bare_posts(receiver_url, [r["body"].encode() for r in bodies])
        ok = statuses == {"delivered": expected} and counts["verified"] == expected
        print(
            f"  delivered  {rate:8,.0f} deliveries/s signed, posted and logged ({delivered:,}), "
            f"bare httpx to the same receiver {ceiling:8,.0f} posts/s ({rate / ceiling:.2f}x)"
        )
        print(f"  every delivery delivered once and verified by the receiver: {ok} {statuses} {counts}")
        return ok
    finally:
        await arq.aclose()
        await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2_000)
    parser.add_argument("--endpoints", type=int, default=5)
    parser.add_argument("--contacts", type=int, default=500)
    parser.add_argument("--receiver", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        uvloop.run(_serve(args.receiver))
        return
    port = _free_port()
    receiver = subprocess.Popen([sys.executable, "-m", "benchmarks.outgoing_webhooks", "--receiver", str(port)])
    receiver_url = f"http://127.0.0.1:{port}/hooks"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                _receiver_counts(receiver_url)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        with servers("omnistream_bench_outgoing_webhooks") as urls:
            ok = uvloop.run(bench(urls, args, receiver_url))
    finally:
        receiver.terminate()
        receiver.wait(10)
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
