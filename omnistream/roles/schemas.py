from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from omnistream.kit.schema import Input, Name, Schema, Text
from omnistream.security.permissions import PermissionName

BaseRole = Literal["agent", "supervisor", "admin"]


class Role(Schema):
    id: UUID
    name: str
    description: str
    base_role: BaseRole
    is_builtin: bool
    permissions: list[str]
    agent_count: int
    created_at: datetime
    updated_at: datetime


class RoleCreate(Input):
    name: Name
    description: Text = ""
    base_role: BaseRole = "agent"
    """The role level for endpoints with a minimum role: a custom role acts at this level."""
    permissions: Annotated[list[PermissionName], msgspec.Meta(max_length=100)] = []


class RoleUpdate(Input):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    description: Text | msgspec.UnsetType = msgspec.UNSET
    base_role: BaseRole | msgspec.UnsetType = msgspec.UNSET
    permissions: Annotated[list[PermissionName], msgspec.Meta(max_length=100)] | msgspec.UnsetType = msgspec.UNSET


class RoleList(Schema):
    roles: list[Role]
    next_cursor: str | None
    total: int


class Permission(Schema):
    name: str
    description: str
    builtin_roles: list[BaseRole]


class PermissionList(Schema):
    permissions: list[Permission]
    next_cursor: str | None
    total: int
