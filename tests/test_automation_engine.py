"""The automation rule engine, without a database: every condition and gate of a rule, the
schedule windows, rollout buckets, keyword tokens, regular expressions, the rule schemas and
their checks; and the compiled matcher against the reference interpreter on random rule sets.

Every example runs through both the compiled matcher and the interpreter (`run`), which must
agree; the random test at the end looks for an example where they do not."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import msgspec
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from omnistream.automation import predicates
from omnistream.automation.engine import compile_rules, effective_state, rule_effective_state
from omnistream.automation.interpreter import ReferenceInterpreter, conditions_hold, interpret
from omnistream.automation.predicates import (
    Event,
    MatchContext,
    contains_phrase,
    event_from_payload,
    in_rollout,
    keyword_phrase,
    pattern_matches,
    rollout_bucket,
    schedule_active,
    schedule_windows,
    tokens,
    validate_pattern,
)
from omnistream.automation.schemas import (
    ALERT_PRESETS,
    AlertSettings,
    AnyAction,
    AutomationControl,
    AutomationRule,
    AutomationRuleCreate,
    ConditionSet,
    RuleConditions,
    RuleDefinitionError,
    ScheduleSettings,
    UnassignAction,
    no_schedule,
    validate_rule,
)
from omnistream.automation.variables import render, variables_in

NOW = datetime(2024, 8, 26, 10, 30, tzinfo=UTC)  # a Monday
CONVERSATION = UUID("6f0d4f36-2b1e-4a53-9d55-0c5c6a1f2e11")
DIVISION_A = UUID("00000000-0000-4000-8000-00000000000a")
DIVISION_B = UUID("00000000-0000-4000-8000-00000000000b")


def rule(name: str = "rule", **fields: Any) -> AutomationRule:
    conditions = fields.pop("conditions", None)
    if conditions is None:
        conditions = RuleConditions(**fields.pop("when", {}))
    values: dict[str, Any] = {
        "id": uuid4(),
        "name": name,
        "description": "",
        "is_active": True,
        "trigger_type": "message_received_inbound",
        "conditions": conditions,
        "actions": [UnassignAction()],
        "alert_settings": AlertSettings(),
        "schedule_settings": no_schedule(),
        "priority": 0,
        "rollout_percentage": 100,
        "stop_on_match": False,
        "cooldown_secs": 0,
        "created_at": NOW - timedelta(days=1),
        "updated_at": NOW - timedelta(days=1),
    }
    values.update(fields)
    return AutomationRule(**values)


def event(**fields: Any) -> Event:
    values: dict[str, Any] = {
        "event_type": "message_received_inbound",
        "conversation_id": CONVERSATION,
        "channel": "whatsapp",
        "status": "open",
        "priority": "normal",
        "message_text": "hello",
        "contact_tags": frozenset(),
    }
    values.update(fields)
    return Event(**values)


def run(
    rules: list[AutomationRule],
    ev: Event | None = None,
    *,
    now: datetime = NOW,
    control: AutomationControl | None = None,
    **context: Any,
) -> list[str]:
    """The names of the rules that run, from the matcher, checked against the interpreter."""
    ev = ev if ev is not None else event()
    ctx = MatchContext(now=now, **context)
    compiled = [m.rule.name for m in compile_rules(rules, control).match(ev, ctx)]
    interpreted = [m.rule.name for m in interpret(rules, ev, ctx, control)]
    assert compiled == interpreted
    return compiled


def holds(ev: Event | None = None, **conditions: Any) -> bool:
    """Whether a rule with these conditions runs for the event (an inbound message by default)."""
    return run([rule(when=conditions)], ev, in_business_hours=True) == ["rule"]


# ------------------------------------------------------------------ conditions


def test_empty_conditions_match_every_event_of_the_trigger() -> None:
    assert holds()
    assert run([rule(trigger_type="status_changed")], event()) == []
    assert run([rule(trigger_type="status_changed")], event(event_type="status_changed")) == ["rule"]


def test_empty_or_null_lists_constrain_nothing() -> None:
    assert holds(channel_in=[], status_in=None, has_any_tags=[], message_contains_any=[], any_of=[])


def test_channel_in() -> None:
    assert holds(channel_in=["whatsapp", "email"])
    assert not holds(channel_in=["instagram"])


def test_status_in() -> None:
    assert holds(event(status="pending"), status_in=["pending"])
    assert not holds(event(status="open"), status_in=["pending", "resolved"])


def test_assigned_is_null() -> None:
    unassigned, assigned = event(assigned_agent_id=None), event(assigned_agent_id=uuid4())
    assert holds(unassigned, assigned_is_null=True)
    assert not holds(assigned, assigned_is_null=True)
    assert holds(assigned, assigned_is_null=False)
    assert not holds(unassigned, assigned_is_null=False)
    assert holds(assigned, assigned_is_null=None)


def test_has_any_tags_ignores_case_and_spaces() -> None:
    tagged = event(tags=frozenset({"vip", "b2b"}))
    assert holds(tagged, has_any_tags=["VIP ", "other"])
    assert not holds(tagged, has_any_tags=["new"])
    assert not holds(event(), has_any_tags=["vip"])


def test_division_id_in() -> None:
    assert holds(event(division_id=DIVISION_A), division_id_in=[DIVISION_A, DIVISION_B])
    assert not holds(event(division_id=DIVISION_B), division_id_in=[DIVISION_A])
    assert not holds(event(division_id=None), division_id_in=[DIVISION_A])


def test_priority_in() -> None:
    assert holds(event(priority="urgent"), priority_in=["high", "urgent"])
    assert not holds(event(priority="low"), priority_in=["high", "urgent"])


def test_previous_status_in() -> None:
    changed = event(event_type="status_changed", status="resolved", previous_status="pending", message_text=None)
    rules = [rule(trigger_type="status_changed", when={"previous_status_in": ["pending"]})]
    assert run(rules, changed) == ["rule"]
    assert run(rules, msgspec.structs.replace(changed, previous_status="open")) == []
    assert run(rules, msgspec.structs.replace(changed, previous_status=None)) == []


def test_contact_has_any_tags_and_its_fetch() -> None:
    assert holds(event(contact_tags=frozenset({"churn-risk"})), contact_has_any_tags=["Churn-Risk"])
    assert not holds(event(contact_tags=frozenset({"loyal"})), contact_has_any_tags=["churn-risk"])
    rules = [rule(when={"contact_has_any_tags": ["vip"]})]
    compiled = compile_rules(rules)
    assert compiled.needs_contact_tags
    assert compiled.needs_contact_tags_for("message_received_inbound")
    assert not compiled.needs_contact_tags_for("status_changed")
    with pytest.raises(ValueError, match="contact's tags"):
        compiled.match(event(contact_tags=None), MatchContext(now=NOW))
    assert not compile_rules([rule()]).needs_contact_tags


def test_business_hours_is_asked_once_and_only_when_needed() -> None:
    asked: list[UUID | None] = []

    def in_hours(division_id: UUID | None) -> bool:
        asked.append(division_id)
        return division_id == DIVISION_A

    inside = rule("inside", when={"business_hours_only": True})
    outside = rule("outside", when={"outside_business_hours_only": True})
    both_ways = [inside, outside, rule("also inside", when={"business_hours_only": True})]
    compiled = compile_rules(both_ways)
    assert compiled.needs_business_hours
    assert {m.rule.name for m in compiled.match(event(division_id=DIVISION_A), MatchContext(NOW, in_hours))} == {
        "inside",
        "also inside",
    }
    assert asked == [DIVISION_A]
    assert run(both_ways, event(division_id=DIVISION_B), in_business_hours=in_hours) == ["outside"]
    asked.clear()
    # A rule the index has already ruled out does not make anyone ask.
    scoped = [rule(when={"business_hours_only": True, "channel_in": ["email"]})]
    assert run(scoped, event(channel="whatsapp"), in_business_hours=in_hours) == []
    assert asked == []
    with pytest.raises(ValueError, match="business hours"):
        compile_rules([inside]).match(event(), MatchContext(now=NOW))
    assert run(both_ways, event(), in_business_hours=False) == ["outside"]


def test_message_contains_any_whole_words_ignoring_case_accents_punctuation() -> None:
    def said(text: str, *keywords: str) -> bool:
        return holds(event(message_text=text), message_contains_any=list(keywords))

    assert said("I want a REFUND!!", "refund")
    assert said("¿Dónde está mi pedido?", "donde esta")
    assert said("Cafe\u0301 please", "café")  # decomposed accent in the text
    assert said("Straße 5", "strasse")
    assert said("need a credit-card now", "Credit Card")
    assert said("credit  card", "credit card")
    assert not said("card credit", "credit card")
    assert not said("my refunded order", "refund")
    assert not said("prefund", "refund")
    assert said("我要退款，谢谢", "退款")  # noqa: RUF001 - no spaces between words: a run of characters
    assert said("order_id 77", "id")
    assert not said("", "refund")
    assert not holds(event(message_text=None), message_contains_any=["refund"])
    assert said("nothing here, but a refund", "cancel", "refund")


def test_message_matches_is_re2_on_the_text_as_written() -> None:
    assert holds(event(message_text="order #12345 is late"), message_matches=r"#\d{5}")
    assert not holds(event(message_text="order #123 is late"), message_matches=r"#\d{5}")
    assert not holds(event(message_text="ORDER"), message_matches=r"order")
    assert holds(event(message_text="ORDER"), message_matches=r"(?i)order")
    assert holds(event(message_text="café"), message_matches=r"^caf.$")  # characters, not bytes
    assert not holds(event(message_text=None), message_matches=r".*")


def test_any_of_needs_one_set_and_the_rest() -> None:
    conditions = {
        "channel_in": ["whatsapp"],
        "any_of": [ConditionSet(message_contains_any=["refund"]), ConditionSet(priority_in=["urgent"])],
    }
    assert holds(event(message_text="refund please"), **conditions)
    assert holds(event(message_text="hello", priority="urgent"), **conditions)
    assert not holds(event(message_text="hello"), **conditions)
    assert not holds(event(message_text="refund", channel="email"), **conditions)
    assert holds(event(), any_of=[ConditionSet(channel_in=["email"]), ConditionSet()])  # an empty set holds
    # A set and the rule may both constrain one dimension: both must hold.
    assert not holds(
        event(channel="email"), channel_in=["email", "whatsapp"], any_of=[ConditionSet(channel_in=["whatsapp"])]
    )
    assert not holds(
        event(channel="whatsapp"), channel_in=["email"], any_of=[ConditionSet(channel_in=["email", "whatsapp"])]
    )
    assert holds(event(channel="email"), channel_in=["email"], any_of=[ConditionSet(channel_in=["email", "instagram"])])
    assert holds(
        event(tags=frozenset({"a"}), message_text="x"),
        has_any_tags=["a"],
        any_of=[ConditionSet(has_any_tags=["a"], message_matches="x")],
    )
    assert not holds(event(tags=frozenset({"a"})), has_any_tags=["a"], any_of=[ConditionSet(has_any_tags=["b"])])


def test_conditions_alone_for_a_dry_run() -> None:
    conditions = RuleConditions(message_contains_any=["refund"], business_hours_only=True)
    assert conditions_hold(conditions, event(message_text="refund!"), MatchContext(NOW, in_business_hours=True))
    assert not conditions_hold(conditions, event(message_text="refund!"), MatchContext(NOW, in_business_hours=False))
    assert not conditions_hold(conditions, event(message_text="hi"), MatchContext(NOW, in_business_hours=True))


def test_any_of_does_not_nest() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"unknown field `any_of` - at `\$.any_of\[0\]`"):
        msgspec.json.decode(b'{"any_of": [{"any_of": []}]}', type=RuleConditions)


# ------------------------------------------------------------------ order, stop, gates


def test_priority_order_then_age_then_id() -> None:
    older, newer = NOW - timedelta(days=2), NOW - timedelta(days=1)
    low_id, high_id = UUID(int=1), UUID(int=2)
    rules = [
        rule("low", priority=-5),
        rule("newer", created_at=newer, id=UUID(int=0)),
        rule("older, bigger id", created_at=older, id=high_id),
        rule("older, smaller id", created_at=older, id=low_id),
        rule("high", priority=10),
    ]
    assert run(rules) == ["high", "older, smaller id", "older, bigger id", "newer", "low"]


def test_stop_on_match_ends_the_evaluation() -> None:
    rules = [rule("first", priority=3), rule("stop", priority=2, stop_on_match=True), rule("after", priority=1)]
    assert run(rules) == ["first", "stop"]
    # A stop rule that does not match stops nothing.
    rules[1] = rule("stop", priority=2, stop_on_match=True, when={"channel_in": ["email"]})
    assert run(rules) == ["first", "after"]


def test_cooldown_holds_a_rule_back_without_stopping_the_evaluation() -> None:
    cooling = rule("cooling", priority=2, stop_on_match=True, cooldown_secs=600)
    rules = [cooling, rule("after", priority=1)]
    assert run(rules) == ["cooling"]
    assert run(rules, last_runs={cooling.id: NOW - timedelta(seconds=599)}) == ["after"]
    assert run(rules, last_runs={cooling.id: NOW - timedelta(seconds=600)}) == ["cooling"]
    assert run(rules, last_runs={uuid4(): NOW}) == ["cooling"]
    # No cooldown: the last run does not matter.
    assert run([rule("free")], last_runs={rules[1].id: NOW}) == ["free"]


def test_candidates_then_cooldowns_of_the_candidates_only() -> None:
    cooling = rule("cooling", priority=3, stop_on_match=True, cooldown_secs=60)
    other = rule("other", priority=2, cooldown_secs=60)
    elsewhere = rule("elsewhere", priority=2, cooldown_secs=60, when={"channel_in": ["email"]})
    stop = rule("stop", priority=1, stop_on_match=True)
    after = rule("after", priority=0)
    compiled = compile_rules([cooling, other, elsewhere, stop, after])
    candidates = compiled.candidates(event(), MatchContext(now=NOW))
    assert [r.name for r in candidates.rules] == ["cooling", "other", "stop"]
    assert candidates.cooldown_rule_ids == [cooling.id, other.id]
    assert [m.rule.name for m in candidates.resolve({})] == ["cooling"]
    assert [m.rule.name for m in candidates.resolve({cooling.id: NOW})] == ["other", "stop"]
    assert [m.rule.name for m in candidates.resolve({cooling.id: NOW, other.id: NOW})] == ["stop"]


def test_inactive_rules_never_run() -> None:
    assert run([rule(is_active=False), rule("on")]) == ["on"]


def test_snooze_stops_a_rule_until_it_expires() -> None:
    snoozed = rule(snoozed_until=NOW + timedelta(minutes=5))
    assert run([snoozed]) == []
    assert run([snoozed], now=NOW + timedelta(minutes=5)) == ["rule"]
    assert run([rule(snoozed_until=NOW - timedelta(minutes=5))]) == ["rule"]


def test_the_global_pause_stops_everything_until_paused_until() -> None:
    def control(paused: bool, until: datetime | None) -> AutomationControl:
        return AutomationControl(singleton=True, is_paused=paused, paused_until=until, updated_at=NOW)

    rules = [rule()]
    assert run(rules, control=control(True, None)) == []
    assert run(rules, control=control(True, NOW + timedelta(hours=1))) == []
    assert run(rules, control=control(True, NOW)) == ["rule"]
    assert run(rules, control=control(True, NOW - timedelta(hours=1))) == ["rule"]
    assert run(rules, control=control(False, NOW + timedelta(hours=1))) == ["rule"]


def test_events_caused_by_automation_trigger_nothing() -> None:
    assert run([rule()], event(source="automation")) == []
    assert run([rule()], event(source="api")) == ["rule"]


def test_rollout_applies_to_a_fixed_share_of_conversations() -> None:
    half = rule(rollout_percentage=50)
    conversations = [UUID(int=n * 7919 + 1) for n in range(4000)]
    chosen = [c for c in conversations if run([half], event(conversation_id=c))]
    assert 0.46 < len(chosen) / len(conversations) < 0.54
    # The same conversations every time, and a wider rollout keeps them.
    assert chosen == [c for c in conversations if in_rollout(50, half.id, c)]
    assert all(in_rollout(70, half.id, c) for c in chosen)
    assert all(in_rollout(100, half.id, c) for c in conversations)
    assert not any(in_rollout(0, half.id, c) for c in conversations)


def test_rollout_bucket_is_the_documented_hash() -> None:
    rule_id = UUID("11111111-1111-4111-8111-111111111111")
    digest = hashlib.sha256(b"11111111-1111-4111-8111-111111111111:6f0d4f36-2b1e-4a53-9d55-0c5c6a1f2e11").digest()
    assert rollout_bucket(rule_id, CONVERSATION) == int.from_bytes(digest[:8], "big") % 100 == 50
    assert rollout_bucket(str(rule_id), str(CONVERSATION)) == 50  # type: ignore[arg-type]


@given(st.uuids(), st.uuids())
def test_rollout_bucket_is_stable_and_in_range(rule_id: UUID, conversation_id: UUID) -> None:
    bucket = rollout_bucket(rule_id, conversation_id)
    assert 0 <= bucket < 100
    assert bucket == rollout_bucket(UUID(str(rule_id)), UUID(str(conversation_id)))
    assert in_rollout(bucket + 1, rule_id, conversation_id)
    assert not in_rollout(bucket, rule_id, conversation_id)


# ------------------------------------------------------------------ schedules


def schedule(**fields: Any) -> ScheduleSettings:
    return ScheduleSettings(**fields)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_schedule_window_within_a_day() -> None:
    weekdays_9_to_17 = schedule(active_weekdays=[0, 1, 2, 3, 4], start_hour_utc=9, end_hour_utc=17)
    assert schedule_active(weekdays_9_to_17, at("2024-08-26T09:00"))  # Monday
    assert schedule_active(weekdays_9_to_17, at("2024-08-26T16:59:59"))
    assert not schedule_active(weekdays_9_to_17, at("2024-08-26T17:00"))
    assert not schedule_active(weekdays_9_to_17, at("2024-08-26T08:59"))
    assert not schedule_active(weekdays_9_to_17, at("2024-08-31T10:00"))  # Saturday


def test_schedule_window_across_midnight_belongs_to_the_day_it_starts() -> None:
    friday_night = schedule(active_weekdays=[4], start_hour_utc=22, end_hour_utc=6)
    assert schedule_active(friday_night, at("2024-08-30T23:00"))  # Friday
    assert schedule_active(friday_night, at("2024-08-31T05:59"))  # Saturday morning
    assert not schedule_active(friday_night, at("2024-08-31T06:00"))
    assert not schedule_active(friday_night, at("2024-08-30T05:00"))  # Friday morning: Thursday's window
    assert not schedule_active(friday_night, at("2024-08-31T23:00"))


def test_schedule_equal_hours_mean_whole_days_and_invert_flips() -> None:
    sundays = schedule(active_weekdays=[6], start_hour_utc=0, end_hour_utc=0)
    assert schedule_active(sundays, at("2024-09-01T00:00"))
    assert schedule_active(sundays, at("2024-09-01T23:59"))
    assert not schedule_active(sundays, at("2024-09-02T00:00"))
    assert schedule_active(schedule(active_weekdays=[6], start_hour_utc=0, end_hour_utc=24), at("2024-09-01T12:00"))
    not_sundays = schedule(active_weekdays=[6], invert=True)
    assert not schedule_active(not_sundays, at("2024-09-01T12:00"))
    assert schedule_active(not_sundays, at("2024-09-02T12:00"))
    assert schedule_active(schedule(enabled=False, active_weekdays=[6], invert=True), at("2024-09-01T12:00"))


def test_schedule_timezone_offset_shifts_the_clock_and_the_weekday() -> None:
    jakarta_mornings = schedule(active_weekdays=[0], start_hour_utc=8, end_hour_utc=12, timezone_offset_minutes=420)
    assert schedule_active(jakarta_mornings, at("2024-08-26T01:00"))  # 08:00 Monday in UTC+7
    assert not schedule_active(jakarta_mornings, at("2024-08-26T05:00"))  # 12:00 there
    sunday_evening_utc = at("2024-08-25T23:30")  # already Monday 06:30 in UTC+7
    assert schedule_active(schedule(active_weekdays=[0], timezone_offset_minutes=420), sunday_evening_utc)
    assert not schedule_active(schedule(active_weekdays=[0], timezone_offset_minutes=-300), at("2024-08-26T03:00"))


def _reference_active(settings: ScheduleSettings, moment: datetime) -> bool:
    """The definition with calendar arithmetic: local time, then each active day's window."""
    if not settings.enabled:
        return True
    local = moment.astimezone(timezone(timedelta(minutes=settings.timezone_offset_minutes))).replace(tzinfo=None)
    hours = (settings.end_hour_utc - settings.start_hour_utc) % 24 or 24
    inside = False
    for back in (0, 1):
        day = (local - timedelta(days=back)).date()
        opens = datetime(day.year, day.month, day.day, settings.start_hour_utc)
        if day.weekday() in settings.active_weekdays and opens <= local < opens + timedelta(hours=hours):
            inside = True
    return inside != settings.invert


