"""SLA policies and the clocks they run on conversations.

A policy has up to three targets, in minutes: first response (from the opening to the first agent
reply), next response (from a customer's message after an agent reply to the next agent reply)
and resolution (from the opening, or a reopening, to resolved or closed). With `business_hours`
only the open hours of the conversation's division (its override, else the organisation's
schedule) count; an organisation that never set hours has every hour counted.

The clocks are fed by the automation outbox (`on_events`, a subscriber of the event processor,
called in the transaction that marks the events done) and read each event's `created_at` as the
time, so a retried event decides exactly as the first attempt did:

* conversation_created starts first response and resolution;
* message_sent by an agent meets first response and a running next response (automation's own
  messages meet nothing);
* message_received_inbound after an agent reply starts next response (once per customer turn:
  further customer messages before the reply do not restart it);
* status_changed to resolved or closed meets resolution and stops the others; to expired stops
  them all; to pending pauses resolution (the customer owes the answer), keeping the open time
  left, and leaving pending starts it again with that time left;
* a reopening (resolved, closed or expired to open or pending) starts a new resolution clock from
  the reopening; first response is not asked for again, and the customer message that reopened
  the conversation starts next response as any customer message does.

Which policy applies: the first enabled one, by position and then age, whose conditions
(channels, divisions, priorities; an empty list matches any) the conversation meets. It is chosen
when the conversation opens and again with each later event, from the event's snapshot of the
conversation; so routing to a division (conversation_assigned), a priority change (seen with the
conversation's next event), or a policy enabled, disabled or edited, takes effect on a
conversation with its next event. When that changes the policy, the clocks still running are
timed again from their own start by the new policy's targets (one it lacks stops), clocks it has
and the conversation lacks start from when they would have, and met or breached clocks stay as
they were. A policy edit that does not change which policy applies leaves running clocks their
due times. Deleting a policy deletes its clocks and its breaches. Conversations opened while the
organisation had no policy at all get no clocks (nothing is kept for organisations without SLA).

The monitor (`monitor`, an arq cron) finds the clocks past their due time through the partial
index `sla_targets_watch_idx` (running, unbreached clocks only), records each breach once (unique
per clock) and writes one `sla_breached` event (source "sla") in the same transaction. A clock
that breached still runs: its met_at tells how late it was met.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg
import msgspec
import structlog

from omnistream.activity import service as activity
from omnistream.automation.service import Outbox
from omnistream.conversations import service as conversations
from omnistream.db import Database
from omnistream.divisions import service as divisions
from omnistream.errors import Unprocessable, not_found
from omnistream.kit.pagination import Cursor, ListParams, page_of, query_moment
from omnistream.security.principal import Actor
from omnistream.sla import repository
from omnistream.sla.schemas import (
    TARGETS,
    ConversationSla,
    SlaBreach,
    SlaBreachList,
    SlaConditionsInput,
    SlaPolicy,
    SlaPolicyCreate,
    SlaPolicyList,
    SlaPolicySummary,
    SlaPolicyUpdate,
    SlaTargetsInput,
    SlaTargetStatus,
)
from omnistream.working_hours import schedule
from omnistream.working_hours import service as working_hours

if TYPE_CHECKING:
    from omnistream.automation_events.processing import Claim

log = structlog.get_logger(__name__)

MAX_POLICIES = 100
MONITOR_BATCH = 500
MONITOR_TENANTS = 500
FINAL_STATUSES = frozenset({"resolved", "closed", "expired"})
CLOCK_EVENTS = frozenset(
    {"conversation_created", "message_received_inbound", "message_sent", "status_changed", "conversation_assigned"}
)
RESPONSES = ("first_response", "next_response")

Calendar = tuple[schedule.Schedule, ZoneInfo]


# ---------------------------------------------------------------- policies: rules


def _minutes(policy: SlaPolicy, target: str) -> int | None:
    return getattr(policy.targets, f"{target}_minutes")


def _division(snapshot: dict[str, Any]) -> UUID | None:
    value = snapshot.get("division_id")
    return UUID(str(value)) if value else None


def matches(policy: SlaPolicy, snapshot: dict[str, Any]) -> bool:
    conditions = policy.conditions
    return (
        (not conditions.channels or snapshot.get("channel") in conditions.channels)
        and (not conditions.division_ids or _division(snapshot) in conditions.division_ids)
        and (not conditions.priorities or snapshot.get("priority") in conditions.priorities)
    )


def choose(policies: Sequence[SlaPolicy], snapshot: dict[str, Any]) -> SlaPolicy | None:
    """The first enabled policy the conversation meets (`policies` in their order)."""
    return next((p for p in policies if p.enabled and matches(p, snapshot)), None)


def _check_targets(targets: SlaTargetsInput) -> None:
    if all(getattr(targets, f"{t}_minutes") is None for t in TARGETS):
        raise Unprocessable("a policy needs at least one target", field="targets")


async def _check_divisions(conn: asyncpg.Connection, tenant_id: UUID, conditions: SlaConditionsInput) -> None:
    for i, division_id in enumerate(conditions.division_ids):
        if not await divisions.exists(conn, tenant_id, division_id):
            raise Unprocessable("no such division in this organisation", field=f"conditions.division_ids[{i}]")


def _columns(
    name: str,
    description: str | None,
    enabled: bool,
    position: int,
    business_hours: bool,
    targets: SlaTargetsInput,
    conditions: SlaConditionsInput,
) -> dict[str, Any]:
    return {
        "name": name.strip(),
        "description": description,
        "enabled": enabled,
        "position": position,
        "business_hours": business_hours,
        **{f"{t}_minutes": getattr(targets, f"{t}_minutes") for t in TARGETS},
        "channels": sorted(set(conditions.channels)),
        "division_ids": sorted(set(conditions.division_ids)),
        "priorities": sorted(set(conditions.priorities)),
    }


async def _policy_or_404(conn: Any, tenant_id: UUID, policy_id: UUID) -> SlaPolicy:
    policy = await repository.get_policy(conn, tenant_id, policy_id)
    if policy is None:
        raise not_found("SLA policy")
    return policy


# ---------------------------------------------------------------- policies: the API


async def list_policies(db: Database, actor: Actor, *, enabled: bool | None) -> SlaPolicyList:
    async with db.read(actor.tenant_id) as conn:
        policies = await repository.list_policies(conn, actor.tenant_id, enabled=enabled)
    return SlaPolicyList(sla_policies=policies, total=len(policies))


async def create_policy(db: Database, actor: Actor, data: SlaPolicyCreate) -> SlaPolicy:
    _check_targets(data.targets)
    conditions = data.conditions or SlaConditionsInput()
    async with db.tenant(actor.tenant_id) as conn:
        if await repository.policy_count(conn, actor.tenant_id) >= MAX_POLICIES:
            raise Unprocessable(f"an organisation has at most {MAX_POLICIES} SLA policies")
        await _check_divisions(conn, actor.tenant_id, conditions)
        position = data.position if data.position is not None else await repository.next_position(conn, actor.tenant_id)
        fields = _columns(
            data.name, data.description, data.enabled, position, data.business_hours, data.targets, conditions
        )
        policy_id = await repository.insert_policy(conn, actor.tenant_id, actor.user_id, **fields)
        await activity.record(conn, actor, "sla_policy.created", "sla_policy", policy_id, name=fields["name"])
        return await _policy_or_404(conn, actor.tenant_id, policy_id)


async def update_policy(db: Database, actor: Actor, policy_id: UUID, data: SlaPolicyUpdate) -> SlaPolicy:
    changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
    if isinstance(data.targets, SlaTargetsInput):
        _check_targets(data.targets)
    async with db.tenant(actor.tenant_id) as conn:
        if not await repository.lock_policy(conn, actor.tenant_id, policy_id):
            raise not_found("SLA policy")
        current = await _policy_or_404(conn, actor.tenant_id, policy_id)
        if isinstance(data.conditions, SlaConditionsInput):
            await _check_divisions(conn, actor.tenant_id, data.conditions)
        merged = {
            "name": current.name,
            "description": current.description,
            "enabled": current.enabled,
            "position": current.position,
            "business_hours": current.business_hours,
            "targets": msgspec.convert(msgspec.to_builtins(current.targets), SlaTargetsInput),
            "conditions": msgspec.convert(msgspec.to_builtins(current.conditions), SlaConditionsInput),
        } | changes
        await repository.update_policy(conn, actor.tenant_id, policy_id, actor.user_id, **_columns(**merged))
        await activity.record(conn, actor, "sla_policy.updated", "sla_policy", policy_id, fields=sorted(changes))
        return await _policy_or_404(conn, actor.tenant_id, policy_id)


async def delete_policy(db: Database, actor: Actor, policy_id: UUID) -> None:
    async with db.tenant(actor.tenant_id) as conn:
        if not await repository.lock_policy(conn, actor.tenant_id, policy_id):
            raise not_found("SLA policy")
        await repository.delete_policy(conn, actor.tenant_id, policy_id)
        await activity.record(conn, actor, "sla_policy.deleted", "sla_policy", policy_id)


def _by_breach_time(breach: SlaBreach) -> Cursor:
    return Cursor(breach.breached_at, breach.id)


async def list_breaches(
    db: Database,
    actor: Actor,
    policy_id: UUID,
    params: ListParams,
    *,
    target: str | None,
    conversation_id: UUID | None,
    breached_from: str | None,
    breached_to: str | None,
) -> SlaBreachList:
    since, until = query_moment(breached_from, "breached_from"), query_moment(breached_to, "breached_to")
    if since and until and since > until:
        raise Unprocessable("breached_from must not be after breached_to", field="breached_from")
    async with db.read(actor.tenant_id) as conn:
        await _policy_or_404(conn, actor.tenant_id, policy_id)
        rows, total = await repository.list_breaches(
            conn,
            actor.tenant_id,
            policy_id,
            params,
            target=target,
            conversation_id=conversation_id,
            breached_from=since,
            breached_to=until,
        )
    rows, next_cursor = page_of(rows, params, _by_breach_time)
    return SlaBreachList(breaches=rows, next_cursor=next_cursor, total=total)


# ---------------------------------------------------------------- a conversation's SLA


def _target_status(row: asyncpg.Record, now: datetime) -> SlaTargetStatus:
    if row["met_at"] is not None:
        state, left = "met", None
    elif row["stopped_at"] is not None:
        state, left = "stopped", None
    elif row["paused_at"] is not None:
        state, left = "paused", round(row["remaining_seconds"])
    else:
        state = "running"
        left = None if row["due_at"] is None else int((row["due_at"] - now).total_seconds() // 1)
    due = row["due_at"]
    late = (left is not None and left < 0) or (state == "met" and due is not None and row["met_at"] > due)
    return SlaTargetStatus(
        target=row["target"],
        policy_id=row["policy_id"],
        state=state,
        started_at=row["started_at"],
        due_at=due,
        met_at=row["met_at"],
        breached_at=row["breached_at"],
        stopped_at=row["stopped_at"],
        paused_at=row["paused_at"],
        seconds_left=left,
        late=late or row["breached_at"] is not None,
    )


async def conversation_sla(
    db: Database, actor: Actor, conversation_id: UUID, now: datetime | None = None
) -> ConversationSla:
    now = now or datetime.now(UTC)
    async with db.read(actor.tenant_id) as conn:
        await conversations.require_visible(conn, actor, conversation_id)
        state = await repository.conversation_state(conn, actor.tenant_id, conversation_id)
        rows = await repository.conversation_targets(conn, actor.tenant_id, conversation_id)
    policy = (
        None
        if state is None
        else SlaPolicySummary(id=state["policy_id"], name=state["policy_name"], business_hours=state["business_hours"])
    )
    return ConversationSla(
        conversation_id=conversation_id, policy=policy, targets=[_target_status(row, now) for row in rows]
    )


# ---------------------------------------------------------------- the clocks (the outbox's subscriber)


@dataclass
class _Clocks:
    """One call's view of a tenant: its policies and the business calendars of its divisions."""

    conn: asyncpg.Connection
    tenant_id: UUID
    policies: list[SlaPolicy]
    calendars: dict[UUID | None, Calendar] = field(default_factory=dict)

    def policy(self, policy_id: UUID | None) -> SlaPolicy | None:
        return next((p for p in self.policies if p.id == policy_id), None)

    async def _calendar(self, policy: SlaPolicy, division_id: UUID | None) -> Calendar | None:
        """The open hours to count, or None when every hour counts."""
        if not policy.business_hours:
            return None
        if division_id not in self.calendars:
            self.calendars[division_id] = await working_hours.calendar(self.conn, self.tenant_id, division_id)
        hours, zone = self.calendars[division_id]
        return None if hours.never_open else (hours, zone)

    async def due(
        self, policy: SlaPolicy, division_id: UUID | None, start: datetime, length: timedelta
    ) -> datetime | None:
        calendar = await self._calendar(policy, division_id)
        return start + length if calendar is None else schedule.add_open_time(*calendar, start, length)

    async def counted(self, policy: SlaPolicy, division_id: UUID | None, start: datetime, end: datetime) -> timedelta:
        calendar = await self._calendar(policy, division_id)
        if calendar is None:
            return max(end - start, timedelta(0))
        return schedule.open_time_between(*calendar, start, end)

    async def timing(
        self, policy: SlaPolicy, division_id: UUID | None, target: str, started_at: datetime, paused_at: datetime | None
    ) -> dict[str, Any]:
        """due_at, or (when paused at `paused_at`) the counted time left then, for a clock under the policy."""
        minutes = _minutes(policy, target)
        assert minutes is not None
        due = await self.due(policy, division_id, started_at, timedelta(minutes=minutes))
        if paused_at is None:
            return {"due_at": due, "paused_at": None, "remaining_seconds": None}
        left = await self.counted(policy, division_id, paused_at, due) if due else timedelta(minutes=minutes)
        return {"due_at": None, "paused_at": paused_at, "remaining_seconds": left.total_seconds()}


