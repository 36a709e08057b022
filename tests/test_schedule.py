"""Working-hours arithmetic against a brute-force reference, across time zones and DST changes."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omnistream.working_hours.schedule import Schedule, is_open, next_close, next_open, parse_clock, status

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Jakarta", "Australia/Lord_Howe"]
BERLIN = ZoneInfo("Europe/Berlin")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
MINUTE = timedelta(minutes=1)
WALK_LIMIT = timedelta(days=16)  # how far the reference walks minute by minute

# ---------------------------------------------------------------- the reference


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class Reference:
    """The definition, spelled out naively: raw periods, no merging, no offset arithmetic."""

    def __init__(self, periods: list[tuple[int, int, int]], holidays: dict[date, list[tuple[int, int]]]) -> None:
        self.periods = periods
        self.holidays = holidays

    def is_open(self, zone: ZoneInfo, at: datetime) -> bool:
        local = at.astimezone(zone)
        minute_of_day = local.hour * 60 + local.minute + (local.second * 1_000_000 + local.microsecond) / 60e6
        day = local.date()
        if day in self.holidays:
            ranges = self.holidays[day]
        else:
            ranges = [(s, e) for w, s, e in self.periods if w == day.weekday()]
        return any(s <= minute_of_day < e for s, e in ranges)

    def first(self, zone: ZoneInfo, at: datetime, want_open: bool) -> datetime | None:
        """The first instant at or after `at` whose state is `want_open`, walking whole UTC minutes.

        In these zones every offset is whole minutes, so the state only changes on minute boundaries.
        """
        if self.is_open(zone, at) == want_open:
            return at
        t = at.replace(second=0, microsecond=0) + MINUTE
        while t <= at + WALK_LIMIT:
            if self.is_open(zone, t) == want_open:
                return t
            t += MINUTE
        return None


# ---------------------------------------------------------------- strategies


@cache
def transitions(zone_name: str) -> list[datetime]:
    """The zone's UTC offset changes between 2000 and 2035, found by daily steps and bisection."""
    zone = ZoneInfo(zone_name)
    found = []
    t = utc("2000-01-01T00:00:00")
    while t < utc("2035-01-01T00:00:00"):
        step = t + timedelta(days=1)
        if t.astimezone(zone).utcoffset() != step.astimezone(zone).utcoffset():
            lo, hi = t, step
            while hi - lo > MINUTE:
                mid = lo + (hi - lo) / 2
                mid = mid.replace(second=0, microsecond=0)
                if mid.astimezone(zone).utcoffset() == lo.astimezone(zone).utcoffset():
                    lo = mid
                else:
                    hi = mid
            found.append(hi)
        t = step
    return found


clock = st.one_of(st.integers(0, 48).map(lambda n: n * 30), st.integers(0, 1440))


@st.composite
def day_ranges(draw: st.DrawFn) -> list[tuple[int, int]]:
    """Non-overlapping ranges of one day: some of the segments between sorted distinct points."""
    points = sorted(draw(st.sets(clock, max_size=7)))
    segments = list(itertools.pairwise(points))
    return [seg for seg in segments if draw(st.booleans())]


@st.composite
def instants(draw: st.DrawFn, zone_name: str) -> datetime:
    near = transitions(zone_name)
    if near and draw(st.booleans()):
        base = draw(st.sampled_from(near))
        at = base + timedelta(minutes=draw(st.integers(-3 * 24 * 60, 3 * 24 * 60)))
    else:
        at = draw(st.datetimes(min_value=datetime(1995, 1, 1), max_value=datetime(2040, 1, 1))).replace(tzinfo=UTC)
    if draw(st.booleans()):
        at = at.replace(second=draw(st.integers(0, 59)), microsecond=draw(st.integers(0, 999_999)))
    else:
        at = at.replace(second=0, microsecond=0)
    return at


@st.composite
def cases(draw: st.DrawFn) -> tuple[ZoneInfo, Reference, Schedule, datetime]:
    zone_name = draw(st.sampled_from(ZONES))
    zone = ZoneInfo(zone_name)
    at = draw(instants(zone_name))
    if draw(st.booleans()):
        same = draw(day_ranges())  # the same hours every day: the DST day surely has them
        days = [same] * 7
    else:
        days = [draw(day_ranges()) for _ in range(7)]
    periods = [(w, s, e) for w, ranges in enumerate(days) for s, e in ranges]
    today = at.astimezone(zone).date()
    holidays = {
        today + timedelta(days=offset): draw(day_ranges()) for offset in draw(st.sets(st.integers(-2, 12), max_size=4))
    }
    reference = Reference(periods, holidays)
    return zone, reference, Schedule.build(periods, holidays), at


PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------- properties


@PROPERTY
@given(cases())
def test_is_open_agrees_with_the_reference(case: tuple[ZoneInfo, Reference, Schedule, datetime]) -> None:
    zone, reference, schedule, at = case
    assert is_open(schedule, zone, at) == reference.is_open(zone, at)
    # Just around the instant too: exercises the boundaries of the periods.
    for delta in (-MINUTE, MINUTE, timedelta(microseconds=-1)):
        assert is_open(schedule, zone, at + delta) == reference.is_open(zone, at + delta)


@PROPERTY
@given(cases())
def test_next_open_is_the_first_open_instant(case: tuple[ZoneInfo, Reference, Schedule, datetime]) -> None:
    zone, reference, schedule, at = case
    found = next_open(schedule, zone, at)
    expected = reference.first(zone, at, want_open=True)
    if expected is None:
        assert found is None or found > at + WALK_LIMIT
        return
    assert found == expected
    assert found.tzinfo is UTC
    assert reference.is_open(zone, found)
    assert is_open(schedule, zone, found)
    if found > at:
        assert not reference.is_open(zone, found - timedelta(microseconds=1))


@PROPERTY
@given(cases())
def test_next_close_is_the_first_closed_instant(case: tuple[ZoneInfo, Reference, Schedule, datetime]) -> None:
    zone, reference, schedule, at = case
    found = next_close(schedule, zone, at)
    expected = reference.first(zone, at, want_open=False)
    if expected is None:
        assert found is None or found > at + WALK_LIMIT
        return
    assert found == expected
    assert not reference.is_open(zone, found)
    assert not is_open(schedule, zone, found)
    if found > at:
        assert reference.is_open(zone, found - timedelta(microseconds=1))


@PROPERTY
@given(cases())
def test_status_reports_the_next_changes(case: tuple[ZoneInfo, Reference, Schedule, datetime]) -> None:
    zone, reference, schedule, at = case
    state = status(schedule, zone, at)
    assert state.open == reference.is_open(zone, at)
    for change, opens in ((state.next_open_at, True), (state.next_close_at, False)):
        if change is not None:
            assert change > at
            assert reference.is_open(zone, change) == opens
            assert reference.is_open(zone, change - timedelta(microseconds=1)) != opens
    if state.open and state.next_close_at and state.next_open_at:
        assert state.next_close_at < state.next_open_at
    if not state.open and state.next_close_at and state.next_open_at:
        assert state.next_open_at < state.next_close_at


# ---------------------------------------------------------------- worked examples


def test_spring_forward_period_covers_only_existing_local_times() -> None:
    # 2024-03-31 is a Sunday; Berlin skips 02:00-03:00 (01:00 UTC).
    schedule = Schedule.build([(6, parse_clock("01:00"), parse_clock("03:00"))])
    opens = next_open(schedule, BERLIN, utc("2024-03-30T12:00:00"))
    assert opens == utc("2024-03-31T00:00:00")  # 01:00 CET
    assert next_close(schedule, BERLIN, opens) == utc("2024-03-31T01:00:00")  # 03:00 CEST: one hour


def test_fall_back_period_covers_the_repeated_hour_twice() -> None:
    # 2024-10-27 is a Sunday; Berlin repeats 02:00-03:00.
    schedule = Schedule.build([(6, parse_clock("01:00"), parse_clock("03:00"))])
    opens = next_open(schedule, BERLIN, utc("2024-10-26T12:00:00"))
    assert opens == utc("2024-10-26T23:00:00")  # 01:00 CEST
    assert next_close(schedule, BERLIN, opens) == utc("2024-10-27T02:00:00")  # 03:00 CET: three hours
    assert is_open(schedule, BERLIN, utc("2024-10-27T00:30:00"))  # 02:30 CEST
    assert is_open(schedule, BERLIN, utc("2024-10-27T01:30:00"))  # 02:30 CET


