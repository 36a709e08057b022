from __future__ import annotations

from uuid import UUID

from litestar import Controller, get, post
from litestar.params import FromPath, JSONBody

from omnistream.conversations import service as conversations
from omnistream.kit.deps import DB, CurrentActor, Paging
from omnistream.security.guards import access
from omnistream.transfers import service
from omnistream.transfers.schemas import Transfer, TransferList, TransferRequest


class TransferController(Controller):
    path = "/api/conversations/{conversation_id:uuid}"
    tags = ["Transfers"]

    @post(
        "/transfer",
        operation_id="transferConversation",
        summary="Transfer a conversation",
        opt=access("agent", "conversations.assign"),
        status_code=201,
        description="Moves the conversation to an agent, a division, or an agent within a division, "
        "and records the transfer with its reason.",
    )
    async def transfer(
        self, db: DB, actor: CurrentActor, conversation_id: FromPath[UUID], data: JSONBody[TransferRequest]
    ) -> Transfer:
        return await conversations.transfer(db, actor, conversation_id, data)

    @get(
        "/transfers",
        operation_id="listTransfers",
        summary="List transfer history for a conversation",
        opt=access("agent", "conversations.read"),
    )
    async def list_transfers(
        self, db: DB, actor: CurrentActor, conversation_id: FromPath[UUID], params: Paging
    ) -> TransferList:
        return await service.list_transfers(db, actor, conversation_id, params)


CONTROLLERS = [TransferController]
