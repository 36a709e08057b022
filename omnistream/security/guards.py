"""Route access: each handler declares its minimum role and permission (spec/routes.tsv)."""

from __future__ import annotations

from typing import Any, Literal

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from omnistream.errors import Forbidden
from omnistream.security.permissions import PERMISSIONS, RoleLevel
from omnistream.security.principal import Actor

MinRole = Literal["agent", "supervisor", "admin"]


def access(min_role: MinRole, permission: str | None = None) -> dict[str, Any]:
    """`opt` for a handler: who may call it. Checked by `authorize` on every request."""
    if permission is not None and permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")
    return {"min_role": min_role, "permission": permission}


PUBLIC: dict[str, Any] = {"exclude_from_auth": True, "public": True}
NOT_RATE_LIMITED = "not_rate_limited"
PUBLIC_RATE_LIMITED: dict[str, Any] = {**PUBLIC, NOT_RATE_LIMITED: False}
"""Open to anyone, and so limited per client address (OMNISTREAM_PUBLIC_REQUESTS_PER_MINUTE)."""


async def authorize(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    opt = handler.opt
    if opt.get("public") or connection.scope.get("method") == "OPTIONS":
        return  # OPTIONS is Litestar's own reply listing the allowed methods (and CORS preflight)
    if "min_role" not in opt:
        # A handler that forgot to declare its access is closed, not open.
        raise Forbidden("this endpoint declares no access rule")
    actor: Actor = connection.user
    if actor.level < RoleLevel[opt["min_role"]]:
        raise Forbidden(f"this action needs the {opt['min_role']} role or higher")
    permission = opt.get("permission")
    if permission and not actor.can(permission):
        raise Forbidden(f"this action needs the {permission} permission")