schedules = st.builds(
    ScheduleSettings,
    enabled=st.booleans(),
    active_weekdays=st.lists(st.integers(0, 6), min_size=1, max_size=7),
    start_hour_utc=st.integers(0, 23),
    end_hour_utc=st.integers(0, 24),
    timezone_offset_minutes=st.sampled_from([-720, -570, -300, 0, 60, 330, 345, 420, 840]) | st.integers(-720, 840),
    invert=st.booleans(),
)
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)).map(
    lambda d: d.replace(microsecond=0)
)


@given(schedules, moments)
def test_schedule_active_is_the_calendar_definition(settings: ScheduleSettings, moment: datetime) -> None:
    assert schedule_active(settings, moment) == _reference_active(settings, moment)


@given(schedules, moments, st.integers(1, 72))
@settings(max_examples=60)
def test_schedule_windows_are_where_the_schedule_is_active(
    settings: ScheduleSettings, start: datetime, hours: int
) -> None:
    end = start + timedelta(hours=hours)
    windows = schedule_windows(settings, start, end)
    assert all(a < b for a, b in windows)
    assert all(windows[i][1] < windows[i + 1][0] for i in range(len(windows) - 1))
    probe = start
    while probe < end:
        inside = any(a <= probe < b for a, b in windows)
        assert inside == schedule_active(settings, probe), probe
        probe += timedelta(minutes=17)