async def on_events(conn: asyncpg.Connection, tenant_id: UUID, claims: Sequence[Claim]) -> None:
    """Advance the SLA clocks by the events, oldest first (an outbox subscriber; queues no message)."""
    relevant = sorted((c for c in claims if c.event_type in CLOCK_EVENTS), key=lambda c: (c.created_at, c.id))
    if not relevant:
        return
    policies = await repository.list_policies(conn, tenant_id)
    if not policies:
        return  # an organisation without SLA policies keeps no clocks at all
    clocks = _Clocks(conn, tenant_id, policies)
    for claim in relevant:
        await _advance(clocks, claim)


async def _advance(clocks: _Clocks, claim: Claim) -> None:
    conn, tenant_id, conversation_id = clocks.conn, clocks.tenant_id, claim.conversation_id
    at, snapshot = claim.created_at, claim.payload
    if claim.event_type == "conversation_created":
        await repository.insert_state(conn, tenant_id, conversation_id, at, snapshot["status"])
    row = await repository.lock_state(conn, tenant_id, conversation_id)
    if row is None:
        return  # opened before SLA clocks ran, or its opening is not yet processed
    state = dict(row)
    # An event older than one already seen is late: it may still meet a clock at its own time, but
    # its snapshot (status, division, priority) is out of date.
    fresh = at >= state["observed_at"]
    division_id = _division(snapshot)
    status = snapshot.get("status", state["status"])

    if claim.event_type == "message_sent" and snapshot.get("sender_type") == "agent":
        await repository.close_targets(conn, tenant_id, conversation_id, RESPONSES, at, met=True)
        if state["last_agent_reply_at"] is None or at > state["last_agent_reply_at"]:
            state["last_agent_reply_at"] = at
        if state["awaiting_reply_since"] is not None and state["awaiting_reply_since"] <= at:
            state["awaiting_reply_since"] = None
    elif claim.event_type == "message_received_inbound":
        replied = state["last_agent_reply_at"]
        if replied is not None and replied <= at and state["awaiting_reply_since"] is None:
            state["awaiting_reply_since"] = at
    elif claim.event_type == "status_changed" and fresh:
        if status in ("resolved", "closed"):
            await repository.close_targets(conn, tenant_id, conversation_id, ["resolution"], at, met=True)
            await repository.close_targets(conn, tenant_id, conversation_id, RESPONSES, at, met=False)
            state["awaiting_reply_since"] = None
        elif status == "expired":
            await repository.close_targets(conn, tenant_id, conversation_id, TARGETS, at, met=False)
            state["awaiting_reply_since"] = None
        elif snapshot.get("previous_status") in FINAL_STATUSES:
            state["resolution_since"] = at

    policy = clocks.policy(state["policy_id"])
    if fresh:
        state["status"], state["observed_at"] = status, at
        chosen = choose(clocks.policies, snapshot)
        if (chosen.id if chosen else None) != state["policy_id"]:
            await _switch(clocks, conversation_id, chosen, division_id, at)
            policy, state["policy_id"] = chosen, chosen.id if chosen else None
        await _pause_or_resume(clocks, conversation_id, policy, division_id, status, at)
    if policy is not None and state["status"] not in FINAL_STATUSES:
        await _start_missing(clocks, conversation_id, policy, division_id, state, at)
    await repository.save_state(
        conn,
        tenant_id,
        conversation_id,
        **{k: state[k] for k in ("policy_id", "resolution_since", "last_agent_reply_at", "awaiting_reply_since")},
        status=state["status"],
        observed_at=state["observed_at"],
    )


