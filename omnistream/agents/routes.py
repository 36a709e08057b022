from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from omnistream.agents import service
from omnistream.agents.schemas import (
    Agent,
    AgentCreate,
    AgentList,
    AgentStatus,
    AgentStatusUpdate,
    AgentUpdate,
    OnlineStatus,
)
from omnistream.kit.deps import DB, CurrentActor, Paging
from omnistream.kit.schema import NO_NUL, Message
from omnistream.security.guards import access

AGENTS_MANAGE = access("admin", "agents.manage")


class AgentController(Controller):
    path = "/api/agents"
    tags = ["Agents"]

    @get(operation_id="listAgents", summary="List all agents", opt=access("agent", "agents.read"))
    async def list_agents(
        self,
        db: DB,
        actor: CurrentActor,
        params: Paging,
        status: FromQuery[AgentStatus | None] = None,
        online_status: FromQuery[OnlineStatus | None] = None,
        role_id: FromQuery[UUID | None] = None,
        q: Annotated[
            str | None, QueryParameter(max_length=200, pattern=NO_NUL, description="Part of a name or email")
        ] = None,
    ) -> AgentList:
        return await service.list_agents(
            db, actor, params, status=status, online_status=online_status, role_id=role_id, q=q
        )

    @post(operation_id="createAgent", summary="Create a new agent", opt=AGENTS_MANAGE)
    async def create_agent(self, db: DB, actor: CurrentActor, data: JSONBody[AgentCreate]) -> Agent:
        return await service.create_agent(db, actor, data)

    @get("/{agent_id:uuid}", operation_id="getAgent", summary="Get an agent by ID", opt=access("agent", "agents.read"))
    async def get_agent(self, db: DB, actor: CurrentActor, agent_id: FromPath[UUID]) -> Agent:
        return await service.get_agent(db, actor, agent_id)

    @patch("/{agent_id:uuid}", operation_id="updateAgent", summary="Update an agent", opt=AGENTS_MANAGE)
    async def update_agent(
        self, db: DB, actor: CurrentActor, agent_id: FromPath[UUID], data: JSONBody[AgentUpdate]
    ) -> Agent:
        return await service.update_agent(db, actor, agent_id, data)

    @delete(
        "/{agent_id:uuid}", operation_id="deleteAgent", summary="Delete an agent", opt=AGENTS_MANAGE, status_code=200
    )
    async def delete_agent(self, db: DB, actor: CurrentActor, agent_id: FromPath[UUID]) -> Message:
        await service.delete_agent(db, actor, agent_id)
        return Message(message="agent deleted", id=str(agent_id))

    @patch(
        "/{agent_id:uuid}/status",
        operation_id="setAgentStatus",
        summary="Toggle agent online/offline status",
        opt=access("agent", "agents.status"),
    )
    async def set_status(
        self, db: DB, actor: CurrentActor, agent_id: FromPath[UUID], data: JSONBody[AgentStatusUpdate]
    ) -> Agent:
        return await service.set_online_status(db, actor, agent_id, data)


CONTROLLERS = [AgentController]
