from __future__ import annotations

from typing import Any

import asyncpg

from omnistream.db import load_queries

queries = load_queries("automation")


async def insert_events(conn: asyncpg.Connection, events: list[dict[str, Any]]) -> None:
    await queries.insert_events(conn, events)
