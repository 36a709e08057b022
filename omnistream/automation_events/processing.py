"""The worker's side of automation: claim the outbox's events, match them, act, record the runs.

* **Claiming.** A worker claims due events in batches across tenants (`claim_automation_events`:
  `FOR UPDATE SKIP LOCKED`, so several workers share the load). A claimed event is `processing`
  under a lease; an event whose lease ran out (its worker died or stalled) is due again and is
  claimed by the next batch, its attempts counted: that is the sweep.
* **Waking.** A committed event notifies `omnistream_automation_events` (a trigger, once per
  statement); the worker listens and claims at once. Polling every `POLL_SECONDS` is only the
  fallback, for a lost notification or a connection that cannot listen (behind a transaction
  pooler the listener needs a direct connection: `OMNISTREAM_LISTEN_DATABASE_URL`).
* **Matching.** Each tenant's rules are compiled once (`automation.engine`) and kept while the
  tenant's rules version (returned with every claimed event) stays the same. Rules are matched
  against the event's own snapshot at the moment it was written (`now` is the event's time), so
  a retry decides as the first attempt did. Events caused by automation match nothing.
* **Acting.** An event with matches is processed in one transaction: the event is locked (only
  while it is still this attempt's), then the conversation; each matched rule runs its actions
  (`actions.perform`) in a savepoint and records its run, unique per event and rule; the event
  is marked done; the transaction commits. So a worker killed at any point leaves either all of
  it or none of it, and a retry skips the rules that already have a run: at-least-once delivery,
  effects exactly once. Messages the actions queued and webhooks they left are sent after the
  commit. Events with no match are marked done together, in one statement per tenant and batch.
* **Failing.** An attempt that raises is rolled back and the event retried after a backoff
  (`backoff`), up to `MAX_ATTEMPTS`, then `failed` with the error. (An action that cannot be done
  does not fail the event: its run records the failure.)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import msgspec
import structlog
from arq import ArqRedis
from prometheus_client import Counter, Gauge

from omnistream.activity import service as activity
from omnistream.automation import service as automation
from omnistream.automation.engine import CompiledRules, compile_rules
from omnistream.automation.predicates import Event, MatchContext, event_from_payload, in_cooldown
from omnistream.automation.schemas import AutomationRule
from omnistream.automation.service import Outbox
from omnistream.automation_events import actions, repository, subscribers
from omnistream.automation_events.schemas import RunResult
from omnistream.contacts import service as contacts
from omnistream.conversations import service as conversations
from omnistream.db import Database, Savepoint
from omnistream.errors import Conflict, not_found
from omnistream.kit.background import listen
from omnistream.messages.service import enqueue_delivery
from omnistream.security.principal import Actor
from omnistream.working_hours import service as working_hours

log = structlog.get_logger(__name__)

BATCH = 200
LEASE = timedelta(seconds=60)
POLL_SECONDS = 1.0
MAX_ATTEMPTS = 5
CONVERSATIONS_AT_ONCE = 8
CHANNEL = "omnistream_automation_events"
WEBHOOK_JOB = "deliver_automation_webhooks"

CLAIMED = Counter("omnistream_automation_events_claimed", "Automation events claimed by workers", ["event_type"])
DONE = Counter("omnistream_automation_events_done", "Automation events processed", ["event_type"])
RETRIED = Counter(
    "omnistream_automation_events_retried", "Automation event attempts that failed and wait", ["event_type"]
)
FAILED = Counter("omnistream_automation_events_failed", "Automation events that failed for good", ["event_type"])
LAG = Gauge(
    "omnistream_automation_event_lag_seconds",
    "Age of the oldest event of the last claimed batch",
    multiprocess_mode="max",
)


_COUNTED = {"done": 1, "retried": 2, "failed": 3}  # positions in a tenant batch's counts


def backoff(attempts: int) -> timedelta:
    """The wait before the next attempt: 2, 4, 8 ... seconds, at most five minutes."""
    return timedelta(seconds=min(2**attempts, 300))


@dataclass(frozen=True, slots=True)
class Claim:
    tenant_id: UUID
    id: UUID
    event_type: str
    conversation_id: UUID
    contact_id: UUID | None
    payload: dict[str, Any]
    source: str
    attempts: int
    created_at: datetime
    rules_version: int


class Processor:
    """One worker's automation: a loop that claims and processes due events until stopped."""

    def __init__(self, db: Database, arq: ArqRedis, listen_url: str | None = None) -> None:
        self.db, self.arq, self.listen_url = db, arq, listen_url
        self._rules: dict[UUID, CompiledRules] = {}
        self._wake = asyncio.Event()
        # Conversations are independent: their events run side by side, each conversation's in order.
        self._gate = asyncio.Semaphore(CONVERSATIONS_AT_ONCE)

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        listener = await listen(self.listen_url, CHANNEL, self._wake, "automation events")
        try:
            while True:
                try:
                    claimed = await self.process_due()
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.warning("automation batch failed; trying again", error=str(exc))
                    claimed = 0
                    await asyncio.sleep(POLL_SECONDS)
                if claimed < BATCH:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
        finally:
            if listener is not None:
                await listener.close()

    async def process_due(self) -> int:
        """Claim one batch and process it; how many events it claimed."""
        async with self.db.anonymous() as conn:
            rows = await repository.claim_due(conn, BATCH, LEASE)
        if not rows:
            return 0
        claims = [Claim(**dict(row)) for row in rows]
        LAG.set(max(0.0, time.time() - min(c.created_at.timestamp() for c in claims)))
        by_tenant: dict[UUID, list[Claim]] = defaultdict(list)
        for claim in claims:
            by_tenant[claim.tenant_id].append(claim)
            CLAIMED.labels(claim.event_type).inc()
        await asyncio.gather(*(self._tenant_batch(tenant_id, batch) for tenant_id, batch in by_tenant.items()))
        return len(claims)

    # ------------------------------------------------------------------ one tenant's batch

    async def rules_for(self, tenant_id: UUID, version: int) -> CompiledRules:
        """The tenant's compiled rules at this version (compiled again when the version moved on)."""
        compiled = self._rules.get(tenant_id)
        if compiled is None or compiled.version != version:
            async with self.db.read(tenant_id) as conn:
                rules, control, current = await automation.rule_set(conn, tenant_id)
            compiled = compile_rules(rules, control, version=current)
            self._rules[tenant_id] = compiled
        return compiled

    async def _tenant_batch(self, tenant_id: UUID, batch: list[Claim]) -> None:
        counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for claim in batch:
            counts[claim.event_type][0] += 1
        try:
            compiled = await self.rules_for(tenant_id, max(c.rules_version for c in batch))
            quiet, busy = [], []
            for claim in batch:
                (busy if await self._may_match(compiled, claim) else quiet).append(claim)
            if quiet:
                try:
                    async with self.db.tenant(tenant_id) as conn:
                        finished = await repository.finish(conn, tenant_id, [(c.id, c.attempts) for c in quiet])
                        queued = await subscribers.events_done(conn, tenant_id, [c for c in quiet if c.id in finished])
                except Exception as exc:
                    # One event a subscriber cannot take must not hold back the rest of the batch:
                    # each is tried alone, and the one that fails is retried as a failing event is.
                    log.warning("a batch of events failed together; one by one", error=str(exc))
                    busy.extend(quiet)
                else:
                    for message_id in queued:
                        await enqueue_delivery(self.arq, tenant_id, message_id)
                    for claim in quiet:
                        if claim.id in finished:
                            counts[claim.event_type][1] += 1
                            DONE.labels(claim.event_type).inc()
            by_conversation: dict[UUID, list[Claim]] = defaultdict(list)
            for claim in busy:
                by_conversation[claim.conversation_id].append(claim)

            async def in_order(claims: list[Claim]) -> None:
                async with self._gate:
                    for claim in claims:
                        outcome = await self._process_one(compiled, claim)
                        if outcome is not None:
                            counts[claim.event_type][_COUNTED[outcome]] += 1

            await asyncio.gather(*(in_order(claims) for claims in by_conversation.values()))
        finally:
            try:
                async with self.db.tenant(tenant_id) as conn:
                    await repository.count_worker_events(conn, tenant_id, counts)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("automation counters not written", tenant_id=str(tenant_id), error=str(exc))

    async def _may_match(self, compiled: CompiledRules, claim: Claim) -> bool:
        """Whether any rule could run for the event (cooldown aside): the matcher, without the database
        unless a candidate rule needs business hours or the contact's tags."""
        if not compiled.needs_business_hours_for(claim.event_type) and not compiled.needs_contact_tags_for(
            claim.event_type
        ):
            event = event_from_payload(claim.event_type, claim.payload, source=claim.source, contact_tags=())
            return bool(compiled.candidates(event, MatchContext(now=claim.created_at, in_business_hours=True)).rules)
        return True  # decided inside the event's transaction, where its facts can be read

    # ------------------------------------------------------------------ one event

    async def _process_one(self, compiled: CompiledRules, claim: Claim) -> str | None:
        """Process an event in one transaction; "done", "retried", "failed" or None (no longer ours)."""
        effects = actions.RunEffects()
        try:
            async with self.db.tenant(claim.tenant_id) as conn:
                already_run = await repository.lock_claimed(conn, claim.tenant_id, claim.id, claim.attempts)
                if already_run is None:
                    return None  # its lease ran out and another worker has it now
                await act(conn, compiled, claim, effects, claim.created_at, already_run)
                await repository.finish(conn, claim.tenant_id, [(claim.id, claim.attempts)])
                queued = await subscribers.events_done(conn, claim.tenant_id, [claim])
        except Exception as exc:
            return await self._failed(claim, exc)
        DONE.labels(claim.event_type).inc()
        await after_commit(self.arq, claim.tenant_id, effects)
        for message_id in queued:
            await enqueue_delivery(self.arq, claim.tenant_id, message_id)
        return "done"

    async def _failed(self, claim: Claim, exc: Exception) -> str:
        give_up = claim.attempts >= MAX_ATTEMPTS
        error = f"{type(exc).__name__}: {exc}"[:2000]
        log.warning(
            "automation event failed", event_id=str(claim.id), attempts=claim.attempts, give_up=give_up, error=error
        )
        async with self.db.tenant(claim.tenant_id) as conn:
            await repository.retry(
                conn,
                claim.tenant_id,
                claim.id,
                claim.attempts,
                delay=backoff(claim.attempts),
                give_up=give_up,
                error=error,
            )
        (FAILED if give_up else RETRIED).labels(claim.event_type).inc()
        return "failed" if give_up else "retried"


