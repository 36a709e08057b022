"""Working hours: the tenant's weekly schedule, divisions' overrides and the time zone they are read in."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg

from omnistream.activity import service as activity
from omnistream.db import Database
from omnistream.divisions import service as divisions
from omnistream.errors import Unprocessable, not_found
from omnistream.security.principal import Actor
from omnistream.tenants import service as tenants
from omnistream.working_hours import repository, schedule
from omnistream.working_hours.schemas import (
    DivisionWorkingHours,
    Holiday,
    Period,
    Schedule,
    TenantTimezone,
    TenantTimezoneUpdate,
    TimeRange,
    WorkingHours,
    WorkingHoursStatus,
    WorkingHoursUpdate,
)

# ---------------------------------------------------------------- validation and compilation


def _check_day(ranges: Sequence[TimeRange | Period], field: str, indexes: Sequence[int]) -> None:
    """Each range ends after it starts; ranges of one day do not overlap (touching is fine)."""
    previous: tuple[int, int, int] | None = None  # (start, end, index)
    spans = sorted(
        ((schedule.parse_clock(r.start), schedule.parse_clock(r.end), i) for r, i in zip(ranges, indexes, strict=True)),
    )
    for start, end, i in spans:
        if end <= start:
            raise Unprocessable(f"end ({schedule.format_clock(end)}) must be after start", field=f"{field}[{i}].end")
        if previous is not None and start < previous[1]:
            raise Unprocessable(
                f"overlaps {field}[{previous[2]}] "
                f"({schedule.format_clock(previous[0])}-{schedule.format_clock(previous[1])})",
                field=f"{field}[{i}]",
            )
        previous = (start, end, i)


def _normalised(data: WorkingHoursUpdate) -> tuple[list[Period], list[Holiday]]:
    """Validate a schedule and return it in a stable order (by weekday and start; by date)."""
    for weekday in range(7):
        indexes = [i for i, p in enumerate(data.periods) if p.weekday == weekday]
        _check_day([data.periods[i] for i in indexes], "periods", indexes)
    seen: dict[dt.date, int] = {}
    for h, holiday in enumerate(data.holidays):
        if holiday.date in seen:
            raise Unprocessable(
                f"{holiday.date.isoformat()} is already holidays[{seen[holiday.date]}]", field=f"holidays[{h}].date"
            )
        seen[holiday.date] = h
        _check_day(holiday.periods, f"holidays[{h}].periods", range(len(holiday.periods)))
    periods = sorted(data.periods, key=lambda p: (p.weekday, p.start))
    holidays = [
        Holiday(date=h.date, name=h.name.strip(), periods=sorted(h.periods, key=lambda r: r.start))
        for h in sorted(data.holidays, key=lambda h: h.date)
    ]
    return periods, holidays


def compile_schedule(periods: Sequence[Period], holidays: Sequence[Holiday]) -> schedule.Schedule:
    return schedule.Schedule.build(
        ((p.weekday, schedule.parse_clock(p.start), schedule.parse_clock(p.end)) for p in periods),
        {h.date: [(schedule.parse_clock(r.start), schedule.parse_clock(r.end)) for r in h.periods] for h in holidays},
    )


_NEVER_SET = Schedule(periods=[], holidays=[], updated_at=None)


def _as_logged(periods: list[Period], holidays: list[Holiday]) -> dict[str, int]:
    return {"periods": len(periods), "holidays": len(holidays)}


# ---------------------------------------------------------------- for other areas (caller's transaction)


async def calendar(
    conn: asyncpg.Connection, tenant_id: UUID, division_id: UUID | None
) -> tuple[schedule.Schedule, ZoneInfo]:
    """The hours in effect for the division (its override, else the global schedule), and the zone they are read in."""
    timezone = await tenants.get_timezone(conn, tenant_id)
    periods, holidays = await repository.get_effective(conn, tenant_id, division_id)
    return compile_schedule(periods, holidays), ZoneInfo(timezone)


async def is_open(conn: asyncpg.Connection, tenant_id: UUID, division_id: UUID | None, at: dt.datetime) -> bool:
    """Whether the division (its override, else the global schedule) or the tenant is open at `at`."""
    hours, zone = await calendar(conn, tenant_id, division_id)
    return schedule.is_open(hours, zone, at)


# ---------------------------------------------------------------- the API


async def get_global(db: Database, actor: Actor) -> WorkingHours:
    async with db.read(actor.tenant_id) as conn:
        timezone = await tenants.get_timezone(conn, actor.tenant_id)
        stored, _ = await repository.get_schedules(conn, actor.tenant_id, None)
    stored = stored or _NEVER_SET
    return WorkingHours(
        timezone=timezone, periods=stored.periods, holidays=stored.holidays, updated_at=stored.updated_at
    )


async def put_global(db: Database, actor: Actor, data: WorkingHoursUpdate) -> WorkingHours:
    periods, holidays = _normalised(data)
    async with db.tenant(actor.tenant_id) as conn:
        timezone = await tenants.get_timezone(conn, actor.tenant_id)
        stored = await repository.upsert(
            conn, actor.tenant_id, None, periods=periods, holidays=holidays, updated_by=actor.user_id
        )
        await activity.record(
            conn, actor, "working_hours.updated", "working_hours", None, **_as_logged(periods, holidays)
        )
    return WorkingHours(
        timezone=timezone, periods=stored.periods, holidays=stored.holidays, updated_at=stored.updated_at
    )


async def _division_view(conn: asyncpg.Connection, tenant_id: UUID, division_id: UUID) -> DivisionWorkingHours:
    timezone = await tenants.get_timezone(conn, tenant_id)
    global_schedule, override = await repository.get_schedules(conn, tenant_id, division_id)
    return DivisionWorkingHours(
        division_id=division_id,
        timezone=timezone,
        inherits_global=override is None,
        override=override,
        effective=override or global_schedule or _NEVER_SET,
    )


async def _require_division(conn: asyncpg.Connection, tenant_id: UUID, division_id: UUID) -> None:
    if not await divisions.exists(conn, tenant_id, division_id):
        raise not_found("division")


async def get_division(db: Database, actor: Actor, division_id: UUID) -> DivisionWorkingHours:
    async with db.read(actor.tenant_id) as conn:
        await _require_division(conn, actor.tenant_id, division_id)
        return await _division_view(conn, actor.tenant_id, division_id)


async def put_division(db: Database, actor: Actor, division_id: UUID, data: WorkingHoursUpdate) -> DivisionWorkingHours:
    periods, holidays = _normalised(data)
    async with db.tenant(actor.tenant_id) as conn:
        await _require_division(conn, actor.tenant_id, division_id)
        try:
            await repository.upsert(
                conn, actor.tenant_id, division_id, periods=periods, holidays=holidays, updated_by=actor.user_id
            )
        except asyncpg.ForeignKeyViolationError as exc:  # the division was deleted meanwhile
            raise not_found("division") from exc
        await activity.record(
            conn, actor, "working_hours.updated", "division", division_id, **_as_logged(periods, holidays)
        )
        return await _division_view(conn, actor.tenant_id, division_id)


async def delete_division(db: Database, actor: Actor, division_id: UUID) -> None:
    async with db.tenant(actor.tenant_id) as conn:
        await _require_division(conn, actor.tenant_id, division_id)
        if not await repository.delete_division_override(conn, actor.tenant_id, division_id):
            raise not_found("working hours override")
        await activity.record(conn, actor, "working_hours.override_deleted", "division", division_id)


async def get_timezone(db: Database, actor: Actor) -> TenantTimezone:
    async with db.read(actor.tenant_id) as conn:
        return TenantTimezone(timezone=await tenants.get_timezone(conn, actor.tenant_id))


async def set_timezone(db: Database, actor: Actor, data: TenantTimezoneUpdate) -> TenantTimezone:
    async with db.tenant(actor.tenant_id) as conn:
        previous = await tenants.get_timezone(conn, actor.tenant_id)
        await tenants.set_timezone(conn, actor.tenant_id, data.timezone)
        await activity.record(
            conn, actor, "tenant.timezone_changed", "tenant", actor.tenant_id, timezone=data.timezone, previous=previous
        )
    return TenantTimezone(timezone=data.timezone)


async def public_status(
    db: Database, tenant_slug: str, division_id: UUID | None, now: dt.datetime | None = None
) -> WorkingHoursStatus:
    """Open or closed right now, for a website widget: needs only the tenant's slug."""
    now = now or dt.datetime.now(dt.UTC)
    if not re.fullmatch(tenants.SLUG_PATTERN, tenant_slug, re.IGNORECASE):
        raise not_found("organisation")  # no slug looks like that, so no organisation has it
    async with db.anonymous() as conn:
        tenant_id = await tenants.id_by_slug(conn, tenant_slug)
    if tenant_id is None:
        raise not_found("organisation")
    async with db.tenant(tenant_id) as conn:
        if division_id is not None:
            await _require_division(conn, tenant_id, division_id)
        timezone = await tenants.get_timezone(conn, tenant_id)
        periods, holidays = await repository.get_effective(conn, tenant_id, division_id)
    state = schedule.status(compile_schedule(periods, holidays), ZoneInfo(timezone), now)
    return WorkingHoursStatus(
        open=state.open,
        timezone=timezone,
        now=now,
        next_open_at=state.next_open_at,
        next_close_at=state.next_close_at,
    )
