from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, delete, get, put
from litestar.params import FromPath, FromQuery, JSONBody, PathParameter

from omnistream.kit.deps import DB, CurrentActor
from omnistream.kit.schema import Message
from omnistream.security.guards import PUBLIC_RATE_LIMITED, access
from omnistream.working_hours import service
from omnistream.working_hours.schemas import (
    DivisionWorkingHours,
    TenantTimezone,
    TenantTimezoneUpdate,
    WorkingHours,
    WorkingHoursStatus,
    WorkingHoursUpdate,
)

READ = access("agent", "working_hours.read")
MANAGE = access("admin", "working_hours.manage")

_SCHEDULE_RULES = (
    "Periods are local wall-clock times in the tenant's time zone: weekday 0 = Monday, start HH:MM, "
    "end HH:MM after start (24:00 ends the day); periods of one day must not overlap. Holidays replace "
    "their date's weekday periods; a holiday without periods is closed all day."
)


class WorkingHoursController(Controller):
    path = "/api/working-hours"
    tags = ["Working Hours"]

    @get(operation_id="getWorkingHours", summary="List global working hours", opt=READ)
    async def get_working_hours(self, db: DB, actor: CurrentActor) -> WorkingHours:
        return await service.get_global(db, actor)

    @put(
        operation_id="putWorkingHours",
        summary="Upsert global working hours",
        opt=MANAGE,
        description="Replaces the whole schedule. " + _SCHEDULE_RULES,
    )
    async def put_working_hours(self, db: DB, actor: CurrentActor, data: JSONBody[WorkingHoursUpdate]) -> WorkingHours:
        return await service.put_global(db, actor, data)


class DivisionWorkingHoursController(Controller):
    path = "/api/divisions/{division_id:uuid}/working-hours"
    tags = ["Working Hours"]

    @get(
        operation_id="getDivisionWorkingHours",
        summary="List division working hours",
        opt=READ,
        description="The division's override (if any) and the schedule in effect for it.",
    )
    async def get_division_hours(
        self, db: DB, actor: CurrentActor, division_id: FromPath[UUID]
    ) -> DivisionWorkingHours:
        return await service.get_division(db, actor, division_id)

    @put(
        operation_id="putDivisionWorkingHours",
        summary="Upsert division working hours override",
        opt=MANAGE,
        description="Replaces the division's override. " + _SCHEDULE_RULES,
    )
    async def put_division_hours(
        self, db: DB, actor: CurrentActor, division_id: FromPath[UUID], data: JSONBody[WorkingHoursUpdate]
    ) -> DivisionWorkingHours:
        return await service.put_division(db, actor, division_id, data)

    @delete(
        operation_id="deleteDivisionWorkingHours",
        summary="Delete division working hours override",
        opt=MANAGE,
        status_code=200,
        description="The division goes back to the global schedule.",
    )
    async def delete_division_hours(self, db: DB, actor: CurrentActor, division_id: FromPath[UUID]) -> Message:
        await service.delete_division(db, actor, division_id)
        return Message(message="division working hours override deleted", id=str(division_id))


class TenantTimezoneController(Controller):
    path = "/api/tenant/timezone"
    tags = ["Working Hours"]

    @get(operation_id="getTenantTimezone", summary="Get tenant timezone", opt=READ)
    async def get_timezone(self, db: DB, actor: CurrentActor) -> TenantTimezone:
        return await service.get_timezone(db, actor)

    @put(
        operation_id="putTenantTimezone",
        summary="Update tenant timezone",
        opt=MANAGE,
        description="An IANA time zone name such as Europe/Berlin; working hours are read in it.",
    )
    async def put_timezone(self, db: DB, actor: CurrentActor, data: JSONBody[TenantTimezoneUpdate]) -> TenantTimezone:
        return await service.set_timezone(db, actor, data)


class PublicWorkingHoursController(Controller):
    path = "/api/public/working-hours"
    tags = ["Working Hours"]

    @get(
        "/{tenant_slug:str}",
        operation_id="getPublicWorkingHoursStatus",
        summary="Check working hours status (public)",
        opt=PUBLIC_RATE_LIMITED,
        description="No authentication. Whether the organisation (or one of its divisions) is open now, "
        "and when it next opens and closes (RFC 3339, UTC; null when not within 400 days).",
    )
    async def public_status(
        self,
        db: DB,
        tenant_slug: Annotated[str, PathParameter(min_length=1, max_length=63)],
        division_id: FromQuery[UUID | None] = None,
    ) -> WorkingHoursStatus:
        return await service.public_status(db, tenant_slug, division_id)


CONTROLLERS = [
    WorkingHoursController,
    DivisionWorkingHoursController,
    TenantTimezoneController,
    PublicWorkingHoursController,
]
