"""Working-hours arithmetic: pure functions, no I/O.

A schedule is a set of wall-clock intervals per weekday (several a day: split shifts) plus
dated exceptions (holidays) that replace the weekday's intervals on their date. An instant
is open when its wall-clock time *in the tenant's zone* falls in an interval of its local
date. So on a spring-forward day a period 01:00-03:00 covers only the local times that exist
(one hour of real time in Europe/Berlin), and on a fall-back day it covers the repeated
hour twice (three hours).

`next_open` / `next_close` find the first open / closed instant at or after a given one.
They cut the timeline into stretches of constant UTC offset; inside such a stretch wall
time is UTC plus a constant, so a wall-clock interval maps back to exactly one UTC interval.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo

MINUTES_PER_DAY = 24 * 60
HORIZON = timedelta(days=400)
"""How far ahead `next_open` / `next_close` look before answering None."""

# UTC offsets change at most once in this span (true of every zone in the tz database since 1970).
_OFFSET_PROBE = timedelta(hours=12)
_MICROS_PER_MINUTE = 60_000_000

Interval = tuple[int, int]
"""[start, end) in minutes after local midnight; end may be 1440 (24:00)."""


def parse_clock(text: str) -> int:
    """'HH:MM' (00:00-24:00) to minutes after midnight."""
    hours, sep, minutes = text.partition(":")
    if not (sep and len(hours) == 2 and len(minutes) == 2 and hours.isdigit() and minutes.isdigit()):
        raise ValueError(f"{text!r} is not HH:MM")
    value = int(hours) * 60 + int(minutes)
    if int(minutes) > 59 or value > MINUTES_PER_DAY:
        raise ValueError(f"{text!r} is not a time between 00:00 and 24:00")
    return value


def format_clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _normalise(intervals: Iterable[Interval]) -> tuple[Interval, ...]:
    """Sorted, with touching or overlapping intervals merged."""
    merged: list[list[int]] = []
    for start, end in sorted(intervals):
        if not 0 <= start < end <= MINUTES_PER_DAY:
            raise ValueError(f"bad interval {start}-{end}")
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return tuple((s, e) for s, e in merged)


@dataclass(frozen=True, slots=True)
class Schedule:
    weekly: tuple[tuple[Interval, ...], ...] = ((),) * 7
    """Index 0 = Monday ... 6 = Sunday."""
    holidays: Mapping[date, tuple[Interval, ...]] = field(default_factory=dict)
    """Dates whose intervals replace the weekday's; an empty tuple is closed all day."""

    @classmethod
    def build(
        cls,
        periods: Iterable[tuple[int, int, int]],
        holidays: Mapping[date, Iterable[Interval]] | None = None,
    ) -> Schedule:
        """From (weekday, start_minute, end_minute) periods and {date: [(start, end), ...]}."""
        days: list[list[Interval]] = [[] for _ in range(7)]
        for weekday, start, end in periods:
            days[weekday].append((start, end))
        return cls(
            weekly=tuple(_normalise(d) for d in days),
            holidays={d: _normalise(ivs) for d, ivs in (holidays or {}).items()},
        )

    def intervals_on(self, day: date) -> tuple[Interval, ...]:
        found = self.holidays.get(day)
        return found if found is not None else self.weekly[day.weekday()]

    @property
    def never_open(self) -> bool:
        return not any(self.weekly) and not any(self.holidays.values())


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("a naive datetime is ambiguous; pass an aware one")
    return at.astimezone(UTC)


def is_open(schedule: Schedule, tz: tzinfo, at: datetime) -> bool:
    local = _aware(at).astimezone(tz)
    micros = ((local.hour * 60 + local.minute) * 60 + local.second) * 1_000_000 + local.microsecond
    return any(
        s * _MICROS_PER_MINUTE <= micros < e * _MICROS_PER_MINUTE for s, e in schedule.intervals_on(local.date())
    )


def _offset(tz: tzinfo, at: datetime) -> timedelta:
    offset = at.astimezone(tz).utcoffset()
    assert offset is not None
    return offset


