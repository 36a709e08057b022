"""asyncpg records to Structs: each query selects exactly the fields of its Struct."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")


def one(row: Any, struct: type[T]) -> T | None:
    return None if row is None else msgspec.convert(dict(row), struct)


def many(rows: Iterable[Any], struct: type[T]) -> list[T]:
    return [msgspec.convert(dict(row), struct) for row in rows]
