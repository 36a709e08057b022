"""The reference interpreter: the rules' semantics spelled out plainly, one rule at a time.

It is what the compiled matcher (`engine`) must agree with, match for match and in the same
order, and the baseline the rule-matching benchmark measures the matcher against. It has no
index and precomputes nothing but the order of the rules: every rule is asked in turn, its
conditions as written. The leaf predicates (tokens and keywords, schedule windows, rollout
buckets, snooze, pause, cooldown) are the shared ones of `predicates`; the semantics are those
of the `engine` module docstring.
"""

from __future__ import annotations

from collections.abc import Iterable

from omnistream.automation.predicates import (
    BusinessHours,
    Event,
    Match,
    MatchContext,
    contact_tags_of,
    contains_any_keyword,
    in_cooldown,
    in_rollout,
    is_snoozed,
    normalize_tag,
    pattern_matches,
    pause_in_force,
    priority_key,
    schedule_active,
    tokens,
)
from omnistream.automation.schemas import AutomationControl, AutomationRule, ConditionSet, RuleConditions


class _Text:
    """The message's tokens, cut once per event when a condition first asks."""

    __slots__ = ("_text", "_tokens")

    def __init__(self, text: str | None) -> None:
        self._text = text
        self._tokens: list[str] | None = None

    def tokens(self) -> list[str]:
        if self._tokens is None:
            self._tokens = tokens(self._text) if self._text else []
        return self._tokens


def _holds(conditions: ConditionSet, event: Event, text: _Text, business_hours: BusinessHours) -> bool:
    """Whether every condition given in the set holds for the event."""
    c = conditions
    if c.channel_in and event.channel not in c.channel_in:
        return False
    if c.status_in and event.status not in c.status_in:
        return False
    if c.assigned_is_null is not None and (event.assigned_agent_id is None) != c.assigned_is_null:
        return False
    if c.has_any_tags and not any(normalize_tag(tag) in event.tags for tag in c.has_any_tags):
        return False
    if c.division_id_in and event.division_id not in c.division_id_in:
        return False
    if c.priority_in and event.priority not in c.priority_in:
        return False
    if c.previous_status_in and event.previous_status not in c.previous_status_in:
        return False
    if c.contact_has_any_tags:
        contact_tags = contact_tags_of(event)
        if not any(normalize_tag(tag) in contact_tags for tag in c.contact_has_any_tags):
            return False
    if c.message_contains_any and not contains_any_keyword(text.tokens(), c.message_contains_any):
        return False
    if c.message_matches is not None and not pattern_matches(c.message_matches, event.message_text):
        return False
    if c.business_hours_only and not business_hours():
        return False
    if c.outside_business_hours_only and business_hours():
        return False
    if isinstance(c, RuleConditions) and c.any_of:
        return any(_holds(s, event, text, business_hours) for s in c.any_of)
    return True


class ReferenceInterpreter:
    """A tenant's rules, in execution order, interpreted one at a time for each event."""

    def __init__(self, rules: Iterable[AutomationRule], control: AutomationControl | None = None) -> None:
        self.rules = sorted(rules, key=priority_key)
        self.control = control

    def match(self, event: Event, context: MatchContext) -> list[Match]:
        now = context.now
        if event.caused_by_automation or pause_in_force(self.control, now):
            return []
        last_runs = context.last_runs or {}
        text = _Text(event.message_text)
        business_hours = BusinessHours(context.in_business_hours, event.division_id)
        matches: list[Match] = []
        for rule in self.rules:
            if not rule.is_active or rule.trigger_type != event.event_type:
                continue
            if is_snoozed(rule, now) or not schedule_active(rule.schedule_settings, now):
                continue
            if not in_rollout(rule.rollout_percentage, rule.id, event.conversation_id):
                continue
            if not _holds(rule.conditions, event, text, business_hours):
                continue
            if in_cooldown(rule.cooldown_secs, last_runs.get(rule.id), now):
                continue
            matches.append(Match(rule))
            if rule.stop_on_match:
                break
        return matches


def conditions_hold(conditions: RuleConditions, event: Event, context: MatchContext) -> bool:
    """Whether the conditions alone hold for the event, whatever the gates (activity, snooze,
    pause, schedule, rollout, cooldown) say: what a dry run of a rule reports as matched."""
    text = _Text(event.message_text)
    return _holds(conditions, event, text, BusinessHours(context.in_business_hours, event.division_id))


def interpret(
    rules: Iterable[AutomationRule], event: Event, context: MatchContext, control: AutomationControl | None = None
) -> list[Match]:
    """The rules that run for the event, in execution order."""
    return ReferenceInterpreter(rules, control).match(event, context)
