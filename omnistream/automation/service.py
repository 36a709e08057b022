"""The automation outbox: events written in the same transaction as the change that causes them.

Processing them (matching rules, running actions) belongs to the automation engine; until it
claims them they wait as `pending`, so nothing is lost if no worker is listening yet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import msgspec

from omnistream.activity import service as activity
from omnistream.agents import service as agents
from omnistream.automation import repository
from omnistream.automation.engine import effective_state as stop_reasons
from omnistream.automation.engine import rule_effective_state
from omnistream.automation.interpreter import conditions_hold
from omnistream.automation.predicates import Event, MatchContext, normalize_tags, pause_in_force, schedule_windows
from omnistream.automation.schemas import (
    ALERT_PRESETS,
    AddNoteAction,
    AlertLevel,
    AlertSettings,
    AlertSettingsUpdate,
    AnyAction,
    AutomationControl,
    AutomationControlUpdate,
    AutomationRule,
    AutomationRuleCreate,
    AutomationRuleUpdate,
    EffectiveState,
    RolloutUpdate,
    RuleAlert,
    RuleConditions,
    RuleDefinitionError,
    RuleMessage,
    RuleSnooze,
    RuleSnoozeBulk,
    RuleSnoozed,
    RulesSnoozed,
    RuleStats,
    RuleTest,
    RuleTestResult,
    RuleToggle,
    RuleToggled,
    RunBucket,
    SchedulePreview,
    ScheduleSettingsUpdate,
    ScheduleWindow,
    SendMessageAction,
    SendTemplateAction,
    SendWebhookAction,
    StatsOverview,
    StopReason,
    TestEventPayload,
    validate_rule,
)
from omnistream.automation.variables import render
from omnistream.db import Database
from omnistream.divisions import service as divisions
from omnistream.errors import Unprocessable, not_found
from omnistream.kit.pagination import query_moment
from omnistream.security.principal import Actor
from omnistream.working_hours import service as working_hours

EVENT_TYPES = (
    "conversation_created",
    "message_received_inbound",
    "status_changed",
    "sla_breached",
    # No rule triggers on these yet; SLA clocks and outgoing webhooks take them from the outbox.
    "message_sent",
    "conversation_assigned",
    "csat_submitted",
)


@dataclass
class Outbox:
    """Collects a transaction's events, then writes them in one statement before commit.

    Each event's fingerprint (`payload_hash`) is computed by the statement that writes it, with
    the database's `payload_fingerprint`, as ingestion's events are.
    """

    tenant_id: UUID
    source: str
    events: list[dict[str, Any]] = field(default_factory=list)

    def add(self, event_type: str, conversation_id: UUID, contact_id: UUID | None, payload: dict[str, Any]) -> UUID:
        assert event_type in EVENT_TYPES, event_type
        body = msgspec.to_builtins(payload)
        event_id = uuid4()
        self.events.append(
            {
                "id": event_id,
                "tenant_id": self.tenant_id,
                "event_type": event_type,
                "conversation_id": conversation_id,
                "contact_id": contact_id,
                "payload": body,
                "source": self.source,
            }
        )
        return event_id

    async def write(self, conn: asyncpg.Connection) -> list[UUID]:
        if self.events:
            await repository.insert_events(conn, self.events)
        return [e["id"] for e in self.events]


async def rule_set(
    conn: asyncpg.Connection, tenant_id: UUID
) -> tuple[list[AutomationRule], AutomationControl | None, int]:
    """A tenant's rules (all of them), its control state and the version of both, read together
    (for the worker's matcher, inside the caller's transaction)."""
    control, version = await repository.control(conn, tenant_id)
    return await repository.rules_for_matching(conn, tenant_id), control, version


# ------------------------------------------------------------------ the rules API

REDACTED = "(hidden)"
"""What a webhook's secret reads as once saved; sent back unchanged in an update, it keeps the secret."""


def _shown(rule: AutomationRule) -> AutomationRule:
    """A rule as shown to people: a webhook's secret is never shown again."""
    if not any(isinstance(a, SendWebhookAction) and a.secret for a in rule.actions):
        return rule
    actions = [
        msgspec.structs.replace(a, secret=REDACTED) if isinstance(a, SendWebhookAction) and a.secret else a
        for a in rule.actions
    ]
    return msgspec.structs.replace(rule, actions=actions)


