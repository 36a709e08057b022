"""Who is calling: an agent through a session or through one of their API keys, or the system
itself (automation acting for a tenant)."""

from __future__ import annotations

from uuid import UUID

from msgspec import Struct

from omnistream.security.permissions import PERMISSIONS, RoleLevel

SYSTEM = UUID(int=0)
"""The role id of the system actor, which holds no role row."""


class Actor(Struct, frozen=True, kw_only=True):
    user_id: UUID | None
    """None for the system actor (`Actor.automation`)."""
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

    @classmethod
    def automation(cls, tenant_id: UUID, request_id: str | None = None) -> Actor:
        """The tenant's automation: every right, no agent. What it changes is logged as the system's."""
        return cls(
            user_id=None,
            tenant_id=tenant_id,
            email="automation",
            name="Automation",
            role_id=SYSTEM,
            role_name="Automation",
            level=RoleLevel.admin,
            permissions=frozenset(PERMISSIONS),
            request_id=request_id,
        )

    @property
    def actor_type(self) -> str:
        if self.user_id is None:
            return "system"
        return "api_key" if self.api_key_id else "user"

    def can(self, permission: str) -> bool:
        return permission in self.permissions
