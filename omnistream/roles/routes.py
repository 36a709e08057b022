from __future__ import annotations

from uuid import UUID

from litestar import Controller, delete, get, patch, post
from litestar.params import FromPath, JSONBody

from omnistream.kit.deps import DB, CurrentActor
from omnistream.kit.schema import Message
from omnistream.roles import service
from omnistream.roles.schemas import PermissionList, Role, RoleCreate, RoleList, RoleUpdate
from omnistream.security.guards import access

ROLES_MANAGE = access("admin", "roles.manage")


class RoleController(Controller):
    path = "/api/roles"
    tags = ["Roles"]

    @get(operation_id="listRoles", summary="List all roles with permissions", opt=ROLES_MANAGE)
    async def list_roles(self, db: DB, actor: CurrentActor) -> RoleList:
        return await service.list_roles(db, actor)

    @post(operation_id="createRole", summary="Create a custom role", opt=ROLES_MANAGE)
    async def create_role(self, db: DB, actor: CurrentActor, data: JSONBody[RoleCreate]) -> Role:
        return await service.create_role(db, actor, data)

    @get("/{role_id:uuid}", operation_id="getRole", summary="Get a single role with permissions", opt=ROLES_MANAGE)
    async def get_role(self, db: DB, actor: CurrentActor, role_id: FromPath[UUID]) -> Role:
        return await service.get_role(db, actor, role_id)

    @patch("/{role_id:uuid}", operation_id="updateRole", summary="Update a role", opt=ROLES_MANAGE)
    async def update_role(
        self, db: DB, actor: CurrentActor, role_id: FromPath[UUID], data: JSONBody[RoleUpdate]
    ) -> Role:
        return await service.update_role(db, actor, role_id, data)

    @delete(
        "/{role_id:uuid}", operation_id="deleteRole", summary="Delete a custom role", opt=ROLES_MANAGE, status_code=200
    )
    async def delete_role(self, db: DB, actor: CurrentActor, role_id: FromPath[UUID]) -> Message:
        await service.delete_role(db, actor, role_id)
        return Message(message="role deleted", id=str(role_id))


class PermissionController(Controller):
    path = "/api/permissions"
    tags = ["Roles"]

    @get(operation_id="listPermissions", summary="List all available permissions", opt=ROLES_MANAGE)
    async def list_permissions(self) -> PermissionList:
        return service.permission_catalogue()


CONTROLLERS = [RoleController, PermissionController]
