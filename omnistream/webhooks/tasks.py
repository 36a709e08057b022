"""The worker side of inbound webhooks: drain the inbound queue into ingestion, apply statuses,
and fetch customers' media into media storage."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections import defaultdict
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import msgspec
import structlog
from arq import ArqRedis
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from omnistream.channels.graph import GraphClient, GraphError
from omnistream.channels.parsing import ParsedAccountEvent
from omnistream.db import Database
from omnistream.integrations import service as integrations
from omnistream.kit.background import stop_the_worker_if_it_crashed
from omnistream.messages import service as messages
from omnistream.messages.schemas import InboundMessage
from omnistream.wa_templates import service as wa_templates
from omnistream.webhooks import inbox
from omnistream.webhooks.inbox import Entry, QueuedDelivery

log = structlog.get_logger(__name__)

BATCH = 500
"""Entries read at once: a burst of webhooks becomes a few transactions, not one per message."""
BLOCK_MS = 1000
GATHER_SECONDS = 0.05
RECLAIM_EVERY_SECONDS = 10.0
MEDIA_JOB = "fetch_inbound_media"


class InboundDrain:
    """Reads the inbound queue as one consumer of its group, for as long as the worker runs."""

    def __init__(self, db: Database, redis: Redis, jobs: ArqRedis, settings: Any) -> None:
        self.db, self.redis, self.jobs, self.settings = db, redis, jobs, settings
        self.prefix = settings.redis_prefix
        self.consumer = f"{socket.gethostname()}:{os.getpid()}:{uuid4().hex[:6]}"

    async def run(self) -> None:
        await inbox.ensure_group(self.redis, self.prefix)
        try:
            taken = await inbox.take_over(self.redis, self.prefix, self.consumer, _exited_on_this_host)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            taken = []  # the idle-time reclaim will find them
            log.warning("the inbound queue is unreachable; an exited worker's entries wait", error=str(exc))
        if taken:
            log.info("inbound entries of an exited worker taken over", count=len(taken))
            await self.process(taken)
        loop = asyncio.get_running_loop()
        next_reclaim = 0.0
        while True:
            try:
                if loop.time() >= next_reclaim:
                    next_reclaim = loop.time() + RECLAIM_EVERY_SECONDS
                    reclaimed = await inbox.reclaim(self.redis, self.prefix, self.consumer, BATCH)
                    if reclaimed:
                        log.info("inbound entries of a stopped worker taken over", count=len(reclaimed))
                        await self.process(reclaimed)
                entries = await inbox.take(self.redis, self.prefix, self.consumer, BATCH, BLOCK_MS)
                if entries and len(entries) < BATCH:
                    # A trickle becomes groups: a moment's wait lets a busy queue fill the next
                    # transaction, at the cost of that moment on each message's way in.
                    await asyncio.sleep(GATHER_SECONDS)
                    entries += await inbox.take(self.redis, self.prefix, self.consumer, BATCH - len(entries), 0)
            except (RedisConnectionError, RedisTimeoutError) as exc:
                # What was read and not acknowledged stays pending, for this worker or another.
                log.warning("the inbound queue is unreachable; trying again", error=str(exc))
                await asyncio.sleep(1)
                continue
            if entries:
                await self.process(entries)

    async def process(self, entries: list[Entry]) -> None:
        """Ingest the entries' items, a transaction per tenant; acknowledge each tenant's entries
        once its work committed. A tenant whose work fails keeps its entries pending, for a retry."""
        unreadable = [entry_id for entry_id, delivery in entries if delivery is None]
        for entry_id in unreadable:
            await inbox.set_aside(self.redis, self.prefix, entry_id, {}, reason="not a queued delivery")
        by_tenant: dict[UUID, list[tuple[bytes, QueuedDelivery]]] = defaultdict(list)
        for entry_id, delivery in entries:
            if delivery is not None:
                by_tenant[delivery.tenant_id].append((entry_id, delivery))
        for tenant_id, tenant_entries in by_tenant.items():
            try:
                await self.ingest(tenant_id, [delivery for _, delivery in tenant_entries])
            except Exception:
                log.exception("inbound deliveries not ingested; they stay queued", tenant=str(tenant_id))
                continue
            await inbox.acknowledge(self.redis, self.prefix, [entry_id for entry_id, _ in tenant_entries])

    async def ingest(self, tenant_id: UUID, deliveries: list[QueuedDelivery]) -> None:
        deliveries = await _still_connected(self.db, tenant_id, deliveries)
        # By sender: the drains of several workers lock conversations in one order, never in a
        # cycle (each sender's messages keep theirs; the sort is stable).
        routed = sorted((m for d in deliveries for m in d.messages), key=lambda r: r.message.external_id)
        inbounds = [_inbound(tenant_id, r.account_id, r.message) for r in routed]
        results = await _ingest_each_storable(self.db, inbounds)
        for routed_message, result in zip(routed, results, strict=True):
            if result is not None and routed_message.message.media_ref:
                await _enqueue_media(
                    self.jobs, tenant_id, result.message_id, routed_message.account_id, routed_message.message.media_ref
                )
        statuses: dict[str, list[Any]] = defaultdict(list)
        for delivery in deliveries:
            for routed_status in delivery.statuses:
                statuses[routed_status.status.channel].append(routed_status.status.update)
        for channel, updates in statuses.items():
            await messages.apply_statuses(self.db, tenant_id, channel, updates)
        for delivery in deliveries:
            for routed_event in delivery.account_events:
                await _apply_account_news(self.db, tenant_id, routed_event.event)


async def _apply_account_news(db: Database, tenant_id: UUID, event: ParsedAccountEvent) -> None:
    """News of a WhatsApp business account (`account_ref`): a template's review, quality or
    category, a number's quality; other news is logged."""
    if event.kind in wa_templates.TEMPLATE_NEWS:
        changed = await wa_templates.apply_meta_news(db, tenant_id, event.account_ref, event.kind, event.data)
    elif event.kind == "phone_number_quality_update":
        changed = await integrations.record_phone_quality(db, tenant_id, event.account_ref, event.data)
    else:
        changed = 0
    log.info("business account news from Meta", tenant=str(tenant_id), kind=event.kind, changed=changed)


