"""Queries whose rows are built positionally select exactly their Struct's fields, in order."""

from __future__ import annotations

import asyncpg
import msgspec
import pytest

from omnistream.conversations.repository import queries as conversation_queries
from omnistream.conversations.schemas import Conversation


@pytest.mark.parametrize("order", ["activity_desc", "activity_asc", "created_desc", "created_asc"])
async def test_conversation_lists_select_the_struct_fields_in_order(database: str, order: str) -> None:
    query = conversation_queries.list_conversations
    # Every optional line at once: the widest statement of that order.
    keys = frozenset(k for k in query.keys if not k.startswith(("activity_", "created_", "after_"))) | {
        order,
        f"after_{order}",
    }
    spec = query.variant(keys, limit=21)
    conn = await asyncpg.connect(database)
    try:
        columns = [attribute.name for attribute in (await conn.prepare(spec.sql)).get_attributes()]
    finally:
        await conn.close()
    assert columns == [field.name for field in msgspec.structs.fields(Conversation)]
