"""The arq worker: every area's jobs and crons, with msgspec (msgpack) serialization."""

from __future__ import annotations

from typing import Any

import msgspec
from arq import cron, func
from arq.connections import RedisSettings

from omnistream.auth.tasks import purge_ended_sessions
from omnistream.automation_events import tasks as automation
from omnistream.campaigns.tasks import send_campaigns
from omnistream.channels.graph import shared_http
from omnistream.config import Settings, load_settings
from omnistream.conversations.tasks import expire_stale_conversations
from omnistream.db import Database
from omnistream.messages.tasks import MAX_ATTEMPTS, deliver_message, sweep_queued_messages
from omnistream.outgoing_webhooks import tasks as outgoing_webhooks
from omnistream.scheduled_messages.tasks import send_due_scheduled_messages
from omnistream.sla.tasks import MONITOR_SECONDS, monitor_sla_breaches
from omnistream.webhooks import tasks as inbound


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx.get("settings") or load_settings()
    ctx["settings"] = settings
    ctx["db"] = await Database.from_settings(settings, min_size=1)
    ctx["graph_http"] = shared_http(settings)
    if settings.is_production:
        await ctx["db"].require_confined_role()
    await automation.start_processor(ctx)
    await inbound.start_drain(ctx)
    await outgoing_webhooks.start_dispatcher(ctx)


async def shutdown(ctx: dict[str, Any]) -> None:
    await outgoing_webhooks.stop_dispatcher(ctx)
    await inbound.stop_drain(ctx)
    await automation.stop_processor(ctx)
    if "graph_http" in ctx:
        await ctx["graph_http"].aclose()
    if "db" in ctx:
        await ctx["db"].close()


class WorkerSettings:
    # arq stops a job after max_tries (5 by default): delivery must get all of its attempts.
    functions: list[Any] = [
        func(deliver_message, max_tries=MAX_ATTEMPTS),
        func(automation.deliver_automation_webhooks, max_tries=automation.WEBHOOK_ATTEMPTS),
        func(inbound.fetch_inbound_media, max_tries=6),
        # Started at once by a send; the cron below runs it every second anyway.
        func(send_campaigns, max_tries=1),
    ]
    cron_jobs = [
        cron(purge_ended_sessions, minute={17}, run_at_startup=False),
        cron(send_campaigns, second=set(range(60)), run_at_startup=True),
        cron(sweep_queued_messages, second={30}, run_at_startup=True),
        cron(expire_stale_conversations, second={0}, run_at_startup=False),
        cron(send_due_scheduled_messages, second=set(range(0, 60, 5)), run_at_startup=True),
        cron(automation.sweep_pending_webhooks, second={45}, run_at_startup=False),
        cron(monitor_sla_breaches, second=MONITOR_SECONDS, run_at_startup=True),
        cron(inbound.purge_early_statuses, minute={41}, second={0}, run_at_startup=False),
        cron(outgoing_webhooks.purge_webhook_log, hour={3}, minute={23}, second={0}, run_at_startup=False),
    ]
    on_startup = startup
    on_shutdown = shutdown
    job_serializer = msgspec.msgpack.encode
    job_deserializer = msgspec.msgpack.decode
    max_jobs = 50
    job_timeout = 300
    keep_result = 60
    health_check_interval = 30


def worker_overrides(settings: Settings) -> dict[str, Any]:
    return {
        "redis_settings": RedisSettings.from_dsn(settings.redis_url),
        "queue_name": f"{settings.redis_prefix}:queue",
        "health_check_key": f"{settings.redis_prefix}:queue:health-check",
        "ctx": {"settings": settings},
    }
