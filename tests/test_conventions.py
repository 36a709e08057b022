"""Conventions every area keeps: declared access matching the spec, named queries that exist,
a complete OpenAPI document, problem-details errors, request ids and metrics."""

from __future__ import annotations

import asyncio
import csv
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import msgspec
import pytest
from litestar import Litestar, get
from litestar.di import NamedDependency, Provide
from litestar.handlers import HTTPRouteHandler
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient

from omnistream.app import create_app
from omnistream.config import Settings
from omnistream.db import SQL_DIR, Database, load_queries
from omnistream.errors import Forbidden
from omnistream.kit.deps import resolve_dependencies_in_line
from omnistream.security.guards import authorize
from omnistream.security.permissions import BUILTIN_PERMISSIONS, PERMISSIONS, RoleLevel
from tests.conftest import Tenant, create_agent

ROOT = Path(__file__).resolve().parents[1]
ENDPOINTS = ROOT / "docs" / "endpoints.tsv"
UNGUARDED_PREFIXES = ("/schema", "/metrics")


def normalize(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path.rstrip("/") or "/")


@pytest.fixture(scope="module")
def spec() -> dict[tuple[str, str], dict[str, str]]:
    """The endpoint table every route is held to: path, summary, minimum role and permission."""
    with ENDPOINTS.open(newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return {(row["method"], normalize(row["path"])): row for row in rows}


@pytest.fixture(scope="module")
def app() -> Litestar:
    return create_app(Settings(env="test"))


def api_handlers(app: Litestar) -> Iterator[tuple[str, str, HTTPRouteHandler]]:
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or route.path.startswith(UNGUARDED_PREFIXES):
            continue
        for method, (handler, _) in route.route_handler_map.items():
            if method in ("OPTIONS", "HEAD"):
                continue
            yield method, route.path, handler


# ------------------------------------------------------------------ access declarations


def test_every_handler_declares_the_access_the_spec_gives(
    app: Litestar, spec: dict[tuple[str, str], dict[str, str]]
) -> None:
    problems = []
    seen = 0
    for method, path, handler in api_handlers(app):
        seen += 1
        where = f"{method} {path}"
        opt = handler.opt
        row = spec.get((method, normalize(path)))
        if row is None:
            problems.append(f"{where}: not in routes.tsv")
            continue
        if authorize not in [getattr(g, "func", g) for g in handler.resolve_guards()]:
            problems.append(f"{where}: the access guard does not run")
        access, permission = row["access"], row["permission"]
        if access == "public":
            if not opt.get("public") or "min_role" in opt:
                problems.append(f"{where}: the spec makes it public, the handler declares {dict(opt)}")
        elif access == "super_admin":
            if opt.get("public"):
                problems.append(f"{where}: super-admin only in the spec, public in the app")
        else:
            if opt.get("public"):
                problems.append(f"{where}: the spec needs {access}, the handler is public")
            if opt.get("min_role") != access:
                problems.append(f"{where}: min_role {opt.get('min_role')!r}, spec says {access!r}")
            expected = None if permission == "-" else permission
            if opt.get("permission") != expected:
                problems.append(f"{where}: permission {opt.get('permission')!r}, spec says {expected!r}")
    assert seen >= 20, "found too few API handlers; is the app assembled?"
    assert not problems, "\n".join(problems)


def test_the_spec_is_what_the_app_serves_for_its_areas(
    app: Litestar, spec: dict[tuple[str, str], dict[str, str]]
) -> None:
    """Every endpoint of a group the app has started serving is served: no group is half done."""
    served = {(method, normalize(path)) for method, path, _ in api_handlers(app)}
    groups_served = {spec[key]["group"] for key in served if key in spec}
    missing = [
        f"{row['group']}: {row['method']} {row['path']}"
        for key, row in spec.items()
        if row["group"] in groups_served and key not in served
    ]
    for group in ("Auth", "Agents", "Roles", "API Keys", "Activity Logs", "Health"):
        assert group in groups_served, group
    assert not missing, "\n".join(missing)


def test_spec_permissions_exist_and_shape_the_builtin_roles(spec: dict[tuple[str, str], dict[str, str]]) -> None:
    least: dict[str, RoleLevel] = {}
    for row in spec.values():
        permission = row["permission"]
        assert row["access"] in ("public", "super_admin", "agent", "supervisor", "admin"), row
        if permission == "-" or row["access"] == "public":
            # Public endpoints have none, or "signature" (webhooks prove themselves by signing).
            assert permission in ("-", "signature") or row["access"] != "public", row
            continue
        assert permission in PERMISSIONS, f"{row['method']} {row['path']}: unknown permission {permission}"
        level = RoleLevel[row["access"]]
        least[permission] = min(level, least.get(permission, level))
    # A built-in role holds a permission exactly when it may call that permission's least endpoint.
    for permission, level in least.items():
        holders = {lvl for lvl in RoleLevel if permission in BUILTIN_PERMISSIONS[lvl]}
        assert holders == {lvl for lvl in RoleLevel if lvl >= level}, permission
    assert BUILTIN_PERMISSIONS[RoleLevel.admin] == frozenset(PERMISSIONS)


async def test_an_undeclared_handler_is_closed() -> None:
    """The guard refuses a handler without an access rule, so forgetting one fails closed."""
    connection: Any = SimpleNamespace(user=None, scope={"method": "GET"})
    with pytest.raises(Forbidden, match="declares no access rule"):
        await authorize(connection, SimpleNamespace(opt={}))  # type: ignore[arg-type]
    await authorize(connection, SimpleNamespace(opt={"public": True}))  # type: ignore[arg-type]


# ------------------------------------------------------------------ named queries


QUERY_USE = re.compile(r"\bqueries\.([A-Za-z_]\w*)")
QUERY_FILE = re.compile(r"load_queries\(\s*[\"']([a-z0-9_]+)[\"']\s*\)")


def test_every_query_file_loads() -> None:
    files = sorted((SQL_DIR / "queries").glob("*.sql"))
    assert files
    for path in files:
        queries = load_queries(path.stem)
        names = [n for n in queries.available_queries if not n.endswith("_cursor")]
        assert names, f"{path.name} has no named queries"


def test_every_query_a_repository_names_exists() -> None:
    repositories = sorted((ROOT / "omnistream").rglob("repository.py"))
    assert len(repositories) >= 5
    problems = []
    for path in repositories:
        text = path.read_text()
        areas = QUERY_FILE.findall(text)
        used = set(QUERY_USE.findall(text))
        if not used:
            continue
        if len(areas) != 1:
            problems.append(f"{path.relative_to(ROOT)}: loads {areas or 'no'} query files")
            continue
        queries = load_queries(areas[0])
        for name in sorted(used):
            if not hasattr(queries, name):
                problems.append(f"{path.relative_to(ROOT)}: queries.{name} is not in sql/queries/{areas[0]}.sql")
    assert not problems, "\n".join(problems)


def test_the_check_above_can_fail() -> None:
    queries = load_queries("agents")
    assert hasattr(queries, "get_agent")
    assert not hasattr(queries, "get_agnet")
    assert QUERY_USE.findall("await queries.get_agnet(conn)") == ["get_agnet"]


async def test_many_row_queries_give_lists(settings: Settings, tenant: Tenant) -> None:
    """A query without a suffix returns its rows when awaited (aiosql 14+ would yield them)."""
    database = await Database.connect(settings.database_url, min_size=1, max_size=1)
    try:
        async with database.tenant(UUID(tenant.id)) as conn:
            rows = await load_queries("roles").list_roles(conn, tenant_id=UUID(tenant.id))
    finally:
        await database.close()
    assert isinstance(rows, list)
    assert {r["name"] for r in rows} == {"Agent", "Supervisor", "Admin"}
    assert all(isinstance(r, asyncpg.Record) for r in rows)


# ------------------------------------------------------------------ OpenAPI


async def test_openapi_lists_every_route_with_summary_operation_id_and_tags(
    client: AsyncTestClient, spec: dict[tuple[str, str], dict[str, str]]
) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"]
    paths = {normalize(p): item for p, item in document["paths"].items()}
    problems = []
    operation_ids: dict[str, list[str]] = defaultdict(list)
    for method, path, _handler in api_handlers(client.app):
        where = f"{method} {path}"
        operation = paths.get(normalize(path), {}).get(method.lower())
        if operation is None:
            problems.append(f"{where}: missing from the OpenAPI document")
            continue
        for key in ("summary", "operationId", "tags"):
            if not operation.get(key):
                problems.append(f"{where}: no {key}")
        operation_ids[operation.get("operationId", "")].append(where)
        row = spec.get((method, normalize(path)))
        if row and operation.get("summary") != row["summary"]:
            problems.append(f"{where}: summary {operation.get('summary')!r}, spec says {row['summary']!r}")
        if row and row["group"] not in operation.get("tags", []):
            problems.append(f"{where}: tags {operation.get('tags')}, spec group {row['group']!r}")
    problems += [f"operationId {op!r} used by {uses}" for op, uses in operation_ids.items() if len(uses) > 1]
    assert not problems, "\n".join(problems)
    # The document is generated from the Structs: bodies and responses have real schemas.
    create = document["paths"]["/api/agents"]["post"]
    body_schema = create["requestBody"]["content"]["application/json"]["schema"]
    name = body_schema["$ref"].rsplit("/", 1)[-1]
    assert {"email", "name", "password"} <= set(document["components"]["schemas"][name]["properties"])


async def openapi_document(client: AsyncTestClient) -> dict[str, Any]:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200, response.text
    return response.json()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield method.upper(), path, operation


async def test_both_ways_in_are_declared_and_public_operations_need_neither(client: AsyncTestClient) -> None:
    document = await openapi_document(client)
    schemes = document["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {**schemes["ApiKey"], "type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert (schemes["SessionToken"]["type"], schemes["SessionToken"]["scheme"]) == ("http", "bearer")
    assert schemes["SessionCookie"] == {**schemes["SessionCookie"], "type": "apiKey", "in": "cookie"}
    assert "security" not in document, "a global requirement would cover the public operations too"
    handlers = {h.operation_id: h for _, _, h in api_handlers(client.app)}
    public = []
    for method, path, operation in operations(document):
        handler = handlers[operation["operationId"]]
        if handler.opt.get("public"):
            public.append(f"{method} {path}")
            assert not operation.get("security"), f"{method} {path} is public"
        else:
            assert operation.get("security") == [{"SessionToken": []}, {"SessionCookie": []}, {"ApiKey": []}], path
    assert {"POST /api/auth/login", "POST /api/auth/register", "GET /api/health"} <= set(public)


async def test_every_operation_documents_its_errors_as_problem_details(client: AsyncTestClient) -> None:
    document = await openapi_document(client)
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    assert {"type", "title", "status", "detail"} <= set(document["components"]["schemas"]["Problem"]["required"])
    problems = []
    for method, path, operation in operations(document):
        where = f"{method} {path}"
        responses = operation["responses"]
        errors = {int(status): body for status, body in responses.items() if int(status) >= 400}
        if not errors:
            problems.append(f"{where}: no error responses")
        for status, body in errors.items():
            content = body.get("content", {})
            if operation["operationId"] == "health" and status == 503:
                continue  # health answers 503 with its own report of what is down
            if content.get("application/problem+json", {}).get("schema") != problem_ref:
                problems.append(f"{where}: {status} is not documented as a problem document")
        expected = {503}
        if operation.get("security"):
            expected |= {401, 403}
        if any(p["in"] == "path" for p in operation.get("parameters", [])):
            expected |= {400, 404, 422}
        if "requestBody" in operation:
            expected |= {400, 413, 415, 422}
        if method != "GET":
            expected.add(409)
        if missing := expected - errors.keys():
            problems.append(f"{where}: does not document {sorted(missing)}")
    assert not problems, "\n".join(problems)
    assert "429" in document["paths"]["/api/auth/login"]["post"]["responses"]
    assert "429" in document["paths"]["/api/auth/register"]["post"]["responses"]


async def test_request_bodies_are_described_as_the_validator_reads_them(client: AsyncTestClient) -> None:
    schemas = (await openapi_document(client))["components"]["schemas"]
    create = schemas["AgentCreate"]
    assert create["additionalProperties"] is False, "unknown fields are refused, so the schema says so"
    assert create["properties"]["password"]["minLength"] == 8
    update = schemas["ContactUpdate"]["properties"]
    # Constraints inside lists and maps survive (tags' pattern, attribute keys' pattern).
    assert update["tags"]["items"]["pattern"]
    assert update["custom_attributes"]["propertyNames"]["pattern"]
    # Permissions are an enum of the catalogue, so an unknown one is a schema violation.
    assert set(schemas["RoleCreate"]["properties"]["permissions"]["items"]["enum"]) == set(PERMISSIONS)


async def test_every_protected_operation_without_credentials_is_401(client: AsyncTestClient) -> None:
    document = await openapi_document(client)
    checked = 0
    for method, path, operation in operations(document):
        if not operation.get("security"):
            continue
        concrete = re.sub(r"\{[^}]+\}", str(uuid4()), path)
        response = await client.request(method, concrete, json={} if method in ("POST", "PUT", "PATCH") else None)
        assert_problem(response, 401)
        checked += 1
    assert checked >= 50


async def test_options_names_every_method_of_a_path(client: AsyncTestClient) -> None:
    document = await openapi_document(client)
    for path, item in document["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", str(uuid4()), path)
        response = await client.options(concrete)
        assert response.status_code == 204, path
        allowed = set(response.headers["allow"].split(", ")) - {"HEAD", "OPTIONS"}
        assert allowed == {method.upper() for method in item}, path


async def test_a_body_that_is_not_json_is_415(client: AsyncTestClient, tenant: Tenant) -> None:
    for content_type, body in (
        ("text/plain", '{"name": "Sales"}'),
        ("application/x-www-form-urlencoded", "name=Sales"),
        ("multipart/form-data; boundary=x", '--x\r\nContent-Disposition: form-data; name="name"\r\n\r\nSales\r\n--x--'),
    ):
        response = await client.post(
            "/api/divisions", content=body, headers=tenant.headers | {"content-type": content_type}
        )
        assert "application/json" in assert_problem(response, 415)["detail"]
    assert (await client.get("/api/divisions", headers=tenant.headers)).json()["total"] == 0
    # JSON under a +json type is JSON.
    response = await client.post(
        "/api/divisions",
        content='{"name": "Sales"}',
        headers=tenant.headers | {"content-type": "application/merge-patch+json"},
    )
    assert response.status_code == 201, response.text


async def test_validation_messages_say_what_is_expected_in_words(client: AsyncTestClient, tenant: Tenant) -> None:
    body = assert_problem(
        await client.post(
            "/api/agents",
            json={"email": "not-an-email", "name": "  ", "password": "long enough"},
            headers=tenant.headers,
        ),
        400,
    )
    messages = {e["field"]: e["message"] for e in body["errors"]}
    assert messages == {"email": "must be an email address, such as ada@example.com"}
    assert "regex" not in body["detail"]
    response = await client.get("/api/conversations", params={"status": "open,lost"}, headers=tenant.headers)
    [error] = assert_problem(response, 400)["errors"]
    assert error["message"].startswith("must be one or more of open, pending")


async def test_openapi_ui_is_served(client: AsyncTestClient) -> None:
    response = await client.get("/schema")
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]


# ------------------------------------------------------------------ errors


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body = response.json()
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body


async def test_errors_are_problem_details(client: AsyncTestClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    assert_problem(await client.get("/api/no-such-thing", headers=tenant.headers), 404)
    assert_problem(await client.get(f"/api/agents/{uuid4()}", headers=tenant.headers), 404)
    assert_problem(await client.put("/api/agents", json={}, headers=tenant.headers), 405)
    assert_problem(await client.get("/api/agents"), 401)
    assert_problem(await client.get("/api/agents", headers={"Authorization": "Bearer not.a.jwt"}), 401)
    assert_problem(await client.get("/api/agents", headers={"X-API-Key": "osk_nope"}), 401)
    assert_problem(await client.get("/api/roles", headers=agent["headers"]), 403)
    body = assert_problem(await client.post("/api/agents", json={"name": "x"}, headers=tenant.headers), 400)
    assert body["errors"]
    assert all(e["field"] and e["message"] for e in body["errors"])
    assert_problem(await client.get("/api/agents", params={"per_page": 1000}, headers=tenant.headers), 400)
    conflict = await client.post(
        "/api/agents",
        json={"email": agent["email"], "name": "Again", "password": "long enough"},
        headers=tenant.headers,
    )
    assert_problem(conflict, 409)
    login = await client.post("/api/auth/login", json={"email": tenant.admin_email, "password": "wrong!"})
    client.cookies.clear()
    assert_problem(login, 401)


async def test_errors_do_not_leak_internals(client: AsyncTestClient, tenant: Tenant) -> None:
    response = await client.post(
        "/api/agents",
        json={"email": "x@example.com", "name": "Nul \x00 byte", "password": "long enough"},
        headers=tenant.headers,
    )
    body = assert_problem(response, 400)
    for internal in ("Traceback", "asyncpg", "SELECT", "INSERT", "omnistream/"):
        assert internal not in response.text, body


# ------------------------------------------------------------------ request ids


async def test_every_response_carries_a_request_id(client: AsyncTestClient, tenant: Tenant) -> None:
    responses = [
        await client.get("/api/health"),
        await client.get("/api/agents", headers=tenant.headers),
        await client.get("/api/agents"),
        await client.get("/api/no-such-thing"),
        await client.get("/metrics"),
        await client.get("/schema/openapi.json"),
    ]
    ids = [r.headers.get("x-request-id") for r in responses]
    assert all(ids), ids
    assert len(set(ids)) == len(ids), "request ids repeat"
    for request_id in ids:
        assert re.fullmatch(r"[0-9a-f]{32}", request_id), request_id


async def test_an_incoming_request_id_is_echoed(client: AsyncTestClient, tenant: Tenant) -> None:
    mine = uuid4().hex
    for response in (
        await client.get("/api/health", headers={"X-Request-ID": mine}),
        await client.get("/api/agents", headers=tenant.headers | {"X-Request-ID": mine}),
        await client.get("/api/agents", headers={"X-Request-ID": mine}),  # an error too
    ):
        assert response.headers["x-request-id"] == mine
    dashed = str(uuid4())
    assert (await client.get("/api/health", headers={"X-Request-ID": dashed})).headers["x-request-id"] == dashed


async def test_a_malformed_request_id_is_replaced(client: AsyncTestClient) -> None:
    for bad in ("not valid!", "<script>", "x" * 200):
        response = await client.get("/api/health", headers={"X-Request-ID": bad})
        assert response.status_code == 200
        assert response.headers["x-request-id"] != bad
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


# ------------------------------------------------------------------ metrics


async def test_metrics_in_prometheus_text(client: AsyncTestClient, tenant: Tenant) -> None:
    await client.get("/api/agents", headers=tenant.headers)
    await client.get(f"/api/agents/{uuid4()}", headers=tenant.headers)
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "# HELP " in text
    assert "# TYPE " in text
    samples = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert all(re.fullmatch(r"[a-zA-Z_:][\w:]*(\{.*\})? \S+", line) for line in samples), samples[:5]
    requests = [line for line in samples if "_requests_total" in line and 'app_name="omnistream"' in line]
    assert any('path="/api/agents"' in line and 'status_code="200"' in line for line in requests), requests
    # Paths are grouped by route, so ids do not explode the label set.
    assert not any(re.search(r"/api/agents/[0-9a-f-]{36}", line) for line in samples)
    assert any('status_code="404"' in line for line in requests), requests


async def test_metrics_and_schema_need_no_credentials(client: AsyncTestClient) -> None:
    for path in ("/metrics", "/schema/openapi.json", "/schema"):
        response = await client.get(path)
        assert response.status_code == 200, f"{path}: {response.status_code}"


async def test_a_metrics_token_keeps_metrics_to_whoever_holds_it(settings: Settings) -> None:
    guarded = msgspec.structs.replace(settings, metrics_token="scrape-secret")
    async with AsyncTestClient(app=create_app(guarded)) as client:
        for refused in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "scrape-secret"}):
            response = await client.get("/metrics", headers=refused)
            assert response.status_code == 401, refused
            assert "OMNISTREAM_METRICS_TOKEN" in response.json()["detail"]
        allowed = await client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
        assert allowed.status_code == 200
        assert "# TYPE " in allowed.text
        assert (await client.get("/schema/openapi.json")).status_code == 200