def test_schedule_windows_preview() -> None:
    nights = schedule(active_weekdays=[0, 1, 2, 3, 4, 5, 6], start_hour_utc=22, end_hour_utc=2)
    windows = schedule_windows(nights, at("2024-08-26T00:00"), at("2024-08-27T00:00"))
    assert windows == [
        (at("2024-08-26T00:00"), at("2024-08-26T02:00")),
        (at("2024-08-26T22:00"), at("2024-08-27T00:00")),
    ]
    assert schedule_windows(no_schedule(), at("2024-08-26T00:00"), at("2024-08-27T00:00")) == [
        (at("2024-08-26T00:00"), at("2024-08-27T00:00"))
    ]


def test_schedule_gates_the_rule() -> None:
    office = schedule(active_weekdays=[0, 1, 2, 3, 4], start_hour_utc=9, end_hour_utc=17)
    assert run([rule(schedule_settings=office)], now=at("2024-08-26T10:00")) == ["rule"]
    assert run([rule(schedule_settings=office)], now=at("2024-08-26T18:00")) == []


# ------------------------------------------------------------------ effective state


def test_effective_state_names_everything_that_stops_a_rule() -> None:
    office = schedule(active_weekdays=[0, 1, 2, 3, 4], start_hour_utc=9, end_hour_utc=17)
    evening = at("2024-08-26T18:00")
    paused = AutomationControl(
        singleton=True, is_paused=True, paused_until=evening + timedelta(hours=1), pause_reason="migration",
        updated_at=NOW,
    )  # fmt: skip
    stopped = rule(is_active=False, snoozed_until=evening + timedelta(hours=2), schedule_settings=office)
    reasons = effective_state(stopped, evening, paused)
    assert [r.code for r in reasons] == ["inactive", "snoozed", "paused", "outside_schedule"]
    assert reasons[1].until == evening + timedelta(hours=2)
    assert reasons[2].until == evening + timedelta(hours=1)
    assert "migration" in reasons[2].message
    assert reasons[3].until == at("2024-08-27T09:00")
    assert effective_state(rule(), evening) == []
    assert effective_state(rule(rollout_percentage=0), evening)[0].code == "rollout_zero"
    never = schedule(active_weekdays=[0, 1, 2, 3, 4, 5, 6], invert=True)
    assert effective_state(rule(schedule_settings=never), evening)[0].until is None

    state = rule_effective_state(stopped, evening, paused)
    assert (state.is_active, state.is_snoozed, state.global_paused, state.schedule_active) == (False, True, True, False)
    assert not state.effective_active
    assert rule_effective_state(rule(), evening).effective_active