def _exited_on_this_host(consumer: str) -> bool:
    """Is `consumer` (host:pid:suffix) a drain of this host whose process is gone? A consumer of
    another host, or of a live process, is left to the idle-time reclaim."""
    host, _, rest = consumer.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


async def _still_connected(db: Database, tenant_id: UUID, deliveries: list[QueuedDelivery]) -> list[QueuedDelivery]:
    """The deliveries' items whose account is the tenant's and connected now: the webhook routed
    them by a route cached for a few seconds, and an account may have moved since."""
    named = {item.account_id for d in deliveries for item in (*d.messages, *d.statuses, *d.account_events)}
    connected = await integrations.active_account_ids(db, tenant_id, named)
    if connected == named:
        return deliveries
    log.warning("inbound items for an account no longer connected dropped", tenant=str(tenant_id))
    return [
        msgspec.structs.replace(
            d,
            messages=[m for m in d.messages if m.account_id in connected],
            statuses=[s for s in d.statuses if s.account_id in connected],
            account_events=[e for e in d.account_events if e.account_id in connected],
        )
        for d in deliveries
    ]


def _inbound(tenant_id: UUID, account_id: UUID, message: Any) -> InboundMessage:
    return InboundMessage(
        tenant_id=tenant_id,
        channel=message.channel,
        external_id=message.external_id,
        account_id=account_id,
        provider_message_id=message.provider_message_id,
        type=message.type,
        text=message.text,
        content=message.content,
        contact_name=message.contact_name,
        contact_phone=message.contact_phone,
        contact_email=message.contact_email,
        sent_at=message.sent_at,
    )


