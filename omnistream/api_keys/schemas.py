from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

from omnistream.kit.schema import AwareDateTime, Input, Name, Schema
from omnistream.security.permissions import PermissionName


class ApiKey(Schema):
    id: UUID
    name: str
    prefix: str
    scopes: list[str] | None
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime


class ApiKeyCreated(ApiKey):
    key: str
    """The full key. It is shown this once and cannot be recovered: store it now."""


class ApiKeyCreate(Input):
    name: Name
    scopes: Annotated[list[PermissionName], msgspec.Meta(max_length=100)] | None = None
    """Permissions the key may use, a subset of yours; omitted means all of yours, now and later."""
    expires_at: AwareDateTime | None = None


class ApiKeyList(Schema):
    api_keys: list[ApiKey]
    next_cursor: str | None
    total: int
