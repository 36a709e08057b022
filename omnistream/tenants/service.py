"""Tenants: the organisations that own everything else."""

from __future__ import annotations

import re
import unicodedata
from uuid import UUID
from zoneinfo import available_timezones

import asyncpg

from omnistream.db import Savepoint
from omnistream.errors import Conflict, Unprocessable, not_found
from omnistream.kit.schema import pattern
from omnistream.tenants import repository
from omnistream.tenants.schemas import Tenant

SLUG_PATTERN = pattern(
    r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$", "may hold only lowercase letters, digits and dashes, not at either end"
)
SLUG_ATTEMPTS = 5
# "localtime" (the server's own zone), "Factory" and "posixrules" are files of the zone
# database, not zones a tenant can mean.
_TIMEZONES = frozenset(available_timezones()) - {"localtime", "Factory", "posixrules"}


def slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:63].strip("-")
    return slug or "org"


def check_timezone(timezone: str) -> str:
    if timezone not in _TIMEZONES:
        raise Unprocessable(f"unknown time zone {timezone!r}; use an IANA name such as Europe/Berlin", field="timezone")
    return timezone


async def create(conn: asyncpg.Connection, tenant_id: UUID, name: str, slug: str | None, timezone: str) -> Tenant:
    """Create a tenant inside the caller's transaction, which must already be scoped to `tenant_id`."""
    check_timezone(timezone)
    if slug is not None:
        if await repository.slug_taken(conn, slug):
            raise Conflict(f"the slug {slug!r} is taken", field="slug")
        try:
            await repository.insert(conn, tenant_id, name, slug, timezone)
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(f"the slug {slug!r} is taken", field="slug") from exc
    else:
        await _insert_with_free_slug(conn, tenant_id, name, timezone)
    tenant = await repository.get(conn, tenant_id)
    assert tenant is not None
    return tenant


async def get_in(conn: asyncpg.Connection, tenant_id: UUID) -> Tenant | None:
    return await repository.get(conn, tenant_id)


async def get_timezone(conn: asyncpg.Connection, tenant_id: UUID) -> str:
    """The tenant's IANA zone, inside the caller's transaction."""
    timezone = await repository.get_timezone(conn, tenant_id)
    if timezone is None:
        raise not_found("organisation")
    return timezone


async def set_timezone(conn: asyncpg.Connection, tenant_id: UUID, timezone: str) -> str:
    """Validate and store the tenant's zone inside the caller's transaction (the caller logs it)."""
    check_timezone(timezone)
    if not await repository.set_timezone(conn, tenant_id, timezone):
        raise not_found("organisation")
    return timezone


async def id_by_slug(conn: asyncpg.Connection, slug: str) -> UUID | None:
    """An active tenant's id by slug; works in a transaction without a tenant (public pages)."""
    return await repository.id_by_slug(conn, slug)


async def _insert_with_free_slug(conn: asyncpg.Connection, tenant_id: UUID, name: str, timezone: str) -> None:
    """The slug made from the name, or the next free one: an organisation of the same name signing
    up at the same moment may take a free slug first, and then this one takes the next."""
    for _ in range(SLUG_ATTEMPTS):
        try:
            async with Savepoint(conn, "tenant_slug"):
                await repository.insert(conn, tenant_id, name, await _free_slug(conn, slugify(name)), timezone)
            return
        except asyncpg.UniqueViolationError:
            continue
    raise Conflict("could not find a free slug; pass one explicitly", field="slug")


async def _free_slug(conn: asyncpg.Connection, base: str) -> str:
    candidate = base
    for n in range(2, 1000):
        if not await repository.slug_taken(conn, candidate):
            return candidate
        suffix = f"-{n}"
        candidate = base[: 63 - len(suffix)] + suffix
    raise Conflict("could not find a free slug; pass one explicitly", field="slug")