def test_a_period_inside_the_skipped_hour_never_opens_that_day() -> None:
    schedule = Schedule.build([(6, parse_clock("02:15"), parse_clock("02:45"))])
    assert next_open(schedule, BERLIN, utc("2024-03-30T12:00:00")) == utc("2024-04-07T00:15:00")


def test_a_period_starting_in_the_skipped_hour_opens_at_the_change() -> None:
    schedule = Schedule.build([(6, parse_clock("02:30"), parse_clock("05:00"))])
    assert next_open(schedule, BERLIN, utc("2024-03-30T12:00:00")) == utc("2024-03-31T01:00:00")  # 03:00 CEST


def test_lord_howe_half_hour_shift() -> None:
    # 2024-10-06 (Sunday): Lord Howe goes from +10:30 to +11:00 at 02:00 local, skipping 02:00-02:30.
    schedule = Schedule.build([(6, parse_clock("01:30"), parse_clock("02:30"))])
    opens = next_open(schedule, LORD_HOWE, utc("2024-10-05T00:00:00"))
    assert opens == utc("2024-10-05T15:00:00")  # 01:30 +10:30
    assert next_close(schedule, LORD_HOWE, opens) == utc("2024-10-05T15:30:00")  # 02:30 +11:00


def test_periods_that_meet_at_midnight_stay_open() -> None:
    monday, tuesday = 0, 1
    schedule = Schedule.build(
        [(monday, parse_clock("22:00"), parse_clock("24:00")), (tuesday, 0, parse_clock("02:00"))]
    )
    # 2024-06-03 is a Monday.
    assert next_close(schedule, ZoneInfo("UTC"), utc("2024-06-03T23:00:00")) == utc("2024-06-04T02:00:00")


def test_a_period_includes_its_start_and_excludes_its_end() -> None:
    schedule = Schedule.build([(0, parse_clock("09:00"), parse_clock("17:00"))])
    zone = ZoneInfo("Asia/Jakarta")  # +07:00; 2024-06-03 is a Monday
    assert not is_open(schedule, zone, utc("2024-06-03T01:59:59.999999"))
    assert is_open(schedule, zone, utc("2024-06-03T02:00:00"))
    assert is_open(schedule, zone, utc("2024-06-03T09:59:59.999999"))
    assert not is_open(schedule, zone, utc("2024-06-03T10:00:00"))


def test_split_shift_closes_for_lunch() -> None:
    schedule = Schedule.build([(0, parse_clock("09:00"), parse_clock("12:00")), (0, parse_clock("13:00"), 1020)])
    at = utc("2024-06-03T11:00:00")
    state = status(schedule, ZoneInfo("UTC"), at)
    assert state.open
    assert state.next_close_at == utc("2024-06-03T12:00:00")
    assert state.next_open_at == utc("2024-06-03T13:00:00")


def test_holiday_overrides_the_weekday() -> None:
    every_day = [(w, parse_clock("09:00"), parse_clock("17:00")) for w in range(7)]
    schedule = Schedule.build(every_day, {date(2024, 12, 25): [], date(2024, 12, 24): [(parse_clock("09:00"), 720)]})
    zone = ZoneInfo("UTC")
    assert not is_open(schedule, zone, utc("2024-12-25T10:00:00"))
    assert not is_open(schedule, zone, utc("2024-12-24T13:00:00"))
    assert is_open(schedule, zone, utc("2024-12-24T11:00:00"))
    assert next_open(schedule, zone, utc("2024-12-24T13:00:00")) == utc("2024-12-26T09:00:00")


def test_never_open_and_always_open() -> None:
    zone = ZoneInfo("America/New_York")
    at = utc("2024-06-03T11:00:00")
    never = Schedule.build([])
    assert next_open(never, zone, at) is None
    assert next_close(never, zone, at) == at
    always = Schedule.build([(w, 0, 1440) for w in range(7)])
    assert next_close(always, zone, at) is None
    assert next_open(always, zone, at) == at
    assert status(always, zone, at) == status(always, zone, at + timedelta(days=100))


@given(st.sampled_from(["25:00", "24:01", "9:00", "09:60", "0900", "ab:cd", ""]))
def test_parse_clock_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match=r"HH:MM|between"):
        parse_clock(text)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        is_open(Schedule.build([]), BERLIN, datetime(2024, 1, 1, 12, 0))
