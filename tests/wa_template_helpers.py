"""WhatsApp templates as a synced business account leaves them, written straight into the
database: a WhatsApp template message is sent only for a template known here and APPROVED."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import asyncpg


async def approved_template(
    database: str,
    tenant_id: str | UUID,
    name: str,
    language: str,
    components: list[dict[str, Any]] | None = None,
    *,
    category: str = "UTILITY",
    status: str = "APPROVED",
    business_account_id: str = "100000000000001",
) -> UUID:
    """A template of the tenant (by default one whose body has no variables)."""
    conn = await asyncpg.connect(database)
    try:
        return await conn.fetchval(
            """INSERT INTO wa_templates (tenant_id, business_account_id, name, language, category, status, components)
               VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb) RETURNING id""",
            UUID(str(tenant_id)),
            business_account_id,
            name,
            language,
            category,
            status,
            json.dumps(components if components is not None else [{"type": "BODY", "text": "Hello"}]),
        )
    finally:
        await conn.close()
