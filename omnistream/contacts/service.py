"""Contacts: the customers, each reachable through one or more channel identities."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from omnistream.activity import service as activity
from omnistream.contacts import repository
from omnistream.contacts.schemas import Contact, ContactList, ContactUpdate
from omnistream.db import Database
from omnistream.errors import not_found
from omnistream.kit.pagination import ListParams, date_range, page_of
from omnistream.security.principal import Actor


def normalize_tags(tags: list[str]) -> list[str]:
    """Trimmed, lower-case, de-duplicated, in first-seen order."""
    return list(dict.fromkeys(t.strip().lower() for t in tags if t.strip()))


async def list_contacts(db: Database, actor: Actor, params: ListParams, **filters: Any) -> ContactList:
    filters["created_from"], filters["created_to"] = date_range(filters.get("created_from"), filters.get("created_to"))
    if filters.get("tag"):
        filters["tag"] = filters["tag"].strip().lower()
    async with db.read(actor.tenant_id) as conn:
        rows, total = await repository.list_page(conn, actor.tenant_id, params, filters)
    rows, next_cursor = page_of(rows, params)
    return ContactList(contacts=rows, next_cursor=next_cursor, total=total)


async def get_contact(db: Database, actor: Actor, contact_id: UUID) -> Contact:
    async with db.read(actor.tenant_id) as conn:
        contact = await repository.get(conn, actor.tenant_id, contact_id)
    if contact is None:
        raise not_found("contact")
    return contact


async def update_contact(db: Database, actor: Actor, contact_id: UUID, data: ContactUpdate) -> Contact:
    changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
    if not changes:
        return await get_contact(db, actor, contact_id)  # nothing to change, so nothing to log
    values: dict[str, Any] = {
        "name": changes["name"].strip() if "name" in changes else None,
        "set_phone": "phone" in changes,
        "phone": changes.get("phone"),
        "set_email": "email" in changes,
        "email": changes["email"].lower() if changes.get("email") else None,
        "tags": normalize_tags(changes["tags"]) if "tags" in changes else None,
        "custom_attributes": changes.get("custom_attributes"),
    }
    async with db.tenant(actor.tenant_id) as conn:
        if not await repository.update(conn, actor.tenant_id, contact_id, **values):
            raise not_found("contact")
        await activity.record(conn, actor, "contact.updated", "contact", contact_id, changes=changes)
        contact = await repository.get(conn, actor.tenant_id, contact_id)
    assert contact is not None
    return contact


async def get_in(conn: asyncpg.Connection, tenant_id: UUID, contact_id: UUID) -> Contact | None:
    """A contact of the tenant, inside the caller's transaction (for other areas)."""
    return await repository.get(conn, tenant_id, contact_id)