async def _switch(
    clocks: _Clocks, conversation_id: UUID, policy: SlaPolicy | None, division_id: UUID | None, at: datetime
) -> None:
    """Another policy applies: the running clocks are timed by it from their own start, or stop."""
    for row in await repository.open_targets(clocks.conn, clocks.tenant_id, conversation_id):
        if policy is None or _minutes(policy, row["target"]) is None:
            await repository.close_targets(
                clocks.conn, clocks.tenant_id, conversation_id, [row["target"]], at, met=False
            )
            continue
        timing = await clocks.timing(policy, division_id, row["target"], row["started_at"], row["paused_at"])
        await repository.retime_target(clocks.conn, clocks.tenant_id, row["id"], policy_id=policy.id, **timing)


async def _pause_or_resume(
    clocks: _Clocks,
    conversation_id: UUID,
    policy: SlaPolicy | None,
    division_id: UUID | None,
    status: str,
    at: datetime,
) -> None:
    if policy is None:
        return
    for row in await repository.open_targets(clocks.conn, clocks.tenant_id, conversation_id):
        if row["target"] != "resolution":
            continue
        if status == "pending" and row["paused_at"] is None and row["due_at"] is not None and row["due_at"] > at:
            left = await clocks.counted(policy, division_id, at, row["due_at"])
            await repository.retime_target(
                clocks.conn,
                clocks.tenant_id,
                row["id"],
                policy_id=row["policy_id"],
                due_at=None,
                paused_at=at,
                remaining_seconds=left.total_seconds(),
            )
        elif status != "pending" and row["paused_at"] is not None:
            due = await clocks.due(policy, division_id, at, timedelta(seconds=row["remaining_seconds"]))
            await repository.retime_target(
                clocks.conn,
                clocks.tenant_id,
                row["id"],
                policy_id=row["policy_id"],
                due_at=due,
                paused_at=None,
                remaining_seconds=None,
            )