async def act(
    conn: asyncpg.Connection,
    compiled: CompiledRules,
    claim: Claim,
    effects: actions.RunEffects,
    now: datetime,
    already_run: Collection[UUID] = (),
) -> None:
    """Match the event at `now` and run each matched rule not `already_run` for it (inside the
    caller's transaction, which holds the event)."""
    row = await conversations.lock_for_automation(conn, claim.tenant_id, claim.conversation_id)
    if row is None:
        return  # the conversation was deleted, and with it what the event was about
    event = await _event(conn, compiled, claim)
    context = MatchContext(now=now, in_business_hours=await _business_hours(conn, compiled, claim, now))
    candidates = compiled.candidates(event, context)
    if not candidates.rules:
        return
    last_runs = (
        await repository.last_runs(conn, claim.tenant_id, claim.conversation_id, candidates.cooldown_rule_ids)
        if candidates.cooldown_rule_ids
        else {}
    )
    matches = candidates.resolve(last_runs)
    held = _held_by_cooldown(candidates.rules, {m.rule_id for m in matches}, last_runs, now)
    outbox = Outbox(claim.tenant_id, source="automation")
    actor = Actor.automation(claim.tenant_id, request_id=f"automation-event:{claim.id}")
    for match in matches:
        if match.rule_id not in already_run:
            await _run(conn, actor, claim, match.rule, outbox, effects)
    for rule in held:
        if rule.id not in already_run:
            await _record_run(conn, claim, rule, RunResult(outcome="cooldown"), executed=False)
    await outbox.write(conn)


