from __future__ import annotations

import datetime as dt
from typing import Annotated
from uuid import UUID

import msgspec

from omnistream.kit.schema import Input, Name, Schema, pattern

START_TIME_PATTERN = pattern(r"^(?:[01][0-9]|2[0-3]):[0-5][0-9]$", "must be a time of day as HH:MM, such as 09:00")

END_TIME_PATTERN = pattern(
    r"^(?:(?:[01][0-9]|2[0-3]):[0-5][0-9]|24:00)$", "must be a time of day as HH:MM (or 24:00), such as 17:30"
)

Weekday = Annotated[int, msgspec.Meta(ge=0, le=6, description="0 = Monday ... 6 = Sunday")]
StartTime = Annotated[
    str,
    msgspec.Meta(
        pattern=START_TIME_PATTERN,
        description="Local wall-clock time, HH:MM",
        examples=["09:00"],
    ),
]
EndTime = Annotated[
    str,
    msgspec.Meta(
        pattern=END_TIME_PATTERN,
        description="Local wall-clock time, HH:MM, after start; 24:00 is the end of the day",
        examples=["17:30"],
    ),
]
TimeZone = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, description="An IANA time zone", examples=["Europe/Berlin"])
]

# The value objects below appear in request bodies and in responses alike; as Inputs they
# refuse unknown fields when decoded.


class TimeRange(Input):
    start: StartTime
    end: EndTime


class Period(Input):
    """Opening hours on one weekday; a day may have several (split shifts), never overlapping."""

    weekday: Weekday
    start: StartTime
    end: EndTime


class Holiday(Input):
    """A dated exception: its periods replace the weekday's; no periods means closed all day."""

    date: dt.date
    name: Name
    periods: Annotated[list[TimeRange], msgspec.Meta(max_length=48)] = msgspec.field(default_factory=list)


Periods = Annotated[list[Period], msgspec.Meta(max_length=336)]
Holidays = Annotated[list[Holiday], msgspec.Meta(max_length=1000)]


class WorkingHoursUpdate(Input):
    """The whole schedule: it replaces the stored one."""

    periods: Periods
    holidays: Holidays = msgspec.field(default_factory=list)


class Schedule(Schema):
    periods: list[Period]
    holidays: list[Holiday]
    updated_at: dt.datetime | None
    """None while the schedule was never set."""


class WorkingHours(Schema):
    """The tenant's global schedule. Never set: no periods, which means always closed."""

    timezone: str
    periods: list[Period]
    holidays: list[Holiday]
    updated_at: dt.datetime | None


class DivisionWorkingHours(Schema):
    division_id: UUID
    timezone: str
    inherits_global: bool
    """True while the division has no override of its own."""
    override: Schedule | None
    effective: Schedule
    """The schedule that applies to the division: its override, else the global one."""


class TenantTimezone(Schema):
    timezone: str


class TenantTimezoneUpdate(Input):
    timezone: TimeZone


class WorkingHoursStatus(Schema):
    open: bool
    timezone: str
    now: dt.datetime
    next_open_at: dt.datetime | None
    """When it next opens (after the current opening hours if open now); None if not within 400 days."""
    next_close_at: dt.datetime | None
    """When it next closes (after the next opening if closed now); None if not within 400 days."""