def test_effective_state_agrees_with_the_matcher() -> None:
    """A rule runs (given conditions that hold) exactly when nothing stops it."""
    office = schedule(active_weekdays=[0, 1, 2, 3, 4], start_hour_utc=9, end_hour_utc=17)
    for candidate in (rule(), rule(schedule_settings=office), rule(snoozed_until=NOW + timedelta(hours=9))):
        for moment in (at("2024-08-26T10:00"), at("2024-08-26T18:00"), at("2024-08-27T12:00")):
            assert (run([candidate], now=moment) == ["rule"]) == (effective_state(candidate, moment) == [])


# ------------------------------------------------------------------ tokens and keywords


def test_tokens() -> None:
    assert tokens("Hola, ¿cuándo llegará mi PEDIDO?") == ["hola", "cuando", "llegara", "mi", "pedido"]
    assert tokens("e-mail: a_b@x.io") == ["e", "mail", "a", "b", "x", "io"]
    assert tokens("ﬁle Ｗｉｄｅ ½") == ["file", "wide", "1", "2"]  # noqa: RUF001
    assert tokens("Привет, ЗАКАЗ") == ["привет", "заказ"]  # noqa: RUF001
    assert tokens("  ...  ") == []
    assert keyword_phrase("Credit Card!") == ("credit", "card")
    assert keyword_phrase("!!!") == ()
    assert contains_phrase(["a", "b", "c"], ("b", "c"))
    assert not contains_phrase(["a", "b", "c"], ("c", "b"))
    assert not contains_phrase(["a"], ())