def _keep_secrets(actions: list[AnyAction], stored: list[AnyAction]) -> list[AnyAction]:
    """An update's webhook actions that send the hidden secret back keep the stored one (that of
    the webhook action at the same place)."""
    kept = []
    for i, action in enumerate(actions):
        if isinstance(action, SendWebhookAction) and action.secret == REDACTED:
            before = stored[i] if i < len(stored) else None
            if not isinstance(before, SendWebhookAction) or not before.secret:
                raise Unprocessable(
                    f"{REDACTED!r} stands for a saved secret, and this webhook has none; send the secret itself",
                    field=f"actions[{i}].secret",
                )
            action = msgspec.structs.replace(action, secret=before.secret)
        kept.append(action)
    return kept


async def _check_definition(conn: asyncpg.Connection, tenant_id: UUID, rule: AutomationRuleCreate) -> None:
    """The rule can work as written, and the agents and divisions it names are the tenant's."""
    try:
        validate_rule(rule.trigger_type, rule.conditions, list(rule.actions), rule.alert_settings)
    except RuleDefinitionError as exc:
        raise Unprocessable(exc.message, field=exc.field) from None
    for i, action in enumerate(rule.actions):
        where = f"actions[{i}]"
        agent_id = getattr(action, "agent_id", None)
        if agent_id is not None and await agents.get_in(conn, tenant_id, agent_id) is None:
            raise Unprocessable("no such agent in this organisation", field=f"{where}.agent_id")
        division_id = getattr(action, "division_id", None)
        if division_id is not None and not await divisions.exists(conn, tenant_id, division_id):
            raise Unprocessable("no such division in this organisation", field=f"{where}.division_id")


def _columns(rule: AutomationRuleCreate) -> dict[str, Any]:
    return msgspec.to_builtins(rule)  # type: ignore[no-any-return]


async def list_rules(
    db: Database, actor: Actor, is_active: bool | None = None, trigger_type: str | None = None
) -> list[AutomationRule]:
    async with db.read(actor.tenant_id) as conn:
        rules = await repository.list_rules(conn, actor.tenant_id, is_active=is_active, trigger_type=trigger_type)
    return [_shown(rule) for rule in rules]


async def list_snoozed(
    db: Database, actor: Actor, page: int, per_page: int, is_active: bool | None, trigger_type: str | None
) -> list[AutomationRule]:
    async with db.read(actor.tenant_id) as conn:
        rules = await repository.list_snoozed_rules(
            conn, actor.tenant_id, per_page, (page - 1) * per_page, is_active=is_active, trigger_type=trigger_type
        )
    return [_shown(rule) for rule in rules]


async def _stored(conn: Any, tenant_id: UUID, rule_id: UUID) -> AutomationRule:
    rule = await repository.get_rule(conn, tenant_id, rule_id)
    if rule is None:
        raise not_found("automation rule")
    return rule


async def get_rule(db: Database, actor: Actor, rule_id: UUID) -> AutomationRule:
    async with db.read(actor.tenant_id) as conn:
        return _shown(await _stored(conn, actor.tenant_id, rule_id))


async def create_rule(db: Database, actor: Actor, data: AutomationRuleCreate) -> AutomationRule:
    async with db.tenant(actor.tenant_id) as conn:
        await _check_definition(conn, actor.tenant_id, data)
        rule_id = await repository.insert_rule(conn, actor.tenant_id, actor.user_id, **_columns(data))
        await activity.record(conn, actor, "automation_rule.created", "automation_rule", rule_id, name=data.name)
        return _shown(await _stored(conn, actor.tenant_id, rule_id))


async def _change(
    db: Database, actor: Actor, rule_id: UUID, what: str, change: Callable[[AutomationRule], AutomationRule]
) -> AutomationRule:
    """Lock the rule, apply `change`, check the result as a whole and save it."""
    async with db.tenant(actor.tenant_id) as conn:
        stored = await repository.lock_rule(conn, actor.tenant_id, rule_id)
        if stored is None:
            raise not_found("automation rule")
        changed = change(stored)
        definition = msgspec.convert(
            {k: v for k, v in msgspec.to_builtins(changed).items() if k in AutomationRuleCreate.__struct_fields__},
            AutomationRuleCreate,
        )
        await _check_definition(conn, actor.tenant_id, definition)
        await repository.save_rule(
            conn,
            actor.tenant_id,
            actor.user_id,
            id=rule_id,
            snoozed_until=changed.snoozed_until,
            **_columns(definition),
        )
        await activity.record(conn, actor, f"automation_rule.{what}", "automation_rule", rule_id)
        return _shown(await _stored(conn, actor.tenant_id, rule_id))