async def _start_missing(
    clocks: _Clocks,
    conversation_id: UUID,
    policy: SlaPolicy,
    division_id: UUID | None,
    state: dict[str, Any],
    at: datetime,
) -> None:
    """Start the clocks the conversation should have running under the policy and lacks."""
    running = {row["target"] for row in await repository.open_targets(clocks.conn, clocks.tenant_id, conversation_id)}
    wanted: dict[str, datetime] = {}
    if (
        state["last_agent_reply_at"] is None
        and "first_response" not in running
        and "first_response" not in await repository.targets_started(clocks.conn, clocks.tenant_id, conversation_id)
    ):
        wanted["first_response"] = state["opened_at"]
    if state["awaiting_reply_since"] is not None and "next_response" not in running:
        wanted["next_response"] = state["awaiting_reply_since"]
    if "resolution" not in running:
        wanted["resolution"] = state["resolution_since"]
    for target, started_at in wanted.items():
        if _minutes(policy, target) is None:
            continue
        paused_at = at if target == "resolution" and state["status"] == "pending" else None
        timing = await clocks.timing(policy, division_id, target, started_at, paused_at)
        await repository.insert_target(
            clocks.conn,
            clocks.tenant_id,
            conversation_id,
            policy_id=policy.id,
            target=target,
            started_at=started_at,
            **timing,
        )