text_alphabet = st.sampled_from(
    list("abcXYZ019 _-.,!?¿'\t\n")
    + list("áÉñçÜßæøµ¼ªº\xa0")
    + list("\u0301\u0308ǅİﬁ½①")
    + list("заказ我要退款สวัสดีनमस्ते")
)


@given(st.text(text_alphabet, max_size=40))
def test_token_shortcuts_agree_with_the_careful_path(text: str) -> None:
    assert tokens(text) == predicates._careful_tokens(text)


@given(st.text(max_size=30))
def test_tokens_of_any_text_agree_with_the_careful_path(text: str) -> None:
    assert tokens(text) == predicates._careful_tokens(text)


@given(
    st.lists(st.text(text_alphabet, min_size=1, max_size=8), min_size=1, max_size=3),
    st.lists(st.text(text_alphabet, max_size=8), max_size=3),
    st.lists(st.text(text_alphabet, max_size=8), max_size=3),
)
def test_a_keyword_matches_a_text_that_contains_it_between_separators(
    keyword_words: list[str], before: list[str], after: list[str]
) -> None:
    keyword = " ".join(keyword_words)
    assume(keyword_phrase(keyword))
    text = " ".join([*before, keyword.upper(), *after])
    assert contains_phrase(tokens(text), keyword_phrase(keyword))


# ------------------------------------------------------------------ regular expressions


def test_invalid_patterns_are_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="invalid regular expression: missing \\)"):
        validate_pattern("(refund")
    with pytest.raises(ValueError, match="invalid regular expression: invalid perl operator"):
        validate_pattern("(?<=a)b")  # no lookbehind in RE2
    with pytest.raises(ValueError, match="invalid regular expression"):
        validate_pattern(r"(a)\1")  # no backreferences
    with pytest.raises(ValueError, match="too large"):
        validate_pattern(r"\pL{1000}")  # a thousand copies of every letter class
    with pytest.raises(ValueError, match="longer than 500"):
        validate_pattern("a" * 501)
    validate_pattern(r"(?i)\border\s*#?\d{4,}")
    assert not pattern_matches("(refund", "refund")  # a stored pattern RE2 refuses matches nothing


def test_a_pathological_pattern_returns_promptly() -> None:
    text = "a" * 100_000 + "!"
    started = time.perf_counter()
    assert not pattern_matches("(a+)+$", text)
    assert not pattern_matches("(x+x+)+y", "x" * 100_000)
    assert run([rule(when={"message_matches": "^(a|aa)+$"})], event(message_text=text)) == []
    assert time.perf_counter() - started < 2.0


def test_pattern_search_agrees_with_the_binding() -> None:
    import re2

    for pattern, text in [(r"\d+", "ab 12"), (r"^x", "yx"), (r"(?i)é", "CAFÉ"), (r"", ""), (r"a$", "ba\n")]:
        assert pattern_matches(pattern, text) == (re2.search(pattern, text) is not None)


# ------------------------------------------------------------------ schemas and their checks


