"""Queries whose rows are built positionally select exactly their Struct's fields, in order."""

from __future__ import annotations

import asyncpg
import msgspec
import pytest
from aiosql.types import SQLOperationType

from omnistream.conversations.repository import queries as conversation_queries
from omnistream.conversations.schemas import Conversation
from omnistream.db import OptionalLinesQuery


@pytest.mark.parametrize("order", ["activity_desc", "activity_asc", "created_desc", "created_asc"])
async def test_conversation_lists_select_the_struct_fields_in_order(database: str, order: str) -> None:
    query = conversation_queries.list_conversations
    # Every optional line at once: the widest statement of that order.
    keys = frozenset(k for k in query.keys if not k.startswith(("activity_", "created_", "after_"))) | {
        order,
        f"after_{order}",
    }
    sql, _ = query.variant(keys, limit=21)
    conn = await asyncpg.connect(database)
    try:
        columns = [attribute.name for attribute in (await conn.prepare(sql)).get_attributes()]
    finally:
        await conn.close()
    assert columns == [field.name for field in msgspec.structs.fields(Conversation)]


def test_optional_lines_apply_only_when_their_key_is_given() -> None:
    query = OptionalLinesQuery(
        "sample",
        SQLOperationType.SELECT,
        "SELECT id FROM t\n WHERE tenant_id = :tenant_id\n   AND a = :a  --? a\n   AND b IS NULL --? b\n LIMIT :limit",
    )
    assert query.keys == {"a", "b"}
    assert query.text(frozenset(), 21) == "SELECT id FROM t\n WHERE tenant_id = :tenant_id\n LIMIT 21"
    assert "AND a = :a\n" in query.text(frozenset({"a"}), 5) + "\n"
    assert "b IS NULL" not in query.text(frozenset({"a"}), 5)
    # The same shape is loaded once; its parameters are only those of its own lines.
    assert query.variant(frozenset({"a"}), 5) is query.variant(frozenset({"a"}), 5)
    assert query.variant(frozenset({"a"}), 5) == (
        "SELECT id FROM t\n WHERE tenant_id = $1\n   AND a = $2\n LIMIT 5",
        ("tenant_id", "a"),
    )


@pytest.mark.parametrize("limit", [True, "21", -1, 10**6, None])
def test_a_limit_that_is_not_a_small_whole_number_is_refused(limit: object) -> None:
    query = OptionalLinesQuery("sample", SQLOperationType.SELECT, "SELECT 1 LIMIT :limit")
    with pytest.raises(ValueError, match="limit"):
        query(None, limit=limit)  # type: ignore[arg-type]