# ---------------------------------------------------------------- the monitor


async def monitor(db: Database, now: datetime | None = None, *, batch: int = MONITOR_BATCH) -> int:
    """Record the breaches of every clock past its due time at `now`; how many were recorded."""
    now = now or datetime.now(UTC)
    async with db.anonymous() as conn:
        tenant_ids = await repository.tenants_with_due_targets(conn, now, MONITOR_TENANTS)
    recorded = 0
    for tenant_id in tenant_ids:
        try:
            recorded += await breach_due(db, tenant_id, now, batch=batch)
        except (OSError, asyncpg.PostgresError) as exc:
            # One tenant's trouble must not hold back the others' breaches; the next run tries again.
            log.warning("SLA breaches not recorded", tenant_id=str(tenant_id), error=str(exc))
    return recorded


async def breach_due(db: Database, tenant_id: UUID, now: datetime, *, batch: int = MONITOR_BATCH) -> int:
    """One tenant's breaches at `now`, each with its sla_breached event, in one transaction."""
    async with db.tenant(tenant_id) as conn:
        due = await repository.due_targets(conn, tenant_id, now, batch)
        if not due:
            return 0
        breaches = await repository.record_breaches(conn, tenant_id, now, [row["id"] for row in due])
        if not breaches:
            return 0
        await repository.mark_breached(conn, tenant_id, [b["target_id"] for b in breaches], now)
        outbox = Outbox(tenant_id, source="sla")
        events: dict[UUID, UUID] = {}
        snapshots: dict[UUID, dict[str, Any] | None] = {}
        for breach in breaches:
            conversation_id = breach["conversation_id"]
            if conversation_id not in snapshots:
                snapshots[conversation_id] = await conversations.snapshot_of(conn, tenant_id, conversation_id)
            snapshot = snapshots[conversation_id]
            if snapshot is None:
                continue
            events[breach["target_id"]] = outbox.add(
                "sla_breached",
                conversation_id,
                snapshot["contact_id"],
                {
                    **snapshot,
                    "target": breach["target"],
                    "policy_id": breach["policy_id"],
                    "due_at": breach["due_at"],
                    "breached_at": now,
                },
            )
        await outbox.write(conn)
        await repository.link_breach_events(conn, tenant_id, events)
    return len(breaches)
