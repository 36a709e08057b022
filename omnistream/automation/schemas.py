"""Automation rules: their conditions, schedule, alert settings and actions, as the API and the
engine see them.

Every limit a field has is in its type (`msgspec.Meta`), so the OpenAPI document says what the
decoder accepts. What one field cannot say about another (an assign_agent action names an
agent or a strategy, not both; a medium alert threshold is not above the high one; a regular
expression compiles) is checked by `validate_rule`, which the service calls before saving and
which raises `RuleDefinitionError` (a ValueError naming the field): a 422, where a decoding
error is a 400.

Conditions (`RuleConditions`): every condition given must hold; one not given (a list null or
empty, `assigned_is_null` null, a business-hours flag false) constrains nothing, so `{}`
matches every event of the rule's trigger. `any_of` is a list of condition sets of which at
least one must hold, alongside the other conditions; its sets cannot nest another `any_of` (a
set is a plain AND; what nesting would say can be written by distributing it over the sets).
An empty set in `any_of` always holds. The message conditions (`message_contains_any`,
`message_matches`) belong to message_received_inbound rules and `previous_status_in` to
status_changed rules: `validate_rule` refuses them elsewhere. Keywords and regular expressions
are matched as `predicates` describes; tags ignore case and surrounding spaces, as stored tags do.

Weekdays count from 0 = Monday to 6 = Sunday, as in working hours.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

from omnistream.automation import predicates
from omnistream.automation.variables import VARIABLES, unknown_variables
from omnistream.contacts.schemas import Channel, Tag
from omnistream.conversations.schemas import Priority, SettableStatus, Status
from omnistream.kit.pagination import BodyDateTime
from omnistream.kit.schema import NO_NUL, NOT_BLANK, WHITESPACE, Input, Name, Schema, Text, pattern
from omnistream.messages.schemas import TEMPLATE_NAME_PATTERN

TriggerType = Literal["conversation_created", "message_received_inbound", "status_changed", "sla_breached"]
TRIGGER_TYPES: tuple[str, ...] = TriggerType.__args__  # type: ignore[attr-defined]

MAX_ACTIONS = 20
MAX_ANY_OF = 20
MAX_KEYWORDS = 100
MAX_PRIORITY = 1_000_000
MAX_COOLDOWN_SECS = 366 * 24 * 3600

Keyword = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=100,
        pattern=NOT_BLANK,
        description="A word or phrase; matched whole-word, ignoring case and accents",
    ),
]
Pattern = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=predicates.MAX_PATTERN_LENGTH,
        pattern=NO_NUL,
        description="An RE2 regular expression searched in the message text (case-sensitive unless (?i))",
    ),
]
Weekday = Annotated[int, msgspec.Meta(ge=0, le=6, description="0 = Monday ... 6 = Sunday")]
ConditionTags = Annotated[list[Tag], msgspec.Meta(max_length=50)]


# ------------------------------------------------------------------ conditions


class ConditionSet(Input, omit_defaults=True):
    """Conditions that must all hold; one left out holds always, as does a null or empty list."""

    channel_in: (
        Annotated[list[Channel], msgspec.Meta(max_length=10, description="The conversation's channel")] | None
    ) = None
    status_in: (
        Annotated[list[Status], msgspec.Meta(max_length=10, description="The conversation's status after the event")]
        | None
    ) = None
    assigned_is_null: bool | None = None
    """True: only unassigned conversations; false: only assigned ones; null: either."""
    has_any_tags: (
        Annotated[ConditionTags, msgspec.Meta(description="The conversation carries at least one of these tags")] | None
    ) = None
    division_id_in: (
        Annotated[
            list[UUID], msgspec.Meta(max_length=100, description="The conversation belongs to one of these divisions")
        ]
        | None
    ) = None
    business_hours_only: bool = False
    """Only inside business hours: the working hours of the conversation's division, else the tenant's."""
    outside_business_hours_only: bool = False
    """Only outside business hours (an out-of-office reply); cannot be combined with business_hours_only."""
    message_contains_any: (
        Annotated[
            list[Keyword],
            msgspec.Meta(
                max_length=MAX_KEYWORDS,
                description=(
                    "The message contains one of these words or phrases: whole words, ignoring case, accents and "
                    "punctuation (message_received_inbound only)"
                ),
            ),
        ]
        | None
    ) = None
    message_matches: Pattern | None = None
    """The message text matches this RE2 regular expression (message_received_inbound only)."""
    contact_has_any_tags: (
        Annotated[ConditionTags, msgspec.Meta(description="The contact carries at least one of these tags")] | None
    ) = None
    priority_in: (
        Annotated[list[Priority], msgspec.Meta(max_length=10, description="The conversation's priority")] | None
    ) = None
    previous_status_in: (
        Annotated[
            list[Status],
            msgspec.Meta(max_length=10, description="The status before the change (status_changed only)"),
        ]
        | None
    ) = None


class RuleConditions(ConditionSet, omit_defaults=True):
    """Conditions for rule matching (empty = always match); `any_of`: at least one of its sets holds."""

    any_of: (
        Annotated[
            list[ConditionSet],
            msgspec.Meta(
                max_length=MAX_ANY_OF,
                description="At least one of these condition sets holds (sets do not nest another any_of)",
            ),
        ]
        | None
    ) = None


# ------------------------------------------------------------------ schedule and alerts


class ScheduleSettings(Input):
    """When the rule may run: windows on a clock at UTC + timezone_offset_minutes.

    A window opens at start_hour_utc on each active weekday and lasts until the next
    end_hour_utc: when the end hour is not after the start hour the window crosses midnight
    and belongs to the weekday it starts on (Friday 22-06 is Friday 22:00 to Saturday 06:00);
    equal hours mean the whole day. With invert the rule runs outside the windows instead.
    A rule created without schedule settings has them disabled.
    """

    enabled: bool = True
    active_weekdays: Annotated[
        list[Weekday], msgspec.Meta(min_length=1, max_length=7, description="0 = Monday ... 6 = Sunday")
    ] = msgspec.field(default_factory=lambda: [0, 1, 2, 3, 4, 5, 6])
    start_hour_utc: Annotated[int, msgspec.Meta(ge=0, le=23, description="The hour a window opens")] = 0
    end_hour_utc: Annotated[
        int, msgspec.Meta(ge=0, le=24, description="The hour a window closes; not after the start: the next day")
    ] = 0
    timezone_offset_minutes: Annotated[
        int, msgspec.Meta(ge=-720, le=840, description="The clock's offset from UTC, minutes (UTC-12:00 to +14:00)")
    ] = 0
    invert: bool = False


def no_schedule() -> ScheduleSettings:
    return ScheduleSettings(enabled=False)


Percent = Annotated[float, msgspec.Meta(ge=0, le=100)]


class AlertSettings(Input):
    """When a rule's failure rate raises an alert: over the runs of the window, once it has
    matched at least min_matched_runs times, a failure rate (failed executions / matched runs)
    at or above medium_threshold_pct is medium, at or above high_threshold_pct high."""

    enabled: bool = True
    min_matched_runs: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 20
    medium_threshold_pct: Percent = 10.0
    high_threshold_pct: Percent = 25.0


AlertPreset = Literal["conservative", "balanced", "aggressive"]
ALERT_PRESETS: dict[str, AlertSettings] = {
    # Alerts late, for rules that fail now and then by nature (webhooks to flaky systems).
    "conservative": AlertSettings(min_matched_runs=50, medium_threshold_pct=25.0, high_threshold_pct=50.0),
    # The default.
    "balanced": AlertSettings(min_matched_runs=20, medium_threshold_pct=10.0, high_threshold_pct=25.0),
    # Alerts early, for rules that should never fail.
    "aggressive": AlertSettings(min_matched_runs=5, medium_threshold_pct=5.0, high_threshold_pct=10.0),
}


# ------------------------------------------------------------------ actions

ActionText = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=4096,
        pattern=NOT_BLANK,
        description="Text; {{contact.name}}-style variables are replaced: " + ", ".join(VARIABLES),
    ),
]
TEMPLATE_LANGUAGE = pattern(r"^[a-z]{2,3}(?:_[A-Z]{2})?$", "must be a language code, such as en, en_US or pt_BR")
WEBHOOK_URL = pattern(
    rf"^https?://[^{WHITESPACE}\x00/?#]+[^{WHITESPACE}\x00]*$", "must be an http or https URL with a host"
)
ActionTags = Annotated[list[Tag], msgspec.Meta(min_length=1, max_length=50)]
HEADER_NAME = pattern(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", "must be an HTTP header name (letters, digits, - and the like)")
HEADER_VALUE = pattern(r"^[^\x00-\x1f\x7f]*$", "must not contain control characters")
HeaderName = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=HEADER_NAME)]
HeaderValue = Annotated[str, msgspec.Meta(max_length=1000, pattern=HEADER_VALUE)]
RESERVED_WEBHOOK_HEADERS = frozenset(
    {"host", "content-length", "content-type", "transfer-encoding", "connection", "x-omnistream-signature"}
)


class Action(Input, tag_field="type"):
    """What a rule does when it matches; one of the tagged variants below, chosen by `type`."""


class AssignAgentAction(Action, tag="assign_agent"):
    """Assign an agent: the one named, or one chosen by `strategy` among the online agents of
    `division_id` (the conversation's division when not given). Give agent_id or strategy."""

    agent_id: UUID | None = None
    strategy: Literal["round_robin", "least_busy"] | None = None
    division_id: UUID | None = None


class AssignDivisionAction(Action, tag="assign_division"):
    division_id: UUID


class UnassignAction(Action, tag="unassign"):
    """Remove the assigned agent."""


class AddTagsAction(Action, tag="add_tags"):
    tags: ActionTags


class RemoveTagsAction(Action, tag="remove_tags"):
    tags: ActionTags


class SetStatusAction(Action, tag="set_status"):
    status: SettableStatus


class SetPriorityAction(Action, tag="set_priority"):
    priority: Priority


class SendMessageAction(Action, tag="send_message"):
    """Reply in the conversation, as a message sent by automation."""

    text: ActionText


class SendTemplateAction(Action, tag="send_template"):
    """Send an approved WhatsApp template; parameters fill its body's {{1}}, {{2}}, ... in order."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=512, pattern=TEMPLATE_NAME_PATTERN)]
    language: Annotated[
        str, msgspec.Meta(pattern=TEMPLATE_LANGUAGE, description="e.g. en, en_US, pt_BR", examples=["en"])
    ]
    parameters: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=1024, pattern=NO_NUL)]], msgspec.Meta(max_length=20)
    ] = []


class AddNoteAction(Action, tag="add_note"):
    """Add an internal note to the conversation."""

    text: ActionText


class SendWebhookAction(Action, tag="send_webhook"):
    """POST the event as JSON to `url`, signed with `secret` (HMAC-SHA256 of the body) when given."""

    url: Annotated[str, msgspec.Meta(min_length=8, max_length=2048, pattern=WEBHOOK_URL)]
    secret: Annotated[str, msgspec.Meta(min_length=1, max_length=256, pattern=NO_NUL)] | None = None
    headers: Annotated[dict[HeaderName, HeaderValue], msgspec.Meta(max_length=20)] = {}


AnyAction = (
    AssignAgentAction
    | AssignDivisionAction
    | UnassignAction
    | AddTagsAction
    | RemoveTagsAction
    | SetStatusAction
    | SetPriorityAction
    | SendMessageAction
    | SendTemplateAction
    | AddNoteAction
    | SendWebhookAction
)
Actions = Annotated[
    list[AnyAction],
    msgspec.Meta(min_length=1, max_length=MAX_ACTIONS, description="Tagged-union array of automation actions"),
]
ACTION_TYPES: tuple[str, ...] = tuple(cls.__struct_config__.tag for cls in AnyAction.__args__)  # type: ignore[union-attr]


# ------------------------------------------------------------------ rules

RulePriority = Annotated[
    int, msgspec.Meta(ge=-MAX_PRIORITY, le=MAX_PRIORITY, description="Higher runs first; ties: older rule first")
]
Rollout = Annotated[
    int,
    msgspec.Meta(ge=1, le=100, description="The share of conversations the rule applies to, fixed per conversation"),
]
Cooldown = Annotated[
    int,
    msgspec.Meta(ge=0, le=MAX_COOLDOWN_SECS, description="Seconds before the rule may run again for one conversation"),
]
PauseReason = Annotated[str, msgspec.Meta(max_length=500, pattern=NO_NUL)]


class AutomationRule(Schema):
    id: UUID
    name: str
    description: str
    is_active: bool
    trigger_type: TriggerType
    conditions: RuleConditions
    actions: Actions
    alert_settings: AlertSettings
    schedule_settings: ScheduleSettings
    priority: int
    rollout_percentage: Rollout
    stop_on_match: bool
    """After this rule matches, no further rule runs for the event."""
    cooldown_secs: int
    created_at: datetime
    updated_at: datetime
    snoozed_until: datetime | None = None
    created_by: UUID | None = None
    updated_by: UUID | None = None


class AutomationRuleCreate(Input):
    name: Name
    trigger_type: TriggerType
    actions: Actions
    description: Text = ""
    is_active: bool = True
    conditions: RuleConditions = msgspec.field(default_factory=RuleConditions)
    alert_settings: AlertSettings = msgspec.field(default_factory=AlertSettings)
    schedule_settings: ScheduleSettings = msgspec.field(default_factory=no_schedule)
    priority: RulePriority = 0
    rollout_percentage: Rollout = 100
    stop_on_match: bool = False
    cooldown_secs: Cooldown = 0


class AutomationRuleUpdate(Input):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    description: Text | msgspec.UnsetType = msgspec.UNSET
    is_active: bool | msgspec.UnsetType = msgspec.UNSET
    trigger_type: TriggerType | msgspec.UnsetType = msgspec.UNSET
    conditions: RuleConditions | msgspec.UnsetType = msgspec.UNSET
    actions: Actions | msgspec.UnsetType = msgspec.UNSET
    alert_settings: AlertSettings | msgspec.UnsetType = msgspec.UNSET
    schedule_settings: ScheduleSettings | msgspec.UnsetType = msgspec.UNSET
    priority: RulePriority | msgspec.UnsetType = msgspec.UNSET
    rollout_percentage: Rollout | msgspec.UnsetType = msgspec.UNSET
    stop_on_match: bool | msgspec.UnsetType = msgspec.UNSET
    cooldown_secs: Cooldown | msgspec.UnsetType = msgspec.UNSET


class RuleToggle(Input):
    is_active: bool


class RuleSnooze(Input):
    snoozed_until: BodyDateTime


class RuleSnoozeBulk(Input):
    rule_ids: Annotated[list[UUID], msgspec.Meta(min_length=1, max_length=500)]
    snoozed_until: BodyDateTime


class AlertSettingsUpdate(Input):
    """A preset, or explicit settings (not both)."""

    preset: AlertPreset | None = None
    alert_settings: AlertSettings | None = None


class ScheduleSettingsUpdate(Input):
    schedule_settings: ScheduleSettings


class RolloutUpdate(Input):
    rollout_percentage: Rollout


class TestMessage(Input):
    text: Annotated[str, msgspec.Meta(max_length=4096)] | None = None
    type: Annotated[str, msgspec.Meta(max_length=20, pattern=NO_NUL)] = "text"


class TestEventPayload(Input):
    """An event as the outbox writes it (a conversation snapshot, the inbound message, the
    previous status), plus what a dry run cannot read: the contact's name and tags, and whether
    it is business hours (null: as the working hours say now)."""

    conversation_id: UUID | None = None
    channel: Channel | None = None
    status: Status | None = None
    assigned_agent_id: UUID | None = None
    division_id: UUID | None = None
    tags: ConditionTags = []
    priority: Priority | None = None
    message: TestMessage | None = None
    previous_status: Status | None = None
    contact_name: Annotated[str, msgspec.Meta(max_length=255)] | None = None
    contact_tags: ConditionTags = []
    in_business_hours: bool | None = None


class RuleTest(Input):
    """A dry run: a stored rule (rule_id) or the conditions and actions given, against a payload.
    Given with rule_id, trigger_type, conditions and actions replace the stored rule's."""

    event_payload: TestEventPayload
    rule_id: UUID | None = None
    trigger_type: TriggerType | None = None
    conditions: RuleConditions | None = None
    actions: Annotated[list[AnyAction], msgspec.Meta(max_length=MAX_ACTIONS)] | None = None


class RuleTestResult(Schema):
    matched: bool
    """The conditions hold for the payload."""
    would_execute: bool
    """Matched, and nothing stops the rule now (see `reasons`)."""
    actions_preview: list[dict[str, Any]]
    """The actions as they would run: texts with their variables filled in, secrets hidden."""
    reasons: list[StopReason] = []


class RuleMessage(Schema):
    message: str
    id: UUID


class RuleToggled(Schema):
    message: str
    id: UUID
    is_active: bool


class RuleSnoozed(Schema):
    message: str
    id: UUID
    snoozed_until: datetime


class RulesSnoozed(Schema):
    message: str
    snoozed_count: int


class StatsOverview(Schema):
    total_rules: int
    active_rules: int
    snoozed_rules: int
    total_events: int
    total_runs: int
    matched_runs: int
    executed_runs: int
    failed_events: int


class RunBucket(Schema):
    bucket: date
    """The first day (UTC) of the bucket."""
    total_runs: int
    matched_runs: int
    executed_runs: int


AlertLevel = Literal["ok", "medium", "high"]


class RuleAlert(Schema):
    rule_id: UUID
    rule_name: str
    matched_runs: int
    executed_runs: int
    failure_rate_pct: float
    """Failed executions per matched run, in percent."""
    alert_level: AlertLevel


class RuleStats(Schema):
    rule_id: UUID
    total_runs: int
    matched_runs: int
    executed_runs: int
    failure_rate_pct: float


# ------------------------------------------------------------------ control and state


class AutomationControl(Schema):
    """The tenant's global switch: while paused (until paused_until, for ever if null) no rule runs."""

    singleton: bool
    is_paused: bool
    updated_at: datetime
    pause_reason: str | None = None
    paused_until: datetime | None = None
    updated_by: UUID | None = None


class AutomationControlUpdate(Input):
    is_paused: bool
    pause_reason: PauseReason | None = None
    paused_until: BodyDateTime | None = None
    """When the pause ends by itself; null: until resumed."""


StopCode = Literal["inactive", "snoozed", "paused", "outside_schedule", "rollout_zero"]


class StopReason(Schema):
    """Why a rule does not run now, and until when (null: until someone changes it)."""

    code: StopCode
    message: str
    until: datetime | None = None


class EffectiveState(Schema):
    rule_id: UUID
    is_active: bool
    is_snoozed: bool
    global_paused: bool
    schedule_active: bool
    effective_active: bool
    snoozed_until: datetime | None = None
    reasons: list[StopReason] = []
    """Everything that stops the rule now; empty when it runs."""


class ScheduleWindow(Schema):
    start: datetime
    end: datetime


class SchedulePreview(Schema):
    rule_id: UUID
    windows: list[ScheduleWindow]


# ------------------------------------------------------------------ checks beyond the types


class RuleDefinitionError(ValueError):
    """A rule that decodes but cannot work as written; `field` is the path of the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


MESSAGE_TRIGGERS = frozenset({"message_received_inbound"})
STATUS_TRIGGERS = frozenset({"status_changed"})


def _check_condition_set(conditions: ConditionSet, trigger_type: str, where: str) -> None:
    if conditions.business_hours_only and conditions.outside_business_hours_only:
        raise RuleDefinitionError(f"{where}.outside_business_hours_only", "cannot be combined with business_hours_only")
    for i, keyword in enumerate(conditions.message_contains_any or ()):
        if not predicates.keyword_phrase(keyword):
            raise RuleDefinitionError(f"{where}.message_contains_any[{i}]", "a keyword needs a letter or a digit")
    if conditions.message_matches is not None:
        try:
            predicates.validate_pattern(conditions.message_matches)
        except ValueError as exc:
            raise RuleDefinitionError(f"{where}.message_matches", str(exc)) from None
    if trigger_type not in MESSAGE_TRIGGERS:
        for name in ("message_contains_any", "message_matches"):
            if getattr(conditions, name):
                raise RuleDefinitionError(f"{where}.{name}", "applies to message_received_inbound rules only")
    if trigger_type not in STATUS_TRIGGERS and conditions.previous_status_in:
        raise RuleDefinitionError(f"{where}.previous_status_in", "applies to status_changed rules only")


def _check_text(text: str, where: str) -> None:
    unknown = unknown_variables(text)
    if unknown:
        raise RuleDefinitionError(
            where, f"unknown variable {{{{{unknown[0]}}}}}; known: " + ", ".join(f"{{{{{v}}}}}" for v in VARIABLES)
        )


def _check_action(action: Action, where: str) -> None:
    if isinstance(action, AssignAgentAction):
        if (action.agent_id is None) == (action.strategy is None):
            raise RuleDefinitionError(f"{where}.agent_id", "give either agent_id or strategy")
        if action.agent_id is not None and action.division_id is not None:
            raise RuleDefinitionError(f"{where}.division_id", "goes with a strategy, not with agent_id")
    elif isinstance(action, SendMessageAction | AddNoteAction):
        _check_text(action.text, f"{where}.text")
    elif isinstance(action, SendTemplateAction):
        for i, parameter in enumerate(action.parameters):
            _check_text(parameter, f"{where}.parameters[{i}]")
    elif isinstance(action, SendWebhookAction):
        for name in action.headers:
            if name.lower() in RESERVED_WEBHOOK_HEADERS:
                raise RuleDefinitionError(f"{where}.headers.{name}", "is set by the webhook sender")


def check_alert_settings(settings: AlertSettings, where: str = "alert_settings") -> None:
    if settings.medium_threshold_pct > settings.high_threshold_pct:
        raise RuleDefinitionError(f"{where}.medium_threshold_pct", "must not be above high_threshold_pct")


def validate_rule(
    trigger_type: str,
    conditions: RuleConditions,
    actions: list[AnyAction] | None = None,
    alert_settings: AlertSettings | None = None,
) -> None:
    """Raise RuleDefinitionError unless the rule can work as written (see the module docstring).

    The service calls it on create and on every update, with the rule as it would be saved.
    """
    _check_condition_set(conditions, trigger_type, "conditions")
    for i, condition_set in enumerate(conditions.any_of or ()):
        _check_condition_set(condition_set, trigger_type, f"conditions.any_of[{i}]")
    for i, action in enumerate(actions or ()):
        _check_action(action, f"actions[{i}]")
    if alert_settings is not None:
        check_alert_settings(alert_settings)
