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
        "opted_out": changes.get("opted_out"),
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


# ---------------------------------------------------------------- for campaigns (caller's transaction)

REACHABLE_BATCH = 1000


async def reachable_ids(
    conn: asyncpg.Connection,
    tenant_id: UUID,
    channel: str,
    *,
    ids: list[UUID] | None = None,
    tags: list[str] | None = None,
    written_on: str | None = None,
    limit: int,
) -> list[UUID]:
    """The contacts (of `ids`, or having all of `tags` and, with `written_on`, an identity on that
    channel) that a message on `channel` can reach, in creation order, at most `limit`, read a
    batch at a time."""
    found: list[UUID] = []
    after = None
    while len(found) < limit:
        batch = await repository.reachable(
            conn,
            tenant_id,
            channel,
            ids=ids,
            tags=normalize_tags(tags) if tags else None,
            written_on=written_on,
            after=after,
            batch=min(REACHABLE_BATCH, limit - len(found)),
        )
        found.extend(r["id"] for r in batch)
        if len(batch) < REACHABLE_BATCH:
            break
        after = (batch[-1]["created_at"], batch[-1]["id"])
    return found


async def existing_ids(conn: asyncpg.Connection, tenant_id: UUID, ids: list[UUID]) -> set[UUID]:
    return await repository.existing_ids(conn, tenant_id, ids)


async def opted_out_ids(conn: asyncpg.Connection, tenant_id: UUID, ids: list[UUID]) -> set[UUID]:
    return await repository.opted_out_ids(conn, tenant_id, ids)


async def whatsapp_contacts(conn: asyncpg.Connection, tenant_id: UUID, numbers: dict[str, str]) -> dict[str, UUID]:
    """The contact of each WhatsApp number (digits, as WhatsApp names them) of `numbers` (number:
    name for a contact met here first), made with its identity where there is none yet."""
    known = await repository.identified(conn, tenant_id, "whatsapp", list(numbers))
    missing = [n for n in numbers if n not in known]
    if missing:
        made = await repository.insert_contacts(conn, tenant_id, [numbers[n] for n in missing], missing)
        kept = await repository.insert_identities(conn, tenant_id, "whatsapp", made)
        lost = [contact for number, contact in made.items() if number not in kept]
        if lost:
            # Another writer met these numbers first: theirs are the contacts.
            await repository.delete_contacts(conn, tenant_id, lost)
            kept |= await repository.identified(conn, tenant_id, "whatsapp", [n for n in made if n not in kept])
        known |= kept
    return known
