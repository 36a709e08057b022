"""The permission catalogue and the built-in roles agent < supervisor < admin.

Every permission of spec/routes.tsv is here (a test checks it). A built-in role holds
each permission whose least-privileged endpoint that role may call, so the built-in
roles follow the spec's "minimum role" column exactly.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Literal


class RoleLevel(IntEnum):
    agent = 1
    supervisor = 2
    admin = 3


PERMISSIONS: dict[str, str] = {
    "activity_logs.read": "Read the tenant's activity log",
    "agents.read": "See agents and their status",
    "agents.manage": "Create, update and delete agents",
    "agents.status": "Set one's own online status",
    "ai_agents.manage": "Configure AI agents",
    "analytics.read": "Read analytics dashboards",
    "api_keys.own": "Create and revoke one's own API keys",
    "automation.manage": "Configure automation rules and inspect their runs",
    "billing.manage": "Manage the subscription, invoices and payment methods",
    "campaigns.manage": "Create and send campaigns",
    "contacts.read": "Read contacts",
    "contacts.write": "Update contacts",
    "conversations.read": "Read conversations and their messages",
    "conversations.write": "Change conversation status and tags",
    "conversations.assign": "Assign and transfer conversations",
    "conversations.manage": "Take over, bulk-change and expire conversations",
    "divisions.read": "See divisions",
    "divisions.manage": "Create and change divisions and their members",
    "integrations.manage": "Connect channels and their accounts",
    "media.read": "Download media",
    "media.write": "Upload media",
    "messages.send": "Send messages to contacts",
    "notes.write": "Write private notes",
    "quick_replies.read": "Use quick replies",
    "quick_replies.manage": "Create and change quick replies",
    "roles.manage": "Create and change roles",
    "sla.manage": "Configure SLA policies",
    "templates.read": "See WhatsApp templates",
    "templates.manage": "Create and sync WhatsApp templates",
    "webhooks.manage": "Configure outgoing webhooks",
    "working_hours.read": "See working hours",
    "working_hours.manage": "Change working hours and the tenant time zone",
}

PermissionName = Literal[tuple(PERMISSIONS)]  # type: ignore[valid-type]
"""One of the permissions above, as a request names it."""

_LEAST_ROLE: dict[str, RoleLevel] = {
    "agents.read": RoleLevel.agent,
    "agents.status": RoleLevel.agent,
    "api_keys.own": RoleLevel.agent,
    "contacts.read": RoleLevel.agent,
    "contacts.write": RoleLevel.agent,
    "conversations.read": RoleLevel.agent,
    "conversations.write": RoleLevel.agent,
    "conversations.assign": RoleLevel.agent,
    "divisions.read": RoleLevel.agent,
    "media.read": RoleLevel.agent,
    "media.write": RoleLevel.agent,
    "messages.send": RoleLevel.agent,
    "notes.write": RoleLevel.agent,
    "quick_replies.read": RoleLevel.agent,
    "templates.read": RoleLevel.agent,
    "working_hours.read": RoleLevel.agent,
    "ai_agents.manage": RoleLevel.supervisor,
    "analytics.read": RoleLevel.supervisor,
    "automation.manage": RoleLevel.supervisor,
    "campaigns.manage": RoleLevel.supervisor,
    "conversations.manage": RoleLevel.supervisor,
    "quick_replies.manage": RoleLevel.supervisor,
    "sla.manage": RoleLevel.supervisor,
}

BUILTIN_PERMISSIONS: dict[RoleLevel, frozenset[str]] = {
    level: frozenset(p for p in PERMISSIONS if _LEAST_ROLE.get(p, RoleLevel.admin) <= level) for level in RoleLevel
}


def role_permissions(base_role: str, is_builtin: bool, stored: list[str] | None) -> frozenset[str]:
    if is_builtin:
        return BUILTIN_PERMISSIONS[RoleLevel[base_role]]
    return frozenset(p for p in stored or () if p in PERMISSIONS)
