from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from omnistream.kit.deps import DB, CurrentActor, Paging
from omnistream.kit.pagination import QueryDateTime
from omnistream.kit.schema import Message
from omnistream.security.guards import access
from omnistream.sla import service
from omnistream.sla.schemas import (
    ConversationSla,
    SlaBreachList,
    SlaPolicy,
    SlaPolicyCreate,
    SlaPolicyList,
    SlaPolicyUpdate,
    TargetName,
)

SLA_READ = access("supervisor", "sla.manage")
SLA_MANAGE = access("admin", "sla.manage")
CONVERSATION_READ = access("agent", "conversations.read")
_MATCHING = (
    "The first enabled policy (by position, then age) whose conditions a conversation meets applies; an empty "
    "condition list matches any. Targets are minutes, counted in the open hours of the conversation's division "
    "when business_hours is true."
)


class SlaPolicyController(Controller):
    path = "/api/sla-policies"
    tags = ["SLA"]

    @get(operation_id="listSlaPolicies", summary="List SLA policies", opt=SLA_READ, description=_MATCHING)
    async def list_policies(
        self,
        db: DB,
        actor: CurrentActor,
        enabled: Annotated[bool | None, QueryParameter(description="Only enabled (or only disabled) policies")] = None,
    ) -> SlaPolicyList:
        return await service.list_policies(db, actor, enabled=enabled)

    @post(
        operation_id="createSlaPolicy",
        summary="Create an SLA policy",
        opt=SLA_MANAGE,
        description=f"At least one target; division ids must name this organisation's divisions (422); at most "
        f"{service.MAX_POLICIES} policies. " + _MATCHING,
    )
    async def create_policy(self, db: DB, actor: CurrentActor, data: JSONBody[SlaPolicyCreate]) -> SlaPolicy:
        return await service.create_policy(db, actor, data)

    @patch(
        "/{policy_id:uuid}",
        operation_id="updateSlaPolicy",
        summary="Update an SLA policy",
        opt=SLA_MANAGE,
        description="Only the fields given change; targets and conditions are replaced whole. A change reaches a "
        "conversation with its next event, and re-times its running clocks only when it changes which policy "
        "applies to it.",
    )
    async def update_policy(
        self, db: DB, actor: CurrentActor, policy_id: FromPath[UUID], data: JSONBody[SlaPolicyUpdate]
    ) -> SlaPolicy:
        return await service.update_policy(db, actor, policy_id, data)

    @delete(
        "/{policy_id:uuid}",
        operation_id="deleteSlaPolicy",
        summary="Delete an SLA policy",
        opt=SLA_MANAGE,
        status_code=200,
        description="Its clocks and recorded breaches go with it.",
    )
    async def delete_policy(self, db: DB, actor: CurrentActor, policy_id: FromPath[UUID]) -> Message:
        await service.delete_policy(db, actor, policy_id)
        return Message(message="SLA policy deleted", id=str(policy_id))

    @get(
        "/{policy_id:uuid}/breaches",
        operation_id="listSlaBreaches",
        summary="List SLA breaches for a policy",
        opt=SLA_READ,
        description="Newest breach first by default; the cursor continues by breach time.",
    )
    async def list_breaches(
        self,
        db: DB,
        actor: CurrentActor,
        params: Paging,
        policy_id: FromPath[UUID],
        target: Annotated[TargetName | None, QueryParameter(description="Only breaches of this target")] = None,
        conversation_id: FromQuery[UUID | None] = None,
        breached_from: QueryDateTime = None,
        breached_to: QueryDateTime = None,
    ) -> SlaBreachList:
        return await service.list_breaches(
            db,
            actor,
            policy_id,
            params,
            target=target,
            conversation_id=conversation_id,
            breached_from=breached_from,
            breached_to=breached_to,
        )


class ConversationSlaController(Controller):
    path = "/api/conversations/{conversation_id:uuid}/sla"
    tags = ["SLA"]

    @get(
        operation_id="getConversationSla",
        summary="Get SLA status for a conversation",
        opt=CONVERSATION_READ,
        description="The policy applying and every clock the conversation had: due, met, breached, paused or "
        "stopped, with the seconds left (negative when late).",
    )
    async def get_conversation_sla(
        self, db: DB, actor: CurrentActor, conversation_id: FromPath[UUID]
    ) -> ConversationSla:
        return await service.conversation_sla(db, actor, conversation_id)


CONTROLLERS = [SlaPolicyController, ConversationSlaController]
