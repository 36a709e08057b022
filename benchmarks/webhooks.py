"""Signed WhatsApp webhooks over HTTP to the running API, to messages stored, end to end.

    python -m benchmarks.webhooks [--messages 20000] [--contacts 2000] [--connections 32]
                                  [--per-delivery 1] [--api-workers 1]

The API (granian, as `omnistream serve` runs it) and one worker (`omnistream worker`) run as
their own processes on embedded PostgreSQL and Redis. A load generator with keep-alive
connections posts deliveries Meta-shaped and signed with the tenant's app secret (each with
`--per-delivery` messages, one by default as Meta mostly sends them). Measured:

* acknowledgement: deliveries per second the API answers 200, and the latency of each answer
  (p50, p99);
* end to end: messages per second from the first request to the last message stored (the
  worker drains the queue into ingestion while the API is still receiving).

The load generator is a bare asyncio client (requests written once, before the clock starts)
so that it takes as little of the two cores as it can; it still shares them with the API, the
worker, PostgreSQL and Redis, as a real deployment's neighbours would not.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from uuid import UUID

import asyncpg

from benchmarks._servers import servers
from benchmarks.http import _free_port, _request, _wait_for
from omnistream.config import load_settings

APP_SECRET = "benchmark-app-secret"


def _deliveries(number: str, count: int, contacts: int, per_delivery: int) -> list[bytes]:
    bodies = []
    for start in range(0, count, per_delivery):
        messages = [
            {
                "from": f"62812{(n * 7919) % contacts:07d}",
                "id": f"wamid.bench{n:09d}",
                "timestamp": str(int(time.time())),
                "type": "text",
                "text": {"body": f"message {n}: where is order {n * 31 % 99991}?"},
            }
            for n in range(start, min(start + per_delivery, count))
        ]
        value = {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": number},
            "contacts": [{"profile": {"name": f"Customer {m['from']}"}, "wa_id": m["from"]} for m in messages],
            "messages": messages,
        }
        body = {
            "object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}],
        }
        bodies.append(json.dumps(body, separators=(",", ":")).encode())
    return bodies


def _request_bytes(port: int, body: bytes) -> bytes:
    signature = hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    head = (
        f"POST /api/webhooks/meta HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"X-Hub-Signature-256: sha256={signature}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _connection(port: int, requests: list[bytes], latencies: list[float], failures: list[bytes]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while requests:
            request = requests.pop()
            started = time.perf_counter()
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if b" 200 " not in status_line:
                failures.append(status_line)
    finally:
        writer.close()


async def _stored(admin_url: str, tenant_id: UUID) -> int:
    conn = await asyncpg.connect(admin_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM messages WHERE tenant_id = $1", tenant_id))
    finally:
        await conn.close()


async def _connect_number(admin_url: str, tenant_id: UUID, number: str, app_secret_sealed: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(
            "INSERT INTO channel_integrations (tenant_id, channel, app_secret_encrypted) VALUES ($1, 'whatsapp', $2)",
            tenant_id,
            app_secret_sealed,
        )
        await conn.execute(
            """INSERT INTO integration_accounts (tenant_id, channel, external_id, display_name, is_default)
               VALUES ($1, 'whatsapp', $2, '+1 555 078 3881', true)""",
            tenant_id,
            number,
        )
    finally:
        await conn.close()


async def _run(args: argparse.Namespace, port: int, admin_url: str, tenant_id: UUID, number: str) -> dict[str, float]:
    bodies = _deliveries(number, args.messages, args.contacts, args.per_delivery)
    requests = [_request_bytes(port, body) for body in reversed(bodies)]
    latencies: list[float] = []
    failures: list[bytes] = []
    started = time.perf_counter()
    await asyncio.gather(*(_connection(port, requests, latencies, failures) for _ in range(args.connections)))
    acknowledged = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} deliveries not acknowledged, e.g. {failures[0]!r}")
    while (stored := await _stored(admin_url, tenant_id)) < args.messages:
        if time.perf_counter() - started > 600:
            raise RuntimeError(f"only {stored} of {args.messages} messages stored after 10 minutes")
        await asyncio.sleep(0.05)
    end_to_end = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "deliveries_per_second": len(bodies) / acknowledged,
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[int(len(ordered) * 0.99) - 1] * 1000,
        "messages_per_second": args.messages / end_to_end,
        "seconds": end_to_end,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--contacts", type=int, default=2_000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--per-delivery", type=int, default=1)
    parser.add_argument("--api-workers", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=2_000)
    args = parser.parse_args()
    root = Path(__file__).resolve().parents[1]
    with servers("omnistream_webhook_bench") as bench:
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        keys = "Y2hhbm5lbC1zZWNyZXRzLWtleS1iZW5jaG1hcmstMDA="
        env = dict(os.environ) | {
            "DATABASE_URL": bench.app_url,
            "REDIS_URL": bench.redis_url,
            "OMNISTREAM_ENV": "production",
            "OMNISTREAM_JWT_SECRET": "b" * 48,
            "OMNISTREAM_COOKIE_SECURE": "true",
            "OMNISTREAM_ENCRYPTION_KEYS": keys,
            "OMNISTREAM_LOG_JSON": "true",
            "OMNISTREAM_LOG_LEVEL": "WARNING",
            "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="omni-prom-"),
        }
        settings = load_settings(environ=env)
        granian = [
            sys.executable, "-m", "granian", "--interface", "asgi", "omnistream.app:app", "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(args.api_workers), "--loop", "uvloop", "--no-ws",
            "--log-level", "warning",
        ]  # fmt: skip
        processes = [
            subprocess.Popen(granian, env=env, cwd=root),
            subprocess.Popen([sys.executable, "-m", "omnistream.cli", "worker"], env=env, cwd=root),
        ]
        try:
            _wait_for(f"{base}/api/health")
            results = {}
            runs = (("warm-up", args.warmup, "106540352242921"), ("measured", args.messages, "106540352242922"))
            for name, count, number in runs:
                session = _request(
                    f"{base}/api/auth/register",
                    {
                        "organization_name": f"Webhook Bench {name}",
                        "name": "Bench Admin",
                        "email": f"admin-{name}@bench.test",
                        "password": "benchmark password",
                    },
                )
                tenant_id = UUID(session["agent"]["tenant"]["id"])
                asyncio.run(_connect_number(bench.admin_url, tenant_id, number, settings.secrets.seal(APP_SECRET)))
                run_args = argparse.Namespace(**{**vars(args), "messages": count})
                results[name] = asyncio.run(_run(run_args, port, bench.admin_url, tenant_id, number))
            measured = results["measured"]
            print(
                f"webhooks: {args.messages} messages, {args.per_delivery} per signed delivery, "
                f"{args.connections} connections, {args.api_workers} API worker(s) + 1 worker"
            )
            print(
                f"  acknowledged   {measured['deliveries_per_second']:8.0f} deliveries/s   "
                f"p50 {measured['p50_ms']:.1f} ms   p99 {measured['p99_ms']:.1f} ms"
            )
            print(
                f"  stored         {measured['messages_per_second']:8.0f} messages/s end to end "
                f"({measured['seconds']:.1f} s, the last message stored)"
            )
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(20)


if __name__ == "__main__":
    main()
