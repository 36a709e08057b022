from __future__ import annotations

from uuid import UUID

from litestar import Controller, delete, get, post
from litestar.params import FromPath, FromQuery, JSONBody

from omnistream.api_keys import service
from omnistream.api_keys.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyList
from omnistream.kit.deps import DB, CurrentActor
from omnistream.kit.schema import Message
from omnistream.security.guards import access

OWN_KEYS = access("agent", "api_keys.own")


class ApiKeyController(Controller):
    path = "/api/api-keys"
    tags = ["API Keys"]

    @get(operation_id="listApiKeys", summary="List caller's API keys", opt=OWN_KEYS)
    async def list_keys(self, db: DB, actor: CurrentActor, include_revoked: FromQuery[bool] = False) -> ApiKeyList:
        return await service.list_keys(db, actor, include_revoked)

    @post(
        operation_id="createApiKey",
        summary="Create a new API key",
        opt=OWN_KEYS,
        description="The response carries the key once; only its prefix and a hash are stored.",
    )
    async def create_key(self, db: DB, actor: CurrentActor, data: JSONBody[ApiKeyCreate]) -> ApiKeyCreated:
        return await service.create_key(db, actor, data)

    @delete("/{key_id:uuid}", operation_id="revokeApiKey", summary="Revoke an API key", opt=OWN_KEYS, status_code=200)
    async def revoke_key(self, db: DB, actor: CurrentActor, key_id: FromPath[UUID]) -> Message:
        await service.revoke_key(db, actor, key_id)
        return Message(message="API key revoked", id=str(key_id))


CONTROLLERS = [ApiKeyController]