async def update_rule(db: Database, actor: Actor, rule_id: UUID, data: AutomationRuleUpdate) -> AutomationRule:
    given = {k: getattr(data, k) for k in data.__struct_fields__ if getattr(data, k) is not msgspec.UNSET}

    def change(rule: AutomationRule) -> AutomationRule:
        fields = dict(given)
        if "actions" in fields:
            fields["actions"] = _keep_secrets(list(fields["actions"]), list(rule.actions))
        return msgspec.structs.replace(rule, **fields)

    return await _change(db, actor, rule_id, "updated", change)


async def delete_rule(db: Database, actor: Actor, rule_id: UUID) -> RuleMessage:
    async with db.tenant(actor.tenant_id) as conn:
        if not await repository.delete_rule(conn, actor.tenant_id, rule_id):
            raise not_found("automation rule")
        await activity.record(conn, actor, "automation_rule.deleted", "automation_rule", rule_id)
    return RuleMessage(message="automation rule deleted", id=rule_id)


async def toggle_rule(db: Database, actor: Actor, rule_id: UUID, data: RuleToggle) -> RuleToggled:
    rule = await _change(db, actor, rule_id, "toggled", lambda r: msgspec.structs.replace(r, is_active=data.is_active))
    state = "active" if rule.is_active else "inactive"
    return RuleToggled(message=f"automation rule is {state}", id=rule.id, is_active=rule.is_active)


def _future(text: str, field: str = "snoozed_until") -> datetime:
    at = query_moment(text, field)
    assert at is not None
    if at <= datetime.now(UTC):
        raise Unprocessable("must be in the future", field=field)
    return at


async def snooze_rule(db: Database, actor: Actor, rule_id: UUID, data: RuleSnooze) -> RuleSnoozed:
    until = _future(data.snoozed_until)
    rule = await _change(db, actor, rule_id, "snoozed", lambda r: msgspec.structs.replace(r, snoozed_until=until))
    return RuleSnoozed(message="automation rule snoozed", id=rule.id, snoozed_until=until)


async def unsnooze_rule(db: Database, actor: Actor, rule_id: UUID) -> RuleMessage:
    await _change(db, actor, rule_id, "unsnoozed", lambda r: msgspec.structs.replace(r, snoozed_until=None))
    return RuleMessage(message="automation rule unsnoozed", id=rule_id)


async def snooze_rules(db: Database, actor: Actor, data: RuleSnoozeBulk) -> RulesSnoozed:
    """Snooze the rules that exist among those named (another tenant's ids are simply not found)."""
    until = _future(data.snoozed_until)
    ids = list(dict.fromkeys(data.rule_ids))
    async with db.tenant(actor.tenant_id) as conn:
        count = await repository.snooze_rules(conn, actor.tenant_id, actor.user_id, ids, until)
        await activity.record(
            conn, actor, "automation_rule.snoozed", "automation_rule", None, count=count, until=until.isoformat()
        )
    return RulesSnoozed(message=f"{count} automation rule(s) snoozed", snoozed_count=count)


async def update_alert_settings(db: Database, actor: Actor, rule_id: UUID, data: AlertSettingsUpdate) -> AutomationRule:
    if (data.preset is None) == (data.alert_settings is None):
        raise Unprocessable("give either preset or alert_settings", field="preset")
    settings = ALERT_PRESETS[data.preset] if data.preset else data.alert_settings
    return await _change(
        db, actor, rule_id, "alert_settings_updated", lambda r: msgspec.structs.replace(r, alert_settings=settings)
    )


async def update_schedule(db: Database, actor: Actor, rule_id: UUID, data: ScheduleSettingsUpdate) -> AutomationRule:
    return await _change(
        db,
        actor,
        rule_id,
        "schedule_updated",
        lambda r: msgspec.structs.replace(r, schedule_settings=data.schedule_settings),
    )


async def update_rollout(db: Database, actor: Actor, rule_id: UUID, data: RolloutUpdate) -> AutomationRule:
    return await _change(
        db,
        actor,
        rule_id,
        "rollout_updated",
        lambda r: msgspec.structs.replace(r, rollout_percentage=data.rollout_percentage),
    )


# ------------------------------------------------------------------ state, schedule, control


async def _control(conn: Any, tenant_id: UUID) -> AutomationControl | None:
    control, _ = await repository.control(conn, tenant_id)
    return control