async def _event(conn: asyncpg.Connection, compiled: CompiledRules, claim: Claim) -> Event:
    tags: Iterable[str] | None = ()
    if compiled.needs_contact_tags_for(claim.event_type) and claim.contact_id is not None:
        contact = await contacts.get_in(conn, claim.tenant_id, claim.contact_id)
        tags = contact.tags if contact else ()
    return event_from_payload(claim.event_type, claim.payload, source=claim.source, contact_tags=tags)


async def _business_hours(
    conn: asyncpg.Connection, compiled: CompiledRules, claim: Claim, now: datetime
) -> bool | None:
    if not compiled.needs_business_hours_for(claim.event_type):
        return None
    division = claim.payload.get("division_id")
    return await working_hours.is_open(conn, claim.tenant_id, UUID(division) if division else None, now)


async def _run(
    conn: asyncpg.Connection,
    actor: Actor,
    claim: Claim,
    rule: AutomationRule,
    outbox: Outbox,
    effects: actions.RunEffects,
) -> None:
    started = time.perf_counter()
    rule_effects = actions.RunEffects()
    context = actions.ActionContext(
        conn=conn,
        actor=actor,
        rule=rule,
        conversation_id=claim.conversation_id,
        outbox=outbox,
        effects=rule_effects,
        event_payload=claim.payload,
        event_id=claim.id,
        event_type=claim.event_type,
    )
    async with Savepoint(conn, "rule_run") as step:
        ok, outcomes = await actions.perform(context, list(rule.actions))
        if not ok:
            await step.rollback()  # a run does all of its actions or none
            rule_effects = actions.RunEffects()
    result = RunResult(
        outcome="executed" if ok else "failed",
        actions=outcomes,
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
    )
    run_id = await _record_run(conn, claim, rule, result, executed=ok, webhooks=rule_effects.webhooks > 0)
    if run_id is not None and ok:
        effects.messages += rule_effects.messages
        if rule_effects.webhooks:
            effects.webhook_runs.append(run_id)