async def _ingest_each_storable(db: Database, inbounds: list[InboundMessage]) -> list[Any]:
    """Ingest the messages in one call; when one cannot be stored (ValueError), the others are
    ingested without it: a malformed item never holds back the rest of its delivery."""
    if not inbounds:
        return []
    try:
        return list(await messages.ingest_inbound_many(db, inbounds))
    except ValueError:
        pass
    results: list[Any] = []
    for inbound in inbounds:
        try:
            results.append(await messages.ingest_inbound(db, inbound))
        except ValueError as exc:
            log.warning(
                "inbound message not storable; skipped", reason=str(exc), provider_id=inbound.provider_message_id
            )
            results.append(None)
    return results


async def _enqueue_media(jobs: ArqRedis, tenant_id: UUID, message_id: UUID, account_id: UUID, media_ref: str) -> None:
    await jobs.enqueue_job(
        MEDIA_JOB, str(tenant_id), str(message_id), str(account_id), media_ref, _job_id=f"media:{message_id}"
    )


async def fetch_inbound_media(
    ctx: dict[str, Any], tenant_id: str, message_id: str, account_id: str, media_ref: str
) -> str:
    """Fetch a customer's media into media storage and link it to its message: a WhatsApp media id
    through the Graph API (with the account's token), an attachment URL directly."""
    from omnistream.media import service as media

    db, settings = ctx["db"], ctx["settings"]
    tenant, message = UUID(tenant_id), UUID(message_id)
    if await messages.has_media(db, tenant, message):
        return "already fetched"
    async with GraphClient(settings) as graph:
        try:
            if media_ref.startswith(("http://", "https://")):
                # Messenger and Instagram attachments: a CDN link that needs no token.
                data, mime_type = await graph.download(media_ref, token="", max_bytes=settings.media_max_bytes)
            else:
                async with db.read(tenant) as conn:
                    account = await integrations.sending_account(conn, settings, tenant, "whatsapp", UUID(account_id))
                if account is None or not account.access_token:
                    return "no account token"
                info = await graph.request("GET", media_ref, token=account.access_token)
                data, mime_type = await graph.download(
                    str(info.get("url", "")), token=account.access_token, max_bytes=settings.media_max_bytes
                )
                mime_type = str(info.get("mime_type") or mime_type)
        except GraphError as exc:
            if exc.retryable and ctx.get("job_try", 1) < 5:
                from arq import Retry

                raise Retry(defer=2 ** ctx.get("job_try", 1)) from exc
            log.warning("customer media not fetched", message_id=message_id, error=exc.text)
            return "failed"
    media_id = await media.store_inbound(db, settings, tenant, data, mime_type.split(";")[0].strip(), "")
    await messages.attach_media(db, tenant, message, media_id)
    return "fetched"


async def start_drain(ctx: dict[str, Any]) -> None:
    """One consumer per worker: a second in the same process was measured slower (its groups wait
    on the first's locks); more workers mean more consumers."""
    drain = InboundDrain(ctx["db"], ctx["redis"], ctx["redis"], ctx["settings"])
    task = asyncio.create_task(drain.run(), name="inbound-drain")
    task.add_done_callback(stop_the_worker_if_it_crashed("inbound drain"))
    ctx["inbound_drain"] = task


async def stop_drain(ctx: dict[str, Any]) -> None:
    task = ctx.pop("inbound_drain", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


EARLY_STATUSES_KEPT = timedelta(days=1)


async def purge_early_statuses(ctx: dict[str, Any]) -> int:
    """Let go of receipts that waited a day for a send of ours that never named their message."""
    purged = await messages.purge_early_statuses(ctx["db"], EARLY_STATUSES_KEPT)
    if purged:
        log.info("receipts for messages never sent from here let go", count=purged)
    return purged
