from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from omnistream.automation import service
from omnistream.automation.schemas import (
    AlertSettingsUpdate,
    AutomationControl,
    AutomationControlUpdate,
    AutomationRule,
    AutomationRuleCreate,
    AutomationRuleUpdate,
    EffectiveState,
    RolloutUpdate,
    RuleAlert,
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
    StatsOverview,
    TriggerType,
)
from omnistream.kit.deps import DB, CurrentActor
from omnistream.kit.pagination import QueryDateTime
from omnistream.security.guards import access

MANAGE = access("supervisor", "automation.manage")
WindowDays = Annotated[int, QueryParameter(ge=1, le=365, description="The last this many days")]
BucketDays = Annotated[int, QueryParameter(ge=1, le=30, description="Days per bucket (UTC days)")]
ORDER_NOTE = (
    "Rules run highest `priority` first (ties: the oldest rule first); a matched rule with `stop_on_match` "
    "ends the evaluation of the event. Actions taken by automation raise events that match no rule, so "
    "rules never trigger each other in a loop."
)
RULE_NOTE = " A webhook's `secret` reads as `(hidden)`; sent back unchanged in an update, it keeps the saved secret."


class RuleController(Controller):
    path = "/api/automation-rules"
    tags = ["Automation"]

    @get(operation_id="listAutomationRules", summary="List automation rules", opt=MANAGE, description=ORDER_NOTE)
    async def list_rules(
        self,
        db: DB,
        actor: CurrentActor,
        is_active: FromQuery[bool | None] = None,
        trigger_type: FromQuery[TriggerType | None] = None,
    ) -> list[AutomationRule]:
        return await service.list_rules(db, actor, is_active, trigger_type)

    @post(
        operation_id="createAutomationRule",
        summary="Create an automation rule",
        opt=MANAGE,
        description=ORDER_NOTE + RULE_NOTE,
    )
    async def create_rule(self, db: DB, actor: CurrentActor, data: JSONBody[AutomationRuleCreate]) -> AutomationRule:
        return await service.create_rule(db, actor, data)

    @get("/snoozed", operation_id="listSnoozedAutomationRules", summary="List snoozed automation rules", opt=MANAGE)
    async def list_snoozed(
        self,
        db: DB,
        actor: CurrentActor,
        trigger_type: FromQuery[TriggerType | None] = None,
        is_active: FromQuery[bool | None] = None,
        page: Annotated[int, QueryParameter(ge=1, le=100_000)] = 1,
        per_page: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
    ) -> list[AutomationRule]:
        return await service.list_snoozed(db, actor, page, per_page, is_active, trigger_type)

    @post(
        "/snooze-bulk",
        operation_id="snoozeAutomationRules",
        summary="Snooze multiple automation rules",
        opt=MANAGE,
        status_code=200,
        description="Rules not found among the ids are left out of `snoozed_count`.",
    )
    async def snooze_bulk(self, db: DB, actor: CurrentActor, data: JSONBody[RuleSnoozeBulk]) -> RulesSnoozed:
        return await service.snooze_rules(db, actor, data)

    @get("/stats/overview", operation_id="automationStatsOverview", summary="Automation stats overview", opt=MANAGE)
    async def stats_overview(self, db: DB, actor: CurrentActor, window_days: WindowDays = 7) -> StatsOverview:
        return await service.stats_overview(db, actor, window_days)

    @get(
        "/stats/timeseries",
        operation_id="automationStatsTimeseries",
        summary="Automation stats time series",
        opt=MANAGE,
        description="Runs per bucket of `bucket_days` UTC days over the last `window_days` days, oldest "
        "first, the last bucket starting today or earlier; empty buckets are zeros.",
    )
    async def stats_timeseries(
        self, db: DB, actor: CurrentActor, window_days: WindowDays = 7, bucket_days: BucketDays = 1
    ) -> list[RunBucket]:
        return await service.timeseries(db, actor, window_days, bucket_days)

    @get(
        "/stats/alerts",
        operation_id="automationStatsAlerts",
        summary="Automation alert stats",
        opt=MANAGE,
        description="Each rule's failure rate (failed executions per matched run) over the window, and its "
        "alert level by its own alert settings. Presets: conservative (at least 50 matched runs; medium "
        "from 25%, high from 50%), balanced, the default (20; 10%, 25%), aggressive (5; 5%, 10%). "
        "`min_matched_runs` and `failure_rate_threshold_pct` leave out the rules below them.",
    )
    async def stats_alerts(
        self,
        db: DB,
        actor: CurrentActor,
        window_days: WindowDays = 7,
        min_matched_runs: Annotated[int, QueryParameter(ge=0, le=1_000_000)] = 0,
        failure_rate_threshold_pct: Annotated[float, QueryParameter(ge=0, le=100)] = 0.0,
    ) -> list[RuleAlert]:
        return await service.alerts(db, actor, window_days, min_matched_runs, failure_rate_threshold_pct)

    @post(
        "/test",
        operation_id="testAutomationRule",
        summary="Dry-run an automation rule against a test payload",
        opt=MANAGE,
        status_code=200,
        description="Evaluates the conditions and previews the actions (variables filled in); changes and "
        "sends nothing. `would_execute` also weighs what stops the rule now (`reasons`); cooldown is not "
        "considered.",
    )
    async def test_rule(self, db: DB, actor: CurrentActor, data: JSONBody[RuleTest]) -> RuleTestResult:
        return await service.test_rule(db, actor, data)

    @get("/{rule_id:uuid}", operation_id="getAutomationRule", summary="Get an automation rule by ID", opt=MANAGE)
    async def get_rule(self, db: DB, actor: CurrentActor, rule_id: FromPath[UUID]) -> AutomationRule:
        return await service.get_rule(db, actor, rule_id)

    @delete(
        "/{rule_id:uuid}",
        operation_id="deleteAutomationRule",
        summary="Delete an automation rule",
        opt=MANAGE,
        status_code=200,
        description="Its runs stay, with the rule's name.",
    )
    async def delete_rule(self, db: DB, actor: CurrentActor, rule_id: FromPath[UUID]) -> RuleMessage:
        return await service.delete_rule(db, actor, rule_id)

    @patch(
        "/{rule_id:uuid}",
        operation_id="updateAutomationRule",
        summary="Update an automation rule",
        opt=MANAGE,
        description="The fields given replace the stored ones; the rule is checked as a whole." + RULE_NOTE,
    )
    async def update_rule(
        self, db: DB, actor: CurrentActor, rule_id: FromPath[UUID], data: JSONBody[AutomationRuleUpdate]
    ) -> AutomationRule:
        return await service.update_rule(db, actor, rule_id, data)

    @post(
        "/{rule_id:uuid}/toggle",
        operation_id="toggleAutomationRule",
        summary="Toggle automation rule active state",
        opt=MANAGE,
        status_code=200,
    )
    async def toggle(
        self, db: DB, actor: CurrentActor, rule_id: FromPath[UUID], data: JSONBody[RuleToggle]
    ) -> RuleToggled:
        return await service.toggle_rule(db, actor, rule_id, data)

    @post(
        "/{rule_id:uuid}/snooze",
        operation_id="snoozeAutomationRule",
        summary="Snooze an automation rule until a given time",
        opt=MANAGE,
        status_code=200,
        description="The rule runs again by itself at `snoozed_until` (a future time with a zone).",
    )
    async def snooze(
        self, db: DB, actor: CurrentActor, rule_id: FromPath[UUID], data: JSONBody[RuleSnooze]
    ) -> RuleSnoozed:
        return await service.snooze_rule(db, actor, rule_id, data)

    @post(
        "/{rule_id:uuid}/unsnooze",
        operation_id="unsnoozeAutomationRule",
        summary="Unsnooze an automation rule",
        opt=MANAGE,
        status_code=200,
    )
    async def unsnooze(self, db: DB, actor: CurrentActor, rule_id: FromPath[UUID]) -> RuleMessage:
        return await service.unsnooze_rule(db, actor, rule_id)

    @get(
        "/{rule_id:uuid}/stats",
        operation_id="getAutomationRuleStats",
        summary="Get stats for a specific automation rule",
        opt=MANAGE,
    )
    async def rule_stats(
        self, db: DB, actor: CurrentActor, rule_id: FromPath[UUID], window_days: WindowDays = 7
    ) -> RuleStats:
        return await service.rule_stats(db, actor, rule_id, window_days)

    @get(
        "/{rule_id:uuid}/stats/timeseries",
        operation_id="getAutomationRuleTimeseries",
        summary="Get time series stats for a specific automation rule",
        opt=MANAGE,
    )
    async def rule_timeseries(
        self,
        db: DB,
        actor: CurrentActor,
        rule_id: FromPath[UUID],
        window_days: WindowDays = 7,
        bucket_days: BucketDays = 1,
    ) -> list[RunBucket]:
        return await service.timeseries(db, actor, window_days, bucket_days, rule_id)

    @get(
        "/{rule_id:uuid}/effective-state",
        operation_id="getAutomationRuleEffectiveState",
        summary="Get the effective state of an automation rule",
        opt=MANAGE,
        description="Whether the rule runs now, and every reason it does not (inactive, snoozed, the "
        "global pause, outside its schedule), each with when it ends.",
    )
    async def effective_state(self, db: DB, actor: CurrentActor, rule_id: FromPath[UUID]) -> EffectiveState:
        return await service.effective_state(db, actor, rule_id)

    @patch(
        "/{rule_id:uuid}/alert-settings",
        operation_id="updateAutomationRuleAlertSettings",
        summary="Update alert settings for an automation rule",
        opt=MANAGE,
        description="A preset (conservative, balanced, aggressive: see the alerts stats) or explicit settings.",
    )
    async def alert_settings(
        self, db: DB, actor: CurrentActor, rule_id: FromPath[UUID], data: JSONBody[AlertSettingsUpdate]
    ) -> AutomationRule:
        return await service.update_alert_settings(db, actor, rule_id, data)

    @patch(
        "/{rule_id:uuid}/schedule-settings",
        operation_id="updateAutomationRuleSchedule",
        summary="Update schedule settings for an automation rule",
        opt=MANAGE,
    )
    async def schedule_settings(
        self, db: DB, actor: CurrentActor, rule_id: FromPath[UUID], data: JSONBody[ScheduleSettingsUpdate]
    ) -> AutomationRule:
        return await service.update_schedule(db, actor, rule_id, data)

    @patch(
        "/{rule_id:uuid}/rollout",
        operation_id="updateAutomationRuleRollout",
        summary="Update rollout percentage for an automation rule",
        opt=MANAGE,
        description="The rule runs for this share of conversations, the same ones every time "
        "(by a hash of the rule and the conversation).",
    )
    async def rollout(
        self, db: DB, actor: CurrentActor, rule_id: FromPath[UUID], data: JSONBody[RolloutUpdate]
    ) -> AutomationRule:
        return await service.update_rollout(db, actor, rule_id, data)

    @get(
        "/{rule_id:uuid}/schedule-preview",
        operation_id="previewAutomationRuleSchedule",
        summary="Preview upcoming schedule windows for an automation rule",
        opt=MANAGE,
        description="The windows in which the schedule lets the rule run, from `start_at` (now) for `hours` "
        "hours; a rule without a schedule has one window, the whole span.",
    )
    async def schedule_preview(
        self,
        db: DB,
        actor: CurrentActor,
        rule_id: FromPath[UUID],
        hours: Annotated[int, QueryParameter(ge=1, le=service.MAX_PREVIEW_HOURS)] = 48,
        start_at: QueryDateTime = None,
    ) -> SchedulePreview:
        return await service.schedule_preview(db, actor, rule_id, hours, start_at)


class ControlController(Controller):
    path = "/api/automation-control"
    tags = ["Automation"]

    @get(operation_id="getAutomationControl", summary="Get global automation control state", opt=MANAGE)
    async def get_control(self, db: DB, actor: CurrentActor) -> AutomationControl:
        return await service.get_control(db, actor)

    @patch(
        operation_id="updateAutomationControl",
        summary="Update global automation control state",
        opt=MANAGE,
        description="Pauses or resumes every rule of the organisation; a pause with `paused_until` ends by "
        "itself then. Events that arrive while paused are processed and match no rule.",
    )
    async def update_control(
        self, db: DB, actor: CurrentActor, data: JSONBody[AutomationControlUpdate]
    ) -> AutomationControl:
        return await service.update_control(db, actor, data)


CONTROLLERS = [RuleController, ControlController]