async def after_commit(arq: ArqRedis, tenant_id: UUID, effects: actions.RunEffects) -> None:
    """What the committed runs left: deliver their messages, post their webhooks."""
    for message_id in effects.messages:
        await enqueue_delivery(arq, tenant_id, message_id)
    for run_id in effects.webhook_runs:
        await enqueue_webhooks(arq, tenant_id, run_id)


async def reprocess_event(db: Database, arq: ArqRedis, actor: Actor, event_id: UUID) -> None:
    """Evaluate a stored event again with the tenant's current rules, now: rules that have no run for
    it yet run (those that have keep theirs: a run is once per event and rule); it ends done."""
    effects = actions.RunEffects()
    async with db.tenant(actor.tenant_id) as conn:
        row = await repository.lock_for_reprocess(conn, actor.tenant_id, event_id)
        if row is None:
            raise not_found("automation event")
        if row["status"] == "processing":
            raise Conflict("a worker is processing the event now; reprocess it once it is done or failed")
        rules, control, version = await automation.rule_set(conn, actor.tenant_id)
        claim = Claim(
            tenant_id=actor.tenant_id,
            id=row["id"],
            event_type=row["event_type"],
            conversation_id=row["conversation_id"],
            contact_id=row["contact_id"],
            payload=row["payload"],
            source=row["source"],
            attempts=row["attempts"],
            created_at=row["created_at"],
            rules_version=version,
        )
        compiled = compile_rules(rules, control, version=version)
        already_run = await repository.existing_runs(conn, actor.tenant_id, event_id)
        await act(conn, compiled, claim, effects, datetime.now(UTC), already_run)
        await repository.mark_done(conn, actor.tenant_id, event_id)
        await activity.record(conn, actor, "automation_event.reprocessed", "automation_event", event_id)
    await after_commit(arq, actor.tenant_id, effects)


def _held_by_cooldown(
    candidates: list[AutomationRule], matched: set[UUID], last_runs: dict[UUID, datetime], now: datetime
) -> list[AutomationRule]:
    """The candidates a cooldown held back, up to where a matched rule stopped the evaluation."""
    held = []
    for rule in candidates:
        if rule.id in matched:
            if rule.stop_on_match:
                break
        elif in_cooldown(rule.cooldown_secs, last_runs.get(rule.id), now):
            held.append(rule)
    return held


async def _record_run(
    conn: asyncpg.Connection,
    claim: Claim,
    rule: AutomationRule,
    result: RunResult,
    *,
    executed: bool,
    webhooks: bool = False,
) -> UUID | None:
    return await repository.insert_run(
        conn,
        claim.tenant_id,
        event_id=claim.id,
        rule_id=rule.id,
        rule_name=rule.name,
        conversation_id=claim.conversation_id,
        matched=True,
        executed=executed,
        result=msgspec.to_builtins(result),
        rule_snapshot={
            "trigger_type": rule.trigger_type,
            "conditions": msgspec.to_builtins(rule.conditions),
            "actions": msgspec.to_builtins(rule.actions),
        },
        webhooks_pending=webhooks and executed,
        duration_ms=result.duration_ms,
    )


async def enqueue_webhooks(arq: ArqRedis, tenant_id: UUID, run_id: UUID) -> None:
    """After commit: the run is the truth, the job a nudge (the sweeper posts what a lost job left)."""
    try:
        await arq.enqueue_job(WEBHOOK_JOB, str(tenant_id), str(run_id), _job_id=f"automation-webhooks:{run_id}")
    except Exception as exc:
        log.warning("webhook job not enqueued", run_id=str(run_id), error=str(exc))