async def effective_state(db: Database, actor: Actor, rule_id: UUID) -> EffectiveState:
    async with db.read(actor.tenant_id) as conn:
        rule = await _stored(conn, actor.tenant_id, rule_id)
        control = await _control(conn, actor.tenant_id)
    return rule_effective_state(rule, datetime.now(UTC), control)


MAX_PREVIEW_HOURS = 24 * 31


async def schedule_preview(
    db: Database, actor: Actor, rule_id: UUID, hours: int, start_at: str | None
) -> SchedulePreview:
    """The windows in which the rule's schedule lets it run, from start_at (now) for `hours`: the
    whole span when it has no schedule."""
    start = query_moment(start_at, "start_at") or datetime.now(UTC)
    end = start + timedelta(hours=hours)
    async with db.read(actor.tenant_id) as conn:
        rule = await _stored(conn, actor.tenant_id, rule_id)
    if not rule.schedule_settings.enabled:
        windows = [(start, end)]
    else:
        windows = schedule_windows(rule.schedule_settings, start, end)
    return SchedulePreview(rule_id=rule.id, windows=[ScheduleWindow(start=a, end=b) for a, b in windows])


def _default_control() -> AutomationControl:
    return AutomationControl(singleton=True, is_paused=False, updated_at=datetime(1970, 1, 1, tzinfo=UTC))


async def get_control(db: Database, actor: Actor) -> AutomationControl:
    async with db.read(actor.tenant_id) as conn:
        control = await _control(conn, actor.tenant_id)
    return control or _default_control()


async def update_control(db: Database, actor: Actor, data: AutomationControlUpdate) -> AutomationControl:
    paused_until = None
    if data.paused_until is not None:
        if not data.is_paused:
            raise Unprocessable("goes with is_paused true", field="paused_until")
        paused_until = _future(data.paused_until, "paused_until")
    async with db.tenant(actor.tenant_id) as conn:
        control = await repository.upsert_control(
            conn,
            actor.tenant_id,
            actor.user_id,
            is_paused=data.is_paused,
            pause_reason=data.pause_reason if data.is_paused else None,
            paused_until=paused_until,
        )
        await activity.record(
            conn, actor, "automation.paused" if data.is_paused else "automation.resumed", "automation_control", None
        )
    return control


# ------------------------------------------------------------------ stats


def _since(window_days: int) -> datetime:
    return datetime.now(UTC) - timedelta(days=window_days)


def _failure_rate(failed: int, matched: int) -> float:
    return round(100.0 * failed / matched, 2) if matched else 0.0


async def stats_overview(db: Database, actor: Actor, window_days: int) -> StatsOverview:
    async with db.tenant(actor.tenant_id) as conn:
        row = await repository.stats_overview(conn, actor.tenant_id, _since(window_days))
    return StatsOverview(**dict(row))


async def timeseries(
    db: Database, actor: Actor, window_days: int, bucket_days: int, rule_id: UUID | None = None
) -> list[RunBucket]:
    async with db.tenant(actor.tenant_id) as conn:
        if rule_id is not None:
            await _stored(conn, actor.tenant_id, rule_id)
        rows = await repository.runs_timeseries(
            conn, actor.tenant_id, datetime.now(UTC).date(), window_days, bucket_days, rule_id
        )
    return [RunBucket(**dict(row)) for row in rows]


def _alert_level(settings: AlertSettings, matched: int, rate: float) -> AlertLevel:
    if not settings.enabled or matched < settings.min_matched_runs:
        return "ok"
    if rate >= settings.high_threshold_pct:
        return "high"
    return "medium" if rate >= settings.medium_threshold_pct else "ok"


async def alerts(
    db: Database, actor: Actor, window_days: int, min_matched_runs: int, failure_rate_threshold_pct: float
) -> list[RuleAlert]:
    """Each rule's failure rate over the window and its alert level by its own alert settings; only
    the rules with at least min_matched_runs matched runs and failure_rate_threshold_pct."""
    async with db.read(actor.tenant_id) as conn:
        rows = await repository.rule_run_counts(conn, actor.tenant_id, _since(window_days))
    found = []
    for row in rows:
        settings = msgspec.convert(row["alert_settings"], AlertSettings)
        rate = _failure_rate(row["failed_runs"], row["matched_runs"])
        if row["matched_runs"] < min_matched_runs or rate < failure_rate_threshold_pct:
            continue
        found.append(
            RuleAlert(
                rule_id=row["rule_id"],
                rule_name=row["rule_name"],
                matched_runs=row["matched_runs"],
                executed_runs=row["executed_runs"],
                failure_rate_pct=rate,
                alert_level=_alert_level(settings, row["matched_runs"], rate),
            )
        )
    return found


