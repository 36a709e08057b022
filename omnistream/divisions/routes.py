from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, delete, get, patch, post
from litestar.params import FromPath, JSONBody, QueryParameter

from omnistream.divisions import service
from omnistream.divisions.schemas import (
    DivisionAgentIds,
    DivisionAgentList,
    DivisionCreate,
    DivisionList,
    DivisionUpdate,
    DivisionWithAgents,
)
from omnistream.kit.deps import DB, CurrentActor, Paging
from omnistream.kit.schema import NO_NUL, Message
from omnistream.security.guards import access

DIVISIONS_READ = access("agent", "divisions.read")
DIVISIONS_MANAGE = access("admin", "divisions.manage")


class DivisionController(Controller):
    path = "/api/divisions"
    tags = ["Divisions"]

    @get(operation_id="listDivisions", summary="List divisions", opt=DIVISIONS_READ)
    async def list_divisions(
        self,
        db: DB,
        actor: CurrentActor,
        params: Paging,
        q: Annotated[
            str | None, QueryParameter(max_length=200, pattern=NO_NUL, description="Part of a name or description")
        ] = None,
    ) -> DivisionList:
        return await service.list_divisions(db, actor, params, q=q)

    @post(operation_id="createDivision", summary="Create a division", opt=DIVISIONS_MANAGE)
    async def create_division(self, db: DB, actor: CurrentActor, data: JSONBody[DivisionCreate]) -> DivisionWithAgents:
        return await service.create_division(db, actor, data)

    @get(
        "/{division_id:uuid}",
        operation_id="getDivision",
        summary="Get a division with agents",
        opt=DIVISIONS_READ,
    )
    async def get_division(self, db: DB, actor: CurrentActor, division_id: FromPath[UUID]) -> DivisionWithAgents:
        return await service.get_division(db, actor, division_id)

    @patch("/{division_id:uuid}", operation_id="updateDivision", summary="Update a division", opt=DIVISIONS_MANAGE)
    async def update_division(
        self, db: DB, actor: CurrentActor, division_id: FromPath[UUID], data: JSONBody[DivisionUpdate]
    ) -> DivisionWithAgents:
        return await service.update_division(db, actor, division_id, data)

    @delete(
        "/{division_id:uuid}",
        operation_id="deleteDivision",
        summary="Delete a division",
        opt=DIVISIONS_MANAGE,
        status_code=200,
    )
    async def delete_division(self, db: DB, actor: CurrentActor, division_id: FromPath[UUID]) -> Message:
        await service.delete_division(db, actor, division_id)
        return Message(message="division deleted", id=str(division_id))

    @get(
        "/{division_id:uuid}/agents",
        operation_id="listDivisionAgents",
        summary="List agents in a division",
        opt=DIVISIONS_READ,
    )
    async def list_division_agents(
        self,
        db: DB,
        actor: CurrentActor,
        division_id: FromPath[UUID],
        params: Paging,
        q: Annotated[
            str | None, QueryParameter(max_length=200, pattern=NO_NUL, description="Part of a name or email")
        ] = None,
    ) -> DivisionAgentList:
        return await service.list_division_agents(db, actor, division_id, params, q=q)

    @post(
        "/{division_id:uuid}/agents",
        operation_id="addDivisionAgents",
        summary="Assign agents to a division",
        opt=DIVISIONS_MANAGE,
        status_code=200,
    )
    async def add_division_agents(
        self, db: DB, actor: CurrentActor, division_id: FromPath[UUID], data: JSONBody[DivisionAgentIds]
    ) -> DivisionWithAgents:
        return await service.add_agents(db, actor, division_id, data)

    @delete(
        "/{division_id:uuid}/agents",
        operation_id="removeDivisionAgents",
        summary="Remove agents from a division",
        opt=DIVISIONS_MANAGE,
        status_code=200,
    )
    async def remove_division_agents(
        self, db: DB, actor: CurrentActor, division_id: FromPath[UUID], data: JSONBody[DivisionAgentIds]
    ) -> DivisionWithAgents:
        return await service.remove_agents(db, actor, division_id, data)


CONTROLLERS = [DivisionController]
