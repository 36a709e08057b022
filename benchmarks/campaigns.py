"""A campaign of many recipients through the real worker and delivery path to the Graph API stand-in.

    python -m benchmarks.campaigns [--recipients 100000] [--rate 100000]

PostgreSQL and Redis are the embedded servers; the Graph API stand-in (omnistream.fake_meta) and
one worker (`omnistream worker`) run as their own processes. The tenant's contacts (each with its
WhatsApp identity and conversation-less) are written straight into the database; the campaign is
made, filled (by filter: every contact) and sent through the campaigns service as the API would.
The account's `messages_per_second` is set high so that the rate limit is not what is measured.
Measured:

* queued: recipients per second the campaign worker hands to delivery (batches: the account's
  budget, claim, conversations found or opened, messages and events written, recipients marked);
* sent: messages per second from the send to the last message the stand-in accepted (status
  sent), through arq jobs, the delivery lease and the channel adapter's HTTP call;
* the worker's peak RSS (VmHWM of its process), sampled also while it runs, to show that a large
  campaign is never held in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import asyncpg
import msgspec
from arq import create_pool
from arq.connections import RedisSettings

from benchmarks._servers import new_tenant, servers
from benchmarks.http import _free_port, _wait_for
from omnistream.campaigns import service as campaigns
from omnistream.campaigns.schemas import CampaignCreate, CampaignSend, RecipientFilter, RecipientsAdd
from omnistream.config import load_settings
from omnistream.db import Database
from omnistream.messages.schemas import Template
from omnistream.security.principal import Actor

NUMBER = "106540352242931"
WABA = "102290129340398"


def _rss_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


async def _prepare(admin_url: str, tenant_id: UUID, recipients: int, token_sealed: str, rate: int) -> UUID:
    conn = await asyncpg.connect(admin_url)
    try:
        account_id = await conn.fetchval(
            """INSERT INTO integration_accounts (tenant_id, channel, external_id, display_name, business_account_id,
                                                 access_token_encrypted, is_default, settings)
               VALUES ($1, 'whatsapp', $2, '+1 555 078 3931', $3, $4, true,
                       jsonb_build_object('messages_per_second', $5::int))
               RETURNING id""",
            tenant_id,
            NUMBER,
            WABA,
            token_sealed,
            rate,
        )
        await conn.execute(
            """INSERT INTO wa_templates (tenant_id, business_account_id, name, language, category, status, components)
               VALUES ($1, $2, 'weekly_offer', 'en', 'MARKETING', 'APPROVED',
                       '[{"type": "BODY", "text": "Hi {{1}}, this week: {{2}}"}]')""",
            tenant_id,
            WABA,
        )
        await conn.execute(
            """WITH made AS (
                 INSERT INTO contacts (tenant_id, name, phone)
                 SELECT $1, 'Customer ' || n, (6281200000000 + n)::text FROM generate_series(1, $2) AS n
                 RETURNING id, phone)
               INSERT INTO contact_identities (tenant_id, channel, external_id, contact_id)
               SELECT $1, 'whatsapp', phone, id FROM made""",
            tenant_id,
            recipients,
        )
        await conn.execute("ANALYZE contacts; ANALYZE contact_identities")
        return account_id
    finally:
        await conn.close()


async def _count(admin_url: str, sql: str, *args: object) -> int:
    conn = await asyncpg.connect(admin_url)
    try:
        return int(await conn.fetchval(sql, *args))
    finally:
        await conn.close()


async def _run(
    args: argparse.Namespace, bench: object, env: dict[str, str], worker: subprocess.Popen[bytes]
) -> dict[str, float]:
    settings = load_settings(environ=env)
    db = await Database.connect(bench.app_url, min_size=1, max_size=4)  # type: ignore[attr-defined]
    arq = await create_pool(
        RedisSettings.from_dsn(bench.redis_url),  # type: ignore[attr-defined]
        job_serializer=msgspec.msgpack.encode,
        job_deserializer=msgspec.msgpack.decode,
        default_queue_name=f"{settings.redis_prefix}:queue",
    )
    try:
        tenant_id = await new_tenant(db)
        account_id = await _prepare(
            bench.admin_url,
            tenant_id,
            args.recipients,
            settings.secrets.seal("EAAG-bench"),
            args.rate,  # type: ignore[attr-defined]
        )
        actor = Actor.automation(tenant_id)
        template = Template(
            name="weekly_offer",
            language="en",
            components=[
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "{{contact.name}}"},
                        {"type": "text", "text": "two for one"},
                    ],
                }
            ],
        )
        campaign = await campaigns.create_campaign(
            db,
            settings,
            actor,
            CampaignCreate(name="Bench", channel="whatsapp", account_id=account_id, template=template),
        )
        filled = time.perf_counter()
        added = await campaigns.add_recipients(db, actor, campaign.id, RecipientsAdd(filter=RecipientFilter()))
        filled = time.perf_counter() - filled
        assert added.added == args.recipients, added
        peak_during = 0
        started = time.perf_counter()
        await campaigns.send_campaign(db, arq, settings, actor, campaign.id, CampaignSend(), datetime.now(UTC))
        admin = bench.admin_url  # type: ignore[attr-defined]
        queued_at = None
        while True:
            await asyncio.sleep(0.5)
            assert worker.poll() is None, "the worker exited"
            peak_during = max(peak_during, _rss_kb(worker.pid, "VmRSS"))
            if queued_at is None and not await _count(
                admin,
                "SELECT count(*) FROM campaign_recipients WHERE campaign_id = $1 AND status = 'pending'",
                campaign.id,
            ):
                queued_at = time.perf_counter() - started
            sent = await _count(
                admin, "SELECT count(*) FROM messages WHERE tenant_id = $1 AND status = 'sent'", tenant_id
            )
            if sent >= args.recipients:
                break
            if time.perf_counter() - started > args.timeout:
                raise RuntimeError(f"only {sent} of {args.recipients} sent after {args.timeout} s")
        elapsed = time.perf_counter() - started
        failed = await _count(
            admin, "SELECT count(*) FROM messages WHERE tenant_id = $1 AND status = 'failed'", tenant_id
        )
        return {
            "fill_seconds": filled,
            "queued_per_second": args.recipients / (queued_at or elapsed),
            "sent_per_second": args.recipients / elapsed,
            "seconds": elapsed,
            "failed": failed,
            "peak_rss_mb": _rss_kb(worker.pid, "VmHWM") / 1024,
            "sampled_rss_mb": peak_during / 1024,
        }
    finally:
        await arq.aclose()
        await db.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=campaigns.MAX_MESSAGES_PER_SECOND)
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    root = Path(__file__).resolve().parents[1]
    with servers("omnistream_campaign_bench") as bench:
        graph_port = _free_port()
        env = dict(os.environ) | {
            "DATABASE_URL": bench.app_url,
            "REDIS_URL": bench.redis_url,
            "OMNISTREAM_ENV": "production",
            "OMNISTREAM_JWT_SECRET": "b" * 48,
            "OMNISTREAM_COOKIE_SECURE": "true",
            "OMNISTREAM_ENCRYPTION_KEYS": "Y2hhbm5lbC1zZWNyZXRzLWtleS1iZW5jaG1hcmstMDA=",
            "OMNISTREAM_GRAPH_API_URL": f"http://127.0.0.1:{graph_port}",
            "OMNISTREAM_LOG_JSON": "true",
            "OMNISTREAM_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
            "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="omni-prom-"),
        }
        stand_in = [
            sys.executable,
            "-m",
            "granian",
            "--interface",
            "asgi",
            "omnistream.fake_meta.app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(graph_port),
            "--workers",
            "1",
            "--no-ws",
            "--log-level",
            "warning",
        ]
        graph = subprocess.Popen(stand_in, env=env, cwd=root)
        worker = subprocess.Popen([sys.executable, "-m", "omnistream.cli", "worker"], env=env, cwd=root)
        try:
            _wait_for(f"http://127.0.0.1:{graph_port}/_stand-in/requests")
            result = asyncio.run(_run(args, bench, env, worker))
            print(f"campaigns: {args.recipients} recipients on one WhatsApp account (rate {args.rate}/s), 1 worker")
            print(f"  recipients added by filter  {result['fill_seconds']:8.1f} s")
            print(f"  queued by the campaign      {result['queued_per_second']:8.0f} recipients/s")
            print(
                f"  sent to the Graph stand-in  {result['sent_per_second']:8.0f} messages/s end to end "
                f"({result['seconds']:.1f} s, {result['failed']:.0f} failed)"
            )
            print(
                f"  worker RSS                  {result['sampled_rss_mb']:8.1f} MB at most while sending "
                f"(peak over its life {result['peak_rss_mb']:.1f} MB)"
            )
        finally:
            for process in (worker, graph):
                process.terminate()
            for process in (worker, graph):
                process.wait(20)


if __name__ == "__main__":
    main()