# ------------------------------------------------------------------ dependency resolution


async def test_dependencies_that_wait_on_each_other_still_resolve_concurrently() -> None:
    """Resolving in line is only for batches that cannot wait; two that do still run side by side
    (resolved one after the other, each would wait for the other forever)."""
    resolve_dependencies_in_line()
    first_ready, second_ready = asyncio.Event(), asyncio.Event()

    async def first() -> str:
        first_ready.set()
        await asyncio.wait_for(second_ready.wait(), 5)
        return "first"

    async def second() -> str:
        second_ready.set()
        await asyncio.wait_for(first_ready.wait(), 5)
        return "second"

    def plain() -> str:
        return "plain"

    def other_plain() -> str:
        return "other"

    @get("/waiting", sync_to_thread=False)
    def waiting(a: NamedDependency[str], b: NamedDependency[str], c: NamedDependency[str]) -> str:
        return a + b + c

    @get("/plain", sync_to_thread=False)
    def only_plain(c: NamedDependency[str], d: NamedDependency[str]) -> str:
        return c + d

    app = Litestar(
        [waiting, only_plain],
        dependencies={
            "a": Provide(first),
            "b": Provide(second),
            "c": Provide(plain, sync_to_thread=False),
            "d": Provide(other_plain, sync_to_thread=False),
        },
    )
    async with AsyncTestClient(app) as client:
        assert (await client.get("/waiting")).text == "firstsecondplain"
        assert (await client.get("/plain")).text == "plainother"
