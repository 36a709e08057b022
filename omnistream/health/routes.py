from __future__ import annotations

import asyncio
from importlib.metadata import version
from typing import Literal

from litestar import Controller, Response, get, head
from litestar.openapi import ResponseSpec

from omnistream.kit.deps import DB, RedisClient
from omnistream.kit.schema import Schema
from omnistream.security.guards import PUBLIC

ComponentStatus = Literal["ok", "down"]


class Health(Schema):
    status: Literal["ok", "degraded"]
    version: str
    postgres: ComponentStatus
    redis: ComponentStatus


async def _probe(check) -> ComponentStatus:  # type: ignore[no-untyped-def]
    try:
        async with asyncio.timeout(2):
            return "ok" if await check() else "down"
    except Exception:
        return "down"


class Links(Schema):
    docs: str
    openapi: str
    health: str


class ApiIndex(Schema):
    """Where things are: what a newcomer at the root of the service can follow."""

    name: str
    version: str
    links: Links


def _index() -> ApiIndex:
    return ApiIndex(
        name="OmniStream CRM API",
        version=version("omnistream"),
        links=Links(docs="/schema", openapi="/schema/openapi.json", health="/api/health"),
    )


class IndexController(Controller):
    tags = ["Health"]

    @get("/", operation_id="rootIndex", summary="API index", opt=PUBLIC)
    async def root(self) -> ApiIndex:
        return _index()

    @get("/api", operation_id="apiIndex", summary="API index", opt=PUBLIC)
    async def api(self) -> ApiIndex:
        return _index()


class HealthController(Controller):
    path = "/api/health"
    tags = ["Health"]

    @get(
        operation_id="health",
        summary="API Gateway health check",
        opt=PUBLIC,
        description="200 when PostgreSQL and Redis both answer; 503 naming the one that does not.",
        responses={503: ResponseSpec(data_container=Health, description="PostgreSQL or Redis is down")},
    )
    async def health(self, db: DB, redis: RedisClient) -> Response[Health]:
        postgres_status, redis_status = await asyncio.gather(_probe(db.ping), _probe(redis.ping))
        healthy = postgres_status == redis_status == "ok"
        body = Health(
            status="ok" if healthy else "degraded",
            version=version("omnistream"),
            postgres=postgres_status,
            redis=redis_status,
        )
        return Response(body, status_code=200 if healthy else 503)

    @head(
        operation_id="healthHead",
        summary="API Gateway health check without a body",
        opt=PUBLIC,
        include_in_schema=False,
    )
    async def health_head(self, db: DB, redis: RedisClient) -> Response[None]:
        """For uptime checkers that probe with HEAD: the same status code, no body."""
        postgres_status, redis_status = await asyncio.gather(_probe(db.ping), _probe(redis.ping))
        return Response(None, status_code=200 if postgres_status == redis_status == "ok" else 503)


CONTROLLERS = [IndexController, HealthController]