def test_actions_decode_as_one_tagged_union() -> None:
    body = {
        "name": "Refunds",
        "trigger_type": "message_received_inbound",
        "conditions": {"message_contains_any": ["refund"]},
        "actions": [
            {"type": "assign_agent", "strategy": "least_busy", "division_id": str(DIVISION_A)},
            {"type": "add_tags", "tags": ["refund"]},
            {"type": "send_message", "text": "Hi {{contact.name}}, we are on it."},
            {"type": "send_template", "name": "order_update", "language": "pt_BR", "parameters": ["{{contact.name}}"]},
            {
                "type": "send_webhook",
                "url": "https://hooks.example.com/in",
                "secret": "s3cret",
                "headers": {"X-A": "1"},
            },
            {"type": "unassign"},
        ],
    }
    created = msgspec.convert(body, AutomationRuleCreate)
    assert [type(a).__name__ for a in created.actions] == [
        "AssignAgentAction", "AddTagsAction", "SendMessageAction", "SendTemplateAction", "SendWebhookAction",
        "UnassignAction",
    ]  # fmt: skip
    assert msgspec.to_builtins(created.actions)[0] == {
        "type": "assign_agent", "agent_id": None, "strategy": "least_busy", "division_id": str(DIVISION_A),
    }  # fmt: skip
    assert created.rollout_percentage == 100
    assert not created.schedule_settings.enabled
    validate_rule(created.trigger_type, created.conditions, created.actions, created.alert_settings)


@pytest.mark.parametrize(
    ("actions", "error"),
    [
        ([{"type": "reply"}], r"Invalid value 'reply' - at `\$.actions\[0\].type`"),
        ([{"tags": ["x"]}], r"missing required field `type` - at `\$.actions\[0\]`"),
        ([{"type": "add_tags"}], r"missing required field `tags` - at `\$.actions\[0\]`"),
        ([{"type": "add_tags", "tags": []}], r"length >= 1 - at `\$.actions\[0\].tags`"),
        ([{"type": "set_status", "status": "expired"}], r"Invalid enum value 'expired' - at `\$.actions\[0\].status`"),
        ([{"type": "unassign", "agent_id": None}], r"unknown field `agent_id` - at `\$.actions\[0\]`"),
        ([{"type": "assign_division", "division_id": "x"}], r"Invalid UUID - at `\$.actions\[0\].division_id`"),
        ([{"type": "send_webhook", "url": "ftp://x.io"}], r"at `\$.actions\[0\].url`"),
        ([], r"length >= 1 - at `\$.actions`"),
    ],
)
def test_bad_actions_are_named(actions: list[dict[str, Any]], error: str) -> None:
    body = {"name": "r", "trigger_type": "message_received_inbound", "actions": actions}
    with pytest.raises(msgspec.ValidationError, match=error):
        msgspec.json.decode(msgspec.json.encode(body), type=AutomationRuleCreate)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"conditions": {"channel_in": ["fax"]}}, r"Invalid enum value 'fax' - at `\$.conditions.channel_in\[0\]`"),
        ({"conditions": {"message_contains_any": [" "]}}, r"at `\$.conditions.message_contains_any\[0\]`"),
        ({"conditions": {"colour": "red"}}, r"unknown field `colour` - at `\$.conditions`"),
        ({"rollout_percentage": 0}, r"Expected `int` >= 1 - at `\$.rollout_percentage`"),
        ({"cooldown_secs": -1}, r"Expected `int` >= 0 - at `\$.cooldown_secs`"),
        ({"schedule_settings": {"start_hour_utc": 24}}, r"<= 23 - at `\$.schedule_settings.start_hour_utc`"),
        ({"schedule_settings": {"active_weekdays": [7]}}, r"<= 6 - at `\$.schedule_settings.active_weekdays\[0\]`"),
        ({"schedule_settings": {"timezone_offset_minutes": 900}}, r"timezone_offset_minutes"),
        ({"alert_settings": {"high_threshold_pct": 101}}, r"<= 100.0 - at `\$.alert_settings.high_threshold_pct`"),
        ({"trigger_type": "sla_missed"}, r"Invalid enum value 'sla_missed' - at `\$.trigger_type`"),
    ],
)
def test_bad_rule_fields_are_named(body: dict[str, Any], error: str) -> None:
    full = {"name": "r", "trigger_type": "message_received_inbound", "actions": [{"type": "unassign"}], **body}
    with pytest.raises(msgspec.ValidationError, match=error):
        msgspec.json.decode(msgspec.json.encode(full), type=AutomationRuleCreate)


@pytest.mark.parametrize(
    ("trigger", "conditions", "actions", "field"),
    [
        ("message_received_inbound", {"message_matches": "(x"}, [], "conditions.message_matches"),
        ("message_received_inbound", {"any_of": [{}, {"message_matches": "[z-a]"}]}, [], "conditions.any_of[1]"),
        ("message_received_inbound", {"message_contains_any": ["ok", "?!"]}, [], "conditions.message_contains_any[1]"),
        ("message_received_inbound", {"business_hours_only": True, "outside_business_hours_only": True}, [],
         "conditions.outside_business_hours_only"),
        ("status_changed", {"message_contains_any": ["refund"]}, [], "conditions.message_contains_any"),
        ("conversation_created", {"message_matches": "x"}, [], "conditions.message_matches"),
        ("message_received_inbound", {"previous_status_in": ["open"]}, [], "conditions.previous_status_in"),
        ("status_changed", {}, [{"type": "assign_agent"}], "actions[0].agent_id"),
        ("status_changed", {}, [{"type": "assign_agent", "agent_id": str(uuid4()), "strategy": "round_robin"}],
         "actions[0].agent_id"),
        ("status_changed", {}, [{"type": "assign_agent", "agent_id": str(uuid4()), "division_id": str(uuid4())}],
         "actions[0].division_id"),
        ("status_changed", {}, [{"type": "add_note", "text": "x"}, {"type": "send_message", "text": "{{contact.age}}"}],
         "actions[1].text"),
        ("status_changed", {}, [{"type": "send_template", "name": "t", "language": "en", "parameters": ["{{x}}"]}],
         "actions[0].parameters[0]"),
        ("status_changed", {}, [{"type": "send_webhook", "url": "https://a.io", "headers": {"Content-Type": "x"}}],
         "actions[0].headers.Content-Type"),
    ],
)  # fmt: skip
def test_rules_that_cannot_work_as_written_are_refused(
    trigger: str, conditions: dict[str, Any], actions: list[dict[str, Any]], field: str
) -> None:
    decoded = msgspec.convert(conditions, RuleConditions)
    with pytest.raises(RuleDefinitionError) as raised:
        validate_rule(trigger, decoded, msgspec.convert(actions, list[AnyAction]))
    assert raised.value.field.startswith(field)
    assert str(raised.value).startswith(raised.value.field + ": ")


