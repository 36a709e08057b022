"""The real app plus one bare route, for the HTTP benchmark only (never part of the product).

`/bench/bare-conversations` is the ceiling: the same 20-row keyset page straight from asyncpg,
encoded with msgspec, with no authentication, no row-level security and no tenant transaction.
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

BARE_PAGE = """
SELECT id, contact_id, channel, status, assigned_agent_id, tags, unread_count, message_count, last_message_preview,
       last_activity_at, created_at
  FROM conversations
 WHERE tenant_id = $1 AND (last_activity_at, id) < ($2, $3)
 ORDER BY last_activity_at DESC, id DESC
 LIMIT 20"""


@get("/bench/bare-conversations", opt={"exclude_from_auth": True}, include_in_schema=False)
async def bare_conversations(
    request: Request[Any, Any, Any], tenant: FromQuery[UUID], at: FromQuery[datetime], after: FromQuery[UUID]
) -> Response[bytes]:
    pool = getattr(request.app.state, "bare_pool", None)
    if pool is None:
        # The schema owner's own pool: row-level security does not apply to it.
        pool = request.app.state.bare_pool = await asyncpg.create_pool(os.environ["BENCH_OWNER_URL"], min_size=4)
    async with pool.acquire() as conn:
        rows = await conn.fetch(BARE_PAGE, tenant, at, after)
    body = msgspec.json.encode({"conversations": [dict(r) for r in rows]})
    return Response(body, media_type="application/json")


app = create_app()
app.register(bare_conversations)