def _offset_change(tz: tzinfo, before: datetime, after: datetime, offset: timedelta) -> datetime:
    """The first whole second in (before, after] whose offset is not `offset` (there is one)."""
    lo = int(before.timestamp() // 1)  # same offset as `before`: changes happen on whole seconds
    hi = -int(-after.timestamp() // 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _offset(tz, datetime.fromtimestamp(mid, UTC)) == offset:
            lo = mid
        else:
            hi = mid
    return datetime.fromtimestamp(hi, UTC)


def _constant_offset_stretches(
    tz: tzinfo, start: datetime, end: datetime
) -> Iterator[tuple[datetime, datetime, timedelta]]:
    """[a, b) pieces of [start, end) in UTC, each with one UTC offset, in order."""
    stretch_start, offset = start, _offset(tz, start)
    probe = start
    while True:
        step = min(probe + _OFFSET_PROBE, end)
        if _offset(tz, step) != offset:
            change = _offset_change(tz, probe, step, offset)
            yield stretch_start, change, offset
            stretch_start, offset, probe = change, _offset(tz, change), change
        elif step >= end:
            yield stretch_start, end, offset
            return
        else:
            probe = step


def _open_pieces(schedule: Schedule, tz: tzinfo, start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
    """The open parts of [start, end) as UTC intervals in chronological order (maybe touching)."""
    for a, b, offset in _constant_offset_stretches(tz, start, end):
        # Inside [a, b) the wall clock reads UTC + offset, a continuous line.
        wall_a = (a + offset).replace(tzinfo=None)
        wall_b = (b + offset).replace(tzinfo=None)
        day = wall_a.date()
        while True:
            midnight = datetime.combine(day, time())
            if midnight >= wall_b:
                break
            for s, e in schedule.intervals_on(day):
                lo = max(midnight + timedelta(minutes=s), wall_a)
                hi = min(midnight + timedelta(minutes=e), wall_b)
                if lo < hi:
                    yield (lo - offset).replace(tzinfo=UTC), (hi - offset).replace(tzinfo=UTC)
            day += timedelta(days=1)


def _open_intervals(schedule: Schedule, tz: tzinfo, at: datetime) -> Iterator[tuple[datetime, datetime]]:
    """Maximal open UTC intervals from `at` up to the horizon; the last may be cut by it."""
    if schedule.never_open:
        return
    current: tuple[datetime, datetime] | None = None
    for lo, hi in _open_pieces(schedule, tz, at, at + HORIZON):
        if current is not None and lo <= current[1]:
            current = (current[0], max(current[1], hi))
            continue
        if current is not None:
            yield current
        current = (lo, hi)
    if current is not None:
        yield current


def next_open(schedule: Schedule, tz: tzinfo, at: datetime) -> datetime | None:
    """The first open instant at or after `at` (`at` itself when open), in UTC; None within the horizon."""
    at = _aware(at)
    for lo, _hi in _open_intervals(schedule, tz, at):
        return lo
    return None


def next_close(schedule: Schedule, tz: tzinfo, at: datetime) -> datetime | None:
    """The first closed instant at or after `at` (`at` itself when closed), in UTC; None within the horizon."""
    at = _aware(at)
    for lo, hi in _open_intervals(schedule, tz, at):
        if lo > at:
            return at
        return None if hi >= at + HORIZON else hi
    return at


@dataclass(frozen=True, slots=True)
class Status:
    open: bool
    next_open_at: datetime | None
    """When it next opens (after the current opening hours if open now)."""
    next_close_at: datetime | None
    """When it next closes (after the next opening if closed now)."""


def status(schedule: Schedule, tz: tzinfo, at: datetime) -> Status:
    """Open now, and the next changes of state: both are in the future whenever they exist."""
    at = _aware(at)
    if is_open(schedule, tz, at):
        closes = next_close(schedule, tz, at)
        return Status(True, next_open(schedule, tz, closes) if closes else None, closes)
    opens = next_open(schedule, tz, at)
    return Status(False, opens, next_close(schedule, tz, opens) if opens else None)


def add_open_time(schedule: Schedule, tz: tzinfo, at: datetime, duration: timedelta) -> datetime | None:
    """The instant by which `duration` of open time has passed since `at` (an SLA target counted in
    business hours); `at` itself for no duration; None when that is beyond the horizon."""
    at = _aware(at)
    if duration <= timedelta(0):
        return at
    left = duration
    for lo, hi in _open_intervals(schedule, tz, at):
        if hi - lo >= left:
            return lo + left
        if hi >= at + HORIZON:
            return None  # the interval is cut by the horizon, not closed
        left -= hi - lo
    return None


def open_time_between(schedule: Schedule, tz: tzinfo, start: datetime, end: datetime) -> timedelta:
    """How much of [start, end) is open (what is left of an SLA target when its clock pauses)."""
    start, end = _aware(start), _aware(end)
    if end <= start:
        return timedelta(0)
    return sum((hi - lo for lo, hi in _open_pieces(schedule, tz, start, end)), timedelta(0))
