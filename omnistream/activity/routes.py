from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, get
from litestar.params import FromQuery, QueryParameter

from omnistream.activity import service
from omnistream.activity.schemas import ActivityLogList
from omnistream.kit.deps import DB, CurrentActor, Paging
from omnistream.kit.pagination import QueryDateTime
from omnistream.kit.schema import NO_NUL
from omnistream.security.guards import access


class ActivityLogController(Controller):
    path = "/api/activity-logs"
    tags = ["Activity Logs"]

    @get(operation_id="listActivityLogs", summary="List activity logs", opt=access("admin", "activity_logs.read"))
    async def list_activity_logs(
        self,
        db: DB,
        actor: CurrentActor,
        params: Paging,
        actor_id: FromQuery[UUID | None] = None,
        action: Annotated[
            str | None,
            QueryParameter(
                max_length=100, pattern=NO_NUL, description="An action or its prefix, e.g. agent or agent.created"
            ),
        ] = None,
        object_type: Annotated[str | None, QueryParameter(max_length=100, pattern=NO_NUL)] = None,
        object_id: FromQuery[UUID | None] = None,
        created_from: QueryDateTime = None,
        created_to: QueryDateTime = None,
    ) -> ActivityLogList:
        return await service.list_logs(
            db,
            actor,
            params,
            actor_id=actor_id,
            action=action,
            object_type=object_type,
            object_id=object_id,
            created_from=created_from,
            created_to=created_to,
        )


CONTROLLERS = [ActivityLogController]