def test_alert_settings_and_presets() -> None:
    with pytest.raises(RuleDefinitionError, match=r"alert_settings\.medium_threshold_pct"):
        validate_rule(
            "status_changed", RuleConditions(), [], AlertSettings(medium_threshold_pct=30, high_threshold_pct=20)
        )
    for preset in ALERT_PRESETS.values():
        validate_rule("status_changed", RuleConditions(), [], preset)
    assert ALERT_PRESETS["aggressive"].min_matched_runs < ALERT_PRESETS["conservative"].min_matched_runs


def test_conditions_echo_what_was_given() -> None:
    given_ = {"channel_in": ["email"], "any_of": [{"priority_in": ["high"]}]}
    assert msgspec.to_builtins(msgspec.convert(given_, RuleConditions)) == given_
    assert msgspec.to_builtins(RuleConditions()) == {}


def test_variables() -> None:
    assert variables_in("Hi {{ contact.name }}, {{contact.name}} {{conversation.id}}") == [
        "contact.name",
        "conversation.id",
    ]
    assert render("Hi {{contact.name}}! {not} {{agent.name}}", {"contact.name": "Ana"}) == "Hi Ana! {not} "


# ------------------------------------------------------------------ events from the outbox


def test_events_from_outbox_payloads() -> None:
    snapshot = {
        "conversation_id": str(CONVERSATION),
        "contact_id": str(uuid4()),
        "channel": "whatsapp",
        "account_id": None,
        "status": "open",
        "assigned_agent_id": None,
        "division_id": str(DIVISION_A),
        "tags": ["VIP", "new"],
        "priority": "normal",
        "handled_by": "human",
    }
    inbound = {
        **snapshot,
        "message": {"id": str(uuid4()), "type": "text", "text": "refund!", "provider_message_id": "w"},
    }
    ev = event_from_payload("message_received_inbound", inbound, source="webhook", contact_tags=["Loyal"])
    assert ev.division_id == DIVISION_A
    assert ev.tags == {"vip", "new"}
    assert ev.message_text == "refund!"
    assert ev.contact_tags == {"loyal"}
    assert run([rule(when={"message_contains_any": ["refund"], "has_any_tags": ["vip"]})], ev) == ["rule"]
    changed = {**snapshot, "previous_status": "resolved", "changed_by": None, "reason": "customer wrote again"}
    ev = event_from_payload("status_changed", msgspec.json.encode(changed))
    assert (ev.previous_status, ev.message_text, ev.contact_tags) == ("resolved", None, None)
    ev = event_from_payload("conversation_created", {**snapshot, "contact_created": True})
    assert ev.event_type == "conversation_created"
    assert event_from_payload("status_changed", changed, source="automation").caused_by_automation


# ------------------------------------------------------------------ the index's own paths


def test_a_set_of_patterns_finds_what_each_pattern_finds() -> None:
    patterns = [*PATTERNS, r"^$", r"(?i)CAFÉ", r"a\b"]
    found = predicates.pattern_set(patterns)
    assert found is not None
    for text in ["", "hello #12345", "HELLO order 7", "credit card", "café au lait", "a b", "ab", "ünïcode"]:
        assert sorted(found.Match(text) or []) == [i for i, p in enumerate(patterns) if pattern_matches(p, text)]


def test_without_a_pattern_set_each_pattern_is_searched(monkeypatch: pytest.MonkeyPatch) -> None:
    import omnistream.automation.engine as engine

    monkeypatch.setattr(engine, "pattern_set", lambda patterns: None)
    rules = [rule(str(i), when={"message_matches": p}) for i, p in enumerate(PATTERNS)]
    rules.append(rule("refused", when={"message_matches": "(unclosed"}))
    for text in ["hello #12345", "order #9 card", "x", None]:
        assert set(run(rules, event(message_text=text))) == {
            str(i) for i, p in enumerate(PATTERNS) if pattern_matches(p, text)
        }


def test_enum_dimensions_past_their_memo(monkeypatch: pytest.MonkeyPatch) -> None:
    import omnistream.automation.engine as engine

    monkeypatch.setattr(engine._Combined, "LIMIT", 2)
    rules = [rule(when={"channel_in": ["email"], "status_in": ["open"]}), rule("any", when={"priority_in": ["low"]})]
    for channel in ["email", "whatsapp", "fax", "email"]:
        for status in ["open", "closed", "odd"]:
            ran = set(run(rules, event(channel=channel, status=status, priority="low")))
            assert ran == ({"rule", "any"} if (channel, status) == ("email", "open") else {"any"})


# ------------------------------------------------------------------ compiled vs interpreted

DIVISIONS = [DIVISION_A, DIVISION_B, UUID("00000000-0000-4000-8000-00000000000c")]
TAG_WORDS = ["vip", "VIP", "new", "b2b", "spam"]
KEYWORDS = ["refund", "Refund!", "credit card", "card", "cuándo", "dónde está", "退款", "order", "e-mail", "ok ok"]
WORDS = ["refund", "REFUNDED", "credit", "card", "Cuando", "donde", "esta", "退款", "order", "e", "mail", "ok",
         "hello", "#12345", "x", "!", ",", "credit-card"]  # fmt: skip
