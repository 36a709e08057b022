from __future__ import annotations

from litestar import Controller, get, put
from litestar.params import FromPath, JSONBody

from omnistream.chat_expiration import service
from omnistream.chat_expiration.schemas import (
    Channel,
    ChatExpirationRule,
    ChatExpirationRuleList,
    ChatExpirationRuleUpdate,
)
from omnistream.kit.deps import DB, CurrentActor
from omnistream.security.guards import access


class ChatExpirationController(Controller):
    path = "/api/chat-expiration-rules"
    tags = ["Chat Expiration"]

    @get(
        operation_id="listChatExpirationRules",
        summary="List chat expiration rules",
        opt=access("supervisor", "conversations.manage"),
        description="The channels with a rule; a channel without one never expires conversations.",
    )
    async def list_rules(self, db: DB, actor: CurrentActor) -> ChatExpirationRuleList:
        return await service.list_rules(db, actor)

    @put(
        "/{channel:str}",
        operation_id="upsertChatExpirationRule",
        summary="Upsert a chat expiration rule for a channel",
        opt=access("admin", "conversations.manage"),
        description="Channel: whatsapp, messenger, instagram or email. Conversations of the channel in one "
        "of `statuses` (open and pending by default) expire after `inactivity_minutes` without activity.",
    )
    async def upsert_rule(
        self, db: DB, actor: CurrentActor, channel: FromPath[Channel], data: JSONBody[ChatExpirationRuleUpdate]
    ) -> ChatExpirationRule:
        return await service.upsert_rule(db, actor, channel, data)


CONTROLLERS = [ChatExpirationController]
