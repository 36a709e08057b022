"""What else the outbox's events feed besides automation rules: SLA clocks and outgoing webhooks.

Each subscriber is called in the transaction that marks its events done, so it sees every
committed event once it is processed and never one that was rolled back. Delivery is
at-least-once (an event whose transaction fails is retried), so subscribers are idempotent.
A subscriber answers the ids of the messages it queued (or nothing): the processor enqueues
their delivery after the commit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import cache
from typing import TYPE_CHECKING
from uuid import UUID

import asyncpg

if TYPE_CHECKING:
    from omnistream.automation_events.processing import Claim

Subscriber = Callable[[asyncpg.Connection, UUID, Sequence["Claim"]], Awaitable[Sequence[UUID] | None]]


@cache
def subscribers() -> tuple[Subscriber, ...]:
    # Imported when first needed: the subscribing areas themselves send messages and write events.
    from omnistream.csat.service import send_on_resolve as csat_on_resolve
    from omnistream.outgoing_webhooks.service import fan_out
    from omnistream.sla.service import on_events as sla_clocks

    return (fan_out, sla_clocks, csat_on_resolve)


async def events_done(conn: asyncpg.Connection, tenant_id: UUID, events: Sequence[Claim]) -> list[UUID]:
    """Feed the events to every subscriber; the messages they queued."""
    queued: list[UUID] = []
    if events:
        for subscriber in subscribers():
            queued.extend(await subscriber(conn, tenant_id, events) or ())
    return queued