PATTERNS = [r"#\d{5}", r"(?i)^hello", r"order\s+#?\d+", r"card$", r"[^\x00-\x7f]"]
CHANNELS = ["whatsapp", "instagram", "messenger", "email"]
STATUSES = ["open", "pending", "resolved", "closed", "expired"]
PRIORITY_VALUES = ["low", "normal", "high", "urgent"]
TRIGGERS = ["message_received_inbound", "message_received_inbound", "status_changed", "conversation_created"]


def _subset(values: list[Any]) -> st.SearchStrategy[list[Any] | None]:
    return st.one_of(st.none(), st.just([]), st.lists(st.sampled_from(values), min_size=1, max_size=3))


condition_fields = {
    "channel_in": _subset(CHANNELS),
    "status_in": _subset(STATUSES),
    "assigned_is_null": st.sampled_from([None, True, False]),
    "has_any_tags": _subset(TAG_WORDS),
    "division_id_in": _subset(DIVISIONS),
    "business_hours_only": st.booleans(),
    "outside_business_hours_only": st.booleans(),
    "message_contains_any": _subset(KEYWORDS),
    "message_matches": st.one_of(st.none(), st.sampled_from(PATTERNS)),
    "contact_has_any_tags": _subset(TAG_WORDS),
    "priority_in": _subset(PRIORITY_VALUES),
    "previous_status_in": _subset(STATUSES),
}


@st.composite
def condition_sets(draw: st.DrawFn, cls: type[ConditionSet] = ConditionSet) -> ConditionSet:
    # Most rules use a few conditions, not all twelve.
    names = draw(st.lists(st.sampled_from(sorted(condition_fields)), max_size=3, unique=True))
    values = {name: draw(condition_fields[name]) for name in names}
    if cls is RuleConditions:
        values["any_of"] = draw(st.one_of(st.none(), st.lists(condition_sets(), max_size=3)))
    return cls(**values)


times = st.sampled_from([NOW - timedelta(days=d) for d in (1, 2, 3)])


@st.composite
def rules(draw: st.DrawFn) -> AutomationRule:
    return rule(
        name=str(draw(st.uuids())),
        id=draw(st.uuids()),
        is_active=draw(st.sampled_from([True] * 9 + [False])),
        trigger_type=draw(st.sampled_from(TRIGGERS)),
        conditions=draw(condition_sets(RuleConditions)),
        schedule_settings=draw(st.sampled_from([no_schedule()] * 3) | schedules),
        priority=draw(st.integers(-2, 2)),
        rollout_percentage=draw(st.sampled_from([100, 100, 50, 10, 1])),
        stop_on_match=draw(st.booleans().map(lambda b: b and draw(st.booleans()))),
        cooldown_secs=draw(st.sampled_from([0, 0, 60, 3600])),
        created_at=draw(times),
        snoozed_until=draw(st.sampled_from([None] * 8 + [NOW - timedelta(hours=1), NOW + timedelta(hours=1)])),
    )


@st.composite
def events(draw: st.DrawFn) -> Event:
    event_type = draw(st.sampled_from([*TRIGGERS, "sla_breached"]))
    words = draw(st.lists(st.sampled_from(WORDS), max_size=8))
    return Event(
        event_type=event_type,
        conversation_id=draw(st.uuids()),
        channel=draw(st.sampled_from(CHANNELS)),
        status=draw(st.sampled_from(STATUSES)),
        assigned_agent_id=draw(st.sampled_from([None, DIVISION_A])),
        division_id=draw(st.sampled_from([None, *DIVISIONS])),
        tags=frozenset(t.lower() for t in draw(st.lists(st.sampled_from(TAG_WORDS), max_size=2))),
        priority=draw(st.sampled_from(PRIORITY_VALUES)),
        message_text=draw(st.one_of(st.none(), st.just(" ".join(words)), st.just("".join(words)))),
        previous_status=draw(st.sampled_from([None, *STATUSES])),
        contact_tags=frozenset(t.lower() for t in draw(st.lists(st.sampled_from(TAG_WORDS), max_size=2))),
        source=draw(st.sampled_from(["webhook"] * 6 + ["api", "automation"])),
    )


controls = st.one_of(
    st.none(),
    st.builds(
        AutomationControl,
        singleton=st.just(True),
        is_paused=st.booleans(),
        paused_until=st.sampled_from([None, NOW - timedelta(minutes=1), NOW + timedelta(minutes=1)]),
        updated_at=st.just(NOW),
    ),
)


@given(
    rule_set=st.lists(rules(), max_size=60),
    evs=st.lists(events(), min_size=1, max_size=5),
    control=controls,
    now=st.sampled_from([NOW, NOW + timedelta(hours=7), NOW + timedelta(days=3, hours=15)]),
    in_hours=st.booleans(),
    data=st.data(),
)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_compiled_matcher_agrees_with_the_interpreter(
    rule_set: list[AutomationRule],
    evs: list[Event],
    control: AutomationControl | None,
    now: datetime,
    in_hours: bool,
    data: st.DataObject,
) -> None:
    compiled = compile_rules(rule_set, control)
    interpreter = ReferenceInterpreter(rule_set, control)
    for ev in evs:
        ran = data.draw(st.lists(st.sampled_from(rule_set), max_size=5)) if rule_set else []
        last_runs = {r.id: now - timedelta(seconds=data.draw(st.sampled_from([1, 59, 60, 3599, 7200]))) for r in ran}
        context = MatchContext(now=now, in_business_hours=in_hours, last_runs=last_runs)
        expected = [m.rule.id for m in interpreter.match(ev, context)]
        assert [m.rule.id for m in compiled.match(ev, context)] == expected
        # The same in two steps: candidates, then the cooldown state of the candidates that need it.
        candidates = compiled.candidates(ev, MatchContext(now=now, in_business_hours=lambda _: in_hours))
        assert set(candidates.cooldown_rule_ids) <= {r.id for r in rule_set if r.cooldown_secs}
        needed = {i: last_runs[i] for i in candidates.cooldown_rule_ids if i in last_runs}
        assert [m.rule.id for m in candidates.resolve(needed)] == expected
