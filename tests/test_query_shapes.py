"""Queries whose rows are built positionally select exactly their Struct's fields, in order."""

from __future__ import annotations

import asyncpg
import msgspec
import pytest

from omnistream.conversations.repository import queries as conversation_queries
from omnistream.conversations.schemas import Conversation


@pytest.mark.parametrize(
    "name", ["list_by_activity_desc", "list_by_activity_asc", "list_by_created_desc", "list_by_created_asc"]
)
async def test_conversation_lists_select_the_struct_fields_in_order(database: str, name: str) -> None:
    sql = getattr(conversation_queries, name).sql
    conn = await asyncpg.connect(database)
    try:
        columns = [attribute.name for attribute in (await conn.prepare(sql)).get_attributes()]
    finally:
        await conn.close()
    assert columns == [field.name for field in msgspec.structs.fields(Conversation)]
