"""Who is calling: an agent through a session or through one of their API keys."""

from __future__ import annotations

from uuid import UUID

from msgspec import Struct

from omnistream.security.permissions import RoleLevel


class Actor(Struct, frozen=True, kw_only=True):
    user_id: UUID
    tenant_id: UUID
    email: str
    name: str
    role_id: UUID
    role_name: str
    level: RoleLevel
    permissions: frozenset[str]
    session_id: UUID | None = None
    api_key_id: UUID | None = None
    ip: str | None = None
    request_id: str | None = None

    @property
    def actor_type(self) -> str:
        return "api_key" if self.api_key_id else "user"

    def can(self, permission: str) -> bool:
        return permission in self.permissions
