"""The inbound queue: verified webhook deliveries, routed to their tenant, wait in a Redis stream
until a worker ingests them.

A stream with a consumer group, not a list: an entry a worker has read stays pending until the
worker acknowledges it after its transaction committed, so a worker that dies mid-way loses
nothing; another claims its entries once they have been idle for `CLAIM_AFTER_MS`. Each entry is
one delivery's items for one tenant. Ingestion is idempotent on the provider's message id, and
statuses never move backwards, so an entry processed twice changes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from omnistream.channels.parsing import ParsedAccountEvent, ParsedMessage, ParsedStatus

GROUP = "ingest"
CLAIM_AFTER_MS = 30_000
MAX_DELIVERIES = 8
"""An entry read this many times without being acknowledged is set aside in the dead-letter stream."""


class RoutedMessage(msgspec.Struct, frozen=True):
    account_id: UUID
    message: ParsedMessage


class RoutedStatus(msgspec.Struct, frozen=True):
    account_id: UUID
    status: ParsedStatus


class RoutedAccountEvent(msgspec.Struct, frozen=True):
    account_id: UUID
    event: ParsedAccountEvent


class QueuedDelivery(msgspec.Struct, frozen=True, kw_only=True):
    """One webhook delivery's items for one tenant."""

    tenant_id: UUID
    received_at: float
    messages: list[RoutedMessage] = []
    statuses: list[RoutedStatus] = []
    account_events: list[RoutedAccountEvent] = []

    @property
    def size(self) -> int:
        return len(self.messages) + len(self.statuses) + len(self.account_events)


# JSON, not MessagePack: a raw item may hold integers past 64 bits, which only JSON can carry.
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(QueuedDelivery).decode


def stream_of(prefix: str) -> str:
    return f"{prefix}:inbound"


def dead_letters_of(prefix: str) -> str:
    return f"{prefix}:inbound:dead"


async def put(redis: Redis, prefix: str, deliveries: list[QueuedDelivery]) -> None:
    """Queue the deliveries, in one round trip. The stream is never trimmed: an entry leaves it
    when its work is acknowledged (see `acknowledge`), so nothing accepted is dropped."""
    async with redis.pipeline(transaction=False) as pipe:
        for delivery in deliveries:
            pipe.xadd(stream_of(prefix), {"d": _encode(delivery)})
        await pipe.execute()


async def ensure_group(redis: Redis, prefix: str) -> None:
    try:
        await redis.xgroup_create(stream_of(prefix), GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


Entry = tuple[bytes, QueuedDelivery | None]
"""An entry's id and its delivery (None for an entry that cannot be read: acknowledged and set aside)."""


async def take(redis: Redis, prefix: str, consumer: str, count: int, block_ms: int) -> list[Entry]:
    """New entries for this consumer, waiting up to block_ms for the first (0: not waiting)."""
    answer = await redis.xreadgroup(GROUP, consumer, {stream_of(prefix): ">"}, count=count, block=block_ms or None)
    return [_entry(entry_id, fields) for _, entries in answer or [] for entry_id, fields in entries]


async def reclaim(redis: Redis, prefix: str, consumer: str, count: int) -> list[Entry]:
    """Entries another consumer read and never acknowledged (it died), idle long enough: now ours.
    Those read too often already go to the dead-letter stream instead."""
    stream = stream_of(prefix)
    _, claimed, *_ = await redis.xautoclaim(stream, GROUP, consumer, CLAIM_AFTER_MS, "0-0", count=count)
    if not claimed:
        return []
    pending = await redis.xpending_range(stream, GROUP, min=claimed[0][0], max=claimed[-1][0], count=len(claimed))
    deliveries = {p["message_id"]: p["times_delivered"] for p in pending}
    taken: list[Entry] = []
    for entry_id, fields in claimed:
        if fields is None:
            continue  # trimmed meanwhile
        if deliveries.get(entry_id, 0) > MAX_DELIVERIES:
            await set_aside(redis, prefix, entry_id, fields, reason="read too many times without success")
            continue
        taken.append(_entry(entry_id, fields))
    return taken


async def take_over(redis: Redis, prefix: str, consumer: str, is_gone: Callable[[str], bool]) -> list[Entry]:
    """The pending entries of the consumers `is_gone` names (a worker of this host that exited),
    now ours at once rather than after CLAIM_AFTER_MS; those consumers leave the group."""
    stream = stream_of(prefix)
    taken: list[Entry] = []
    for other in await redis.xinfo_consumers(stream, GROUP):
        name = other["name"].decode() if isinstance(other["name"], bytes) else str(other["name"])
        if name == consumer or not is_gone(name):
            continue
        while pending := await redis.xpending_range(stream, GROUP, "-", "+", 500, consumername=name):
            claimed = await redis.xclaim(stream, GROUP, consumer, 0, [p["message_id"] for p in pending])
            taken += [_entry(entry_id, fields) for entry_id, fields in claimed if fields is not None]
            if len(claimed) < len(pending):  # trimmed meanwhile: nothing more to claim of it
                break
        await redis.xgroup_delconsumer(stream, GROUP, name)
    return taken


async def acknowledge(redis: Redis, prefix: str, entry_ids: list[bytes]) -> None:
    if entry_ids:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.xack(stream_of(prefix), GROUP, *entry_ids)
            pipe.xdel(stream_of(prefix), *entry_ids)
            await pipe.execute()


async def set_aside(redis: Redis, prefix: str, entry_id: bytes, fields: dict[Any, Any], reason: str) -> None:
    """Keep an entry that cannot be processed where an operator can look at it, and let it go."""
    await redis.xadd(dead_letters_of(prefix), {**fields, "reason": reason, "entry": entry_id}, maxlen=100_000)
    await acknowledge(redis, prefix, [entry_id])


async def backlog(redis: Redis, prefix: str) -> int:
    """Entries queued and not yet acknowledged."""
    try:
        return int(await redis.xlen(stream_of(prefix)))
    except ResponseError:
        return 0


def _entry(entry_id: bytes, fields: dict[Any, Any]) -> Entry:
    try:
        return entry_id, _decode(fields[b"d"])
    except (KeyError, msgspec.DecodeError, msgspec.ValidationError):
        return entry_id, None
