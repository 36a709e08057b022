"""The real app plus one bare route, for the HTTP benchmark only (never part of the product).

`/bench/bare-conversations` is the ceiling: the same 20 rows with the same columns, straight from
asyncpg and encoded with msgspec, with no authentication, no row-level security, no tenant
setting, no validation of parameters and no Structs.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import msgspec
from litestar import Request, Response, get
from litestar.params import FromQuery

from omnistream.app import create_app
from omnistream.db import _init_connection

BARE_PAGE = """
SELECT c.id, c.channel, c.account_id, c.status, c.assigned_agent_id, c.division_id, c.tags, c.priority,
       c.handled_by, c.ai_agent_id, c.unread_count, c.message_count, c.last_message_at, c.last_message_preview,
       c.last_inbound_at, c.last_outbound_at, c.last_activity_at, c.status_changed_at, c.status_changed_by,
       c.resolved_at, c.created_at, c.updated_at,
       json_build_object('id', k.id, 'name', k.name, 'phone', k.phone, 'email', k.email) AS contact
  FROM conversations c JOIN contacts k ON k.id = c.contact_id AND k.tenant_id = c.tenant_id
 WHERE c.tenant_id = $1 AND (c.last_activity_at, c.id) < ($2, $3)
 ORDER BY c.last_activity_at DESC, c.id DESC
 LIMIT 20"""


@get("/bench/bare-conversations", opt={"exclude_from_auth": True}, include_in_schema=False)
async def bare_conversations(
    request: Request[Any, Any, Any], tenant: FromQuery[UUID], at: FromQuery[datetime], after: FromQuery[UUID]
) -> Response[bytes]:
    pool = getattr(request.app.state, "bare_pool", None)
    if pool is None:
        # The schema owner's own pool: row-level security does not apply to it.
        pool = request.app.state.bare_pool = await asyncpg.create_pool(
            os.environ["BENCH_OWNER_URL"], min_size=4, init=_init_connection
        )
    async with pool.acquire() as conn:
        rows = await conn.fetch(BARE_PAGE, tenant, at, after)
    body = msgspec.json.encode({"conversations": [dict(r) for r in rows]})
    return Response(body, media_type="application/json")


app = create_app()
app.register(bare_conversations)
