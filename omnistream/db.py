"""PostgreSQL access: the pool, tenant-scoped transactions, named queries, migrations."""

from __future__ import annotations

import functools
import hashlib
import inspect
import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import cache
from pathlib import Path
from typing import Any
from uuid import UUID

import aiosql
import asyncpg
import msgspec
import structlog
from aiosql.adapters.asyncpg import AsyncPGAdapter
from aiosql.types import SQLOperationType

from omnistream.config import Settings

# In the repository a link to its top-level sql/; in an installed wheel, the files themselves.
SQL_DIR = Path(__file__).parent / "sql"
APP_ROLE = "omnistream_app"
MIGRATIONS_LOCK_KEY = 7_031_942_118  # any constant: serialises concurrent `migrate` runs
TENANT_SETTING = "app.tenant_id"

log = structlog.get_logger(__name__)

_json_encoder = msgspec.json.Encoder()


def _encode_json(value: Any) -> str:
    return _json_encoder.encode(value).decode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(type_name, encoder=_encode_json, decoder=msgspec.json.decode, schema="pg_catalog")


def _collecting(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def collect(self: aiosql.Queries, conn: asyncpg.Connection, *args: Any, **kwargs: Any) -> list[Any]:
        return [row async for row in fn(self, conn, *args, **kwargs)]

    return collect


class _Queries(aiosql.queries.Queries):
    """aiosql's queries, except that a many-row select is awaited for its list of rows.

    aiosql 14+ makes such a query an async generator; every repository awaits it instead.
    """

    def add_queries(self, queries: list[Any]) -> None:
        super().add_queries([_collecting(fn) if inspect.isasyncgenfunction(fn) else fn for fn in queries])


class TenantReader:
    """A connection lent for one tenant's reads (`Database.read()`), outside any transaction.

    Each read is one statement that scopes itself: `tenant_scoped` wraps it so that the statement
    first sets the tenant it names for its own (implicit, single-statement) transaction, then
    runs the query, in one round trip, where a transaction around it would cost two more. Only
    selects can be run through it, and each must name its tenant as `:tenant_id`, the tenant this
    reader was lent for.
    """

    __slots__ = ("_conn", "tenant_id")

    def __init__(self, conn: asyncpg.Connection, tenant_id: UUID) -> None:
        self._conn, self.tenant_id = conn, tenant_id

    def __getattr__(self, name: str) -> Any:
        # Whatever asks the connection itself (an insert's execute, a raw fetch) is not a select
        # that names its tenant: refused, so that no statement runs unscoped.
        raise TypeError("a tenant read runs selects only; open Database.tenant() to change anything")

    def run(self, method: str, sql: str, names: Sequence[str], args: Sequence[Any]) -> Any:
        """Run a select with its parameters (named, in order) as a self-scoping statement."""
        if method not in ("fetch", "fetchrow", "fetchval"):
            raise TypeError("a tenant read runs selects only; open Database.tenant() to change anything")
        scoped, position = tenant_scoped(sql, tuple(names))
        if args[position] != self.tenant_id:
            raise ValueError("a tenant read names another tenant than the one it was lent for")
        return getattr(self._conn, method)(scoped, *args)


_READ_SCOPE = (
    "SELECT scoped.* FROM (SELECT set_config('app.tenant_id', ${n}::uuid::text, true)::uuid AS tenant_id OFFSET 0)"
    " AS tenant_scope,\nLATERAL (SELECT * FROM (\n{sql}\n) AS query OFFSET 0) AS scoped"
)


@functools.lru_cache(maxsize=4096)
def tenant_scoped(sql: str, names: tuple[str, ...]) -> tuple[str, int]:
    """A select rewritten to set its own tenant: the statement and the position of `tenant_id` among
    its parameters.

    The query runs LATERAL to a one-row subquery that sets `app.tenant_id` (transaction-local, so
    for this statement alone) and whose output replaces every use of the tenant parameter in the
    query. So the query depends on that row: PostgreSQL must produce it, setting the tenant,
    before it can run the query, and so before the row-level security policies of the query's
    tables read the setting. `OFFSET 0` on both sides keeps the planner from flattening either
    into the other (flattened, it could scan a table first, policies and all). Should that order
    ever not hold, the policies see no tenant and hide every row: a read fails closed, it cannot
    see another tenant (tests/test_tenancy.py holds every read to returning its rows).
    """
    if "tenant_id" not in names:
        raise ValueError("a tenant read must name its tenant as :tenant_id")
    number = names.index("tenant_id") + 1
    body = re.sub(rf"\${number}(?!\d)", "tenant_scope.tenant_id", sql.strip().rstrip(";"))
    return _READ_SCOPE.format(n=number, sql=body), number - 1


class _ConnectionAdapter(AsyncPGAdapter):
    """aiosql's asyncpg adapter for callers that always pass a connection, never a pool.

    The stock adapter probes every argument for a pool (`dir()` on each call), which shows
    up in the ingestion profile; repositories here always run inside a transaction. It also
    keeps each query's text as written, for the queries with optional lines.
    """

    def __init__(self) -> None:
        super().__init__()
        self.written: dict[str, tuple[Any, str]] = {}

    def process_sql(self, query_name, op_type, sql):  # type: ignore[no-untyped-def]
        self.written[query_name] = (op_type, sql)
        return super().process_sql(query_name, op_type, sql)

    def _read(self, conn: Any, method: str, query_name: str, sql: str, parameters: Any) -> Any:
        args = self.maybe_order_params(query_name, parameters)
        if isinstance(conn, TenantReader):
            return conn.run(method, sql, self.var_sorted[query_name], args)
        return getattr(conn, method)(sql, *args)

    async def select(self, conn, query_name, sql, parameters, record_class=None):  # type: ignore[no-untyped-def]
        for row in await self._read(conn, "fetch", query_name, sql, parameters):
            yield row

    async def select_one(self, conn, query_name, sql, parameters, record_class=None):  # type: ignore[no-untyped-def]
        return await self._read(conn, "fetchrow", query_name, sql, parameters)

    async def select_value(self, conn, query_name, sql, parameters):  # type: ignore[no-untyped-def]
        return await self._read(conn, "fetchval", query_name, sql, parameters)

    async def insert_returning(self, conn, query_name, sql, parameters):  # type: ignore[no-untyped-def]
        row = await conn.fetchrow(sql, *self.maybe_order_params(query_name, parameters))
        return (row[0] if len(row) == 1 else row) if row else None

    async def insert_update_delete(self, conn, query_name, sql, parameters):  # type: ignore[no-untyped-def]
        return await conn.execute(sql, *self.maybe_order_params(query_name, parameters))

    async def insert_update_delete_many(self, conn, query_name, sql, parameters):  # type: ignore[no-untyped-def]
        return await conn.executemany(sql, [self.maybe_order_params(query_name, p) for p in parameters])


_OPTIONAL_LINE = re.compile(r"^(?P<sql>.*?)\s*--\?\s*(?P<key>\w+)\s*$")
_LIMIT = re.compile(r"(?<!:):limit\b")
_SELECT_METHODS = {
    SQLOperationType.SELECT: "fetch",
    SQLOperationType.SELECT_ONE: "fetchrow",
    SQLOperationType.SELECT_VALUE: "fetchval",
}


class OptionalLinesQuery:
    """A named select whose lines ending in `--? key` apply only when the caller passes `key` with
    a value other than None (a filter given; False too when the line compares with `:key`) or False
    (a flag set), and whose `:limit` is written
    into the statement as a number.

    A list with optional filters written as `(:x IS NULL OR col = :x)` is one statement for every
    combination of filters, and one whose LIMIT is a parameter gives PostgreSQL no row count to
    plan for: either way PostgreSQL plans it anew on every call, which costs more than running it
    (and a plan kept for all combinations could use neither the keyset cursor nor a filter's
    index). Here each combination of filters and page size is a statement of its own, with only
    its own conditions, that PostgreSQL plans once per connection and keeps.
    """

    MAX_LIMIT = 1001
    MAX_VARIANTS = 256

    def __init__(self, name: str, op_type: Any, written: str) -> None:
        if op_type not in _SELECT_METHODS:
            raise ValueError(f"{name}: only a select can have optional lines")
        self.name, self._op_type, self._method = name, op_type, _SELECT_METHODS[op_type]
        self._lines = [
            (m["sql"], m["key"]) if (m := _OPTIONAL_LINE.match(line)) else (line, None) for line in written.splitlines()
        ]
        self.keys = frozenset(key for _, key in self._lines if key)
        # A line that uses its key as a parameter (`AND matched = :matched --? matched`) is a filter,
        # and False is one of its values; any other key is a flag, on when true.
        self._filters = frozenset(
            key for sql, key in self._lines if key and re.search(rf"(?<!:):{re.escape(key)}\b", sql)
        )
        self._has_limit = _LIMIT.search(written) is not None
        # Bounded: a caller may ask for any combination of filters and page sizes.
        self.variant = functools.lru_cache(maxsize=self.MAX_VARIANTS)(self._load_variant)

    def text(self, given: frozenset[str], limit: int | None = None) -> str:
        """The statement (named parameters) for the given keys and page size."""
        text = "\n".join(sql for sql, key in self._lines if key is None or key in given)
        return _LIMIT.sub(str(limit), text) if self._has_limit else text

    def _load_variant(self, given: frozenset[str], limit: int | None = None) -> tuple[str, tuple[str, ...]]:
        """The statement as asyncpg takes it ($1, $2, ...) and the parameter each number stands for."""
        adapter = _ConnectionAdapter()
        sql = adapter.process_sql(self.name, self._op_type, self.text(given, limit))
        return sql, tuple(adapter.var_sorted[self.name])

    def __call__(self, conn: asyncpg.Connection, **params: Any) -> Any:
        given = frozenset(
            key
            for key in self.keys
            if (value := params.get(key)) is not None and (value is not False or key in self._filters)
        )
        limit = None
        if self._has_limit:
            limit = params["limit"]
            if type(limit) is not int or not 0 <= limit <= self.MAX_LIMIT:
                raise ValueError(f"{self.name}: limit must be a whole number from 0 to {self.MAX_LIMIT}")
        sql, names = self.variant(given, limit)
        args = [params.get(name) for name in names]
        if isinstance(conn, TenantReader):
            return conn.run(self._method, sql, names, args)
        # Straight to asyncpg: aiosql has parsed the statement, and its call path (an async
        # generator per select) would add to every list page what the parsing saves.
        return getattr(conn, self._method)(sql, *args)


@cache
def load_queries(area: str) -> aiosql.Queries:
    """The named queries of `sql/queries/<area>.sql`, parsed once per process."""
    adapter = _ConnectionAdapter()
    queries = aiosql.from_path(
        SQL_DIR / "queries" / f"{area}.sql", lambda: adapter, mandatory_parameters=False, queries_cls=_Queries
    )
    for name, (op_type, written) in adapter.written.items():
        if any(_OPTIONAL_LINE.match(line) for line in written.splitlines()):
            setattr(queries, name, OptionalLinesQuery(name, op_type, written))
    return queries


async def _reset_connection(conn: asyncpg.Connection) -> None:
    """Nothing to undo: asyncpg has already rolled back any open transaction, and the tenant
    setting is transaction-local: nothing sets session state. Saves the full reset's round trip
    on every borrow."""


class Database:
    """The pool every request and job borrows from.

    Tenant data is reachable only inside a transaction that names its tenant (`tenant()` for
    changes, `read()` for reads): the row-level security policies read that setting and hide
    every other tenant's rows, even from a query that forgot its `tenant_id` filter. The setting
    is local to the transaction (`set_config(..., true)`) and nothing is ever set for a session,
    so behind a transaction pooler (pgbouncer, pool_mode=transaction), which hands each
    transaction whichever server connection is free, no tenant outlives its transaction.
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @classmethod
    async def connect(
        cls, url: str, *, min_size: int = 2, max_size: int = 20, statement_cache_size: int = 100
    ) -> Database:
        """`statement_cache_size=0` for a transaction pooler that cannot carry prepared statements
        (pgbouncer before 1.21, or with max_prepared_statements = 0)."""
        pool = await asyncpg.create_pool(
            url,
            min_size=min_size,
            max_size=max_size,
            init=_init_connection,
            reset=_reset_connection,
            command_timeout=60,
            statement_cache_size=statement_cache_size,
        )
        return cls(pool)

    @classmethod
    async def from_settings(cls, settings: Settings, *, min_size: int | None = None) -> Database:
        return await cls.connect(
            settings.database_url,
            min_size=settings.db_pool_min if min_size is None else min_size,
            max_size=settings.db_pool_max,
            statement_cache_size=settings.db_statement_cache_size,
        )

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def _transaction(self, begin: str) -> AsyncIterator[asyncpg.Connection]:
        # `begin` travels as one simple-protocol message (BEGIN and the tenant setting in one
        # round trip; no parameters, so values are rendered by UUID itself). Nested work uses
        # `savepoint()`, since asyncpg's own transaction objects refuse to nest in this one.
        async with self.pool.acquire() as conn:
            await conn.execute(begin)
            try:
                yield conn
            except BaseException:
                if not conn.is_closed() and conn.is_in_transaction():
                    await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")

    def tenant(self, tenant_id: UUID) -> AbstractAsyncContextManager[asyncpg.Connection]:
        """A transaction for one tenant's changes."""
        return self._transaction(f"BEGIN; {_set_tenant(tenant_id)}")

    @asynccontextmanager
    async def read(self, tenant_id: UUID) -> AsyncIterator[TenantReader]:
        """Reads for one tenant, each one statement that sets its own tenant (see TenantReader): one
        round trip a read. Only selects go through it; a change needs `tenant()`."""
        async with self.pool.acquire() as conn:
            yield TenantReader(conn, UUID(str(tenant_id)))

    def anonymous(self) -> AbstractAsyncContextManager[asyncpg.Connection]:
        """A transaction with no tenant: only the security-definer lookups see anything."""
        return self._transaction("BEGIN")

    @asynccontextmanager
    async def self_scoped(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection for one call of a function that sets its tenant itself, first thing, for
        its own transaction (`set_config(..., true)`), such as `ingest_inbound`: one round trip,
        no BEGIN or COMMIT. A single statement is a transaction of its own, so a transaction
        pooler keeps it on one server connection; nothing else may run on this one."""
        async with self.pool.acquire() as conn:
            yield conn

    async def ping(self) -> bool:
        async with self.pool.acquire(timeout=2) as conn:
            return await conn.fetchval("SELECT 1", timeout=2) == 1

    async def confinement_problems(self) -> list[str]:
        """Why the role this pool connects as would not be held to row-level security (empty when it
        is): it bypasses it, or it owns (or may act as the owner of) a table with policies."""
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                """SELECT r.rolsuper OR r.rolbypassrls AS bypasses,
                          (SELECT string_agg(c.relname, ', ' ORDER BY c.relname)
                             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                            WHERE n.nspname = 'public' AND c.relrowsecurity
                              AND pg_has_role(current_user, c.relowner, 'USAGE')) AS owned
                     FROM pg_roles r WHERE r.rolname = current_user"""
            )
        problems = []
        if row["bypasses"]:
            problems.append("it is a superuser or has BYPASSRLS")
        if row["owned"]:
            problems.append(f"it owns tables whose policies it could change or drop: {row['owned']}")
        return problems

    async def require_confined_role(self) -> None:
        """Production refuses a role that row-level security would not hold (see README)."""
        problems = await self.confinement_problems()
        if problems:
            raise RuntimeError(
                "DATABASE_URL's role is not held to row-level security: "
                + "; ".join(problems)
                + ". Connect as a login granted omnistream_app that owns no tables (see README, Production)"
            )


def _set_tenant(tenant_id: UUID) -> str:
    # SET LOCAL (a utility statement) rather than SELECT set_config(): nothing to plan.
    return f"SET LOCAL {TENANT_SETTING} = '{UUID(str(tenant_id))}'"


class Savepoint:
    """A savepoint inside a `Database.tenant()` transaction: work that can fail or be undone alone."""

    def __init__(self, conn: asyncpg.Connection, name: str = "step") -> None:
        self.conn, self.name, self.done = conn, name, False

    async def __aenter__(self) -> Savepoint:
        await self.conn.execute(f"SAVEPOINT {self.name}")
        return self

    async def rollback(self) -> None:
        await self.conn.execute(f"ROLLBACK TO SAVEPOINT {self.name}")
        self.done = True

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self.done:
            return
        if exc_type is None:
            await self.conn.execute(f"RELEASE SAVEPOINT {self.name}")
        else:
            await self.rollback()


# ---------------------------------------------------------------- migrations

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def migration_files() -> list[tuple[int, Path]]:
    files = []
    for path in sorted((SQL_DIR / "migrations").glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if not match:
            raise RuntimeError(f"migration file name must look like 0001_name.sql: {path.name}")
        files.append((int(match.group(1)), path))
    versions = [v for v, _ in files]
    if len(set(versions)) != len(versions):
        raise RuntimeError("two migrations share a version number")
    return files


async def migrate(url: str) -> list[str]:
    """Apply the migrations not yet recorded, each in its own transaction, in order.

    An advisory lock makes concurrent runs (several instances starting at once)
    wait for each other instead of applying the same file twice.
    """
    applied_now: list[str] = []
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATIONS_LOCK_KEY)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["version"]: r["checksum"] for r in await conn.fetch("SELECT * FROM schema_migrations")}
        for version, path in migration_files():
            sql = path.read_text()
            checksum = hashlib.sha256(sql.encode()).hexdigest()
            if version in done:
                if done[version] != checksum:
                    log.warning("migration changed after it was applied", migration=path.name)
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    version,
                    path.name,
                    checksum,
                )
            applied_now.append(path.name)
            log.info("migration applied", migration=path.name)
    finally:
        try:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATIONS_LOCK_KEY)
        finally:
            await conn.close()
    return applied_now


async def ensure_database(admin_url: str, name: str, template: str | None = None) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            quoted = '"' + name.replace('"', '""') + '"'
            suffix = f' TEMPLATE "{template}"' if template else ""
            await conn.execute(f"CREATE DATABASE {quoted}{suffix}")
    finally:
        await conn.close()


async def ensure_app_login(admin_url: str, password: str) -> None:
    """Let the embedded server's app role log in (production grants it to its own login role)."""
    conn = await asyncpg.connect(admin_url)
    try:
        # Roles are cluster-wide, so a fresh database in the same cluster may already have it.
        await conn.execute(
            f"""DO $$ BEGIN
                  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
                    CREATE ROLE {APP_ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS;
                  END IF;
                END $$"""
        )
        escaped = password.replace("'", "''")
        await conn.execute(f"ALTER ROLE {APP_ROLE} LOGIN PASSWORD '{escaped}'")
    finally:
        await conn.close()


def with_database(url: str, database: str, *, user: str | None = None, password: str | None = None) -> str:
    """The same server URL pointing at another database (and optionally another login)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    netloc = parts.netloc
    if user is not None:
        host = netloc.rsplit("@", 1)[-1]
        netloc = f"{user}:{password}@{host}" if password else f"{user}@{host}"
    return urlunsplit((parts.scheme, netloc, "/" + database, parts.query, parts.fragment))