async def rule_stats(db: Database, actor: Actor, rule_id: UUID, window_days: int) -> RuleStats:
    async with db.read(actor.tenant_id) as conn:
        rows = await repository.rule_run_counts(conn, actor.tenant_id, _since(window_days), rule_id)
    if not rows:
        raise not_found("automation rule")
    [row] = rows
    return RuleStats(
        rule_id=rule_id,
        total_runs=row["total_runs"],
        matched_runs=row["matched_runs"],
        executed_runs=row["executed_runs"],
        failure_rate_pct=_failure_rate(row["failed_runs"], row["matched_runs"]),
    )


# ------------------------------------------------------------------ the dry run


def _test_event(trigger_type: str, payload: TestEventPayload) -> Event:
    message = payload.message
    return Event(
        event_type=trigger_type,
        conversation_id=payload.conversation_id or UUID(int=0),
        channel=payload.channel,
        status=payload.status,
        assigned_agent_id=payload.assigned_agent_id,
        division_id=payload.division_id,
        tags=normalize_tags(payload.tags),
        priority=payload.priority,
        message_type=message.type if message else None,
        message_text=message.text if message else None,
        previous_status=payload.previous_status,
        contact_tags=normalize_tags(payload.contact_tags),
        source="api",
    )


def _preview(actions: list[AnyAction], payload: TestEventPayload) -> list[dict[str, Any]]:
    values = {
        "contact.name": payload.contact_name,
        "conversation.id": str(payload.conversation_id) if payload.conversation_id else None,
        "conversation.channel": payload.channel,
        "conversation.status": payload.status,
        "conversation.priority": payload.priority,
        "message.text": payload.message.text if payload.message else None,
    }
    shown = []
    for action in actions:
        body = msgspec.to_builtins(action)
        if isinstance(action, SendMessageAction | AddNoteAction):
            body["text"] = render(action.text, values)
        elif isinstance(action, SendTemplateAction):
            body["parameters"] = [render(p, values) for p in action.parameters]
        elif isinstance(action, SendWebhookAction) and action.secret:
            body["secret"] = REDACTED
        shown.append(body)
    return shown


async def test_rule(db: Database, actor: Actor, data: RuleTest) -> RuleTestResult:
    """Evaluate a rule (stored, or as given) against a payload and preview its actions; nothing is
    changed and nothing is sent. Cooldown is not considered (a dry run has no conversation history)."""
    now = datetime.now(UTC)
    async with db.tenant(actor.tenant_id) as conn:
        stored = await repository.get_rule(conn, actor.tenant_id, data.rule_id) if data.rule_id else None
        if data.rule_id and stored is None:  # named in the body, not the path: a 422, not a 404
            raise Unprocessable("no such automation rule", field="rule_id")
        trigger_type = data.trigger_type or (stored.trigger_type if stored else None)
        if trigger_type is None:
            raise Unprocessable("give rule_id or trigger_type", field="trigger_type")
        actions = data.actions if data.actions is not None else (list(stored.actions) if stored else [])
        conditions = (
            data.conditions if data.conditions is not None else (stored.conditions if stored else RuleConditions())
        )
        try:
            validate_rule(trigger_type, conditions, actions)
        except RuleDefinitionError as exc:
            raise Unprocessable(exc.message, field=exc.field) from None
        in_hours = data.event_payload.in_business_hours
        if in_hours is None and (
            conditions.business_hours_only
            or conditions.outside_business_hours_only
            or any(s.business_hours_only or s.outside_business_hours_only for s in conditions.any_of or ())
        ):
            in_hours = await working_hours.is_open(conn, actor.tenant_id, data.event_payload.division_id, now)
        control = await _control(conn, actor.tenant_id)
    event = _test_event(trigger_type, data.event_payload)
    matched = conditions_hold(conditions, event, MatchContext(now=now, in_business_hours=in_hours))
    reasons = stop_reasons(stored, now, control) if stored else []
    if not stored and pause_in_force(control, now):
        until = control.paused_until if control else None
        reasons = [StopReason(code="paused", message="automation is paused", until=until)]
    return RuleTestResult(
        matched=matched,
        would_execute=matched and not reasons and bool(actions),
        actions_preview=_preview(list(actions), data.event_payload),
        reasons=reasons,
    )
