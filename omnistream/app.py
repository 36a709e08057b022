"""The Litestar application: `create_app()` builds it; `app` is granian's target."""

from __future__ import annotations

import hmac
import importlib
import importlib.util
import pkgutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any
from uuid import uuid4

import msgspec
from arq import create_pool
from arq.connections import RedisSettings
from asgi_correlation_id import CorrelationIdMiddleware, correlation_id
from asgi_correlation_id.middleware import is_valid_uuid4
from litestar import Controller, Litestar, Router
from litestar.config.app import AppConfig
from litestar.config.cors import CORSConfig
from litestar.connection import ASGIConnection
from litestar.datastructures import Headers, MutableScopeHeaders, State
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import DefineMiddleware
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from litestar.static_files import create_static_files_router
from litestar.stores.memory import MemoryStore
from litestar.stores.redis import RedisStore
from litestar.types import Message, Scope
from redis.asyncio import Redis

import omnistream
from omnistream import logging as app_logging
from omnistream.auth import sessions
from omnistream.config import Settings, load_settings
from omnistream.db import Database
from omnistream.errors import PROBLEM_DETAILS
from omnistream.kit import openapi
from omnistream.kit.body import StrictBodyRequest
from omnistream.kit.deps import dependencies, resolve_dependencies_in_line
from omnistream.kit.routing import repair_options_answers, repair_static_dead_ends
from omnistream.security.guards import NOT_RATE_LIMITED, authorize
from omnistream.security.middleware import jwt_auth
from omnistream.security.proxies import ForwardedClientMiddleware, rate_limit_identifier
from omnistream.security.rate_limits import LoginThrottle

REQUEST_ID_HEADER = "X-Request-ID"


def route_handlers() -> list[type[Controller]]:
    """Every area's controllers: each `omnistream/<area>/routes.py` lists its own in CONTROLLERS."""
    handlers: list[type[Controller]] = []
    for area in sorted(m.name for m in pkgutil.iter_modules(omnistream.__path__) if m.ispkg):
        try:
            routes = importlib.import_module(f"omnistream.{area}.routes")
        except ModuleNotFoundError as exc:
            if exc.name != f"omnistream.{area}.routes":
                raise
            continue
        handlers.extend(routes.CONTROLLERS)
    return handlers


def _outside_auth(*middleware: DefineMiddleware) -> Callable[[AppConfig], AppConfig]:
    """Put middleware outside authentication, which the JWT config inserts outermost: then a 401
    carries its X-Request-ID and is counted, and the authenticated actor knows its request id."""

    def hook(app_config: AppConfig) -> AppConfig:
        app_config.middleware[:0] = middleware
        return app_config

    return hook


async def _request_id_on_every_response(message: Message, scope: Scope) -> None:
    """Responses made outside the route middleware (no such route, refused authentication) get an
    X-Request-ID too: the one already chosen, else the client's if valid, else a fresh one."""
    if message["type"] != "http.response.start":
        return
    headers = MutableScopeHeaders.from_message(message)
    if REQUEST_ID_HEADER not in headers:
        incoming = Headers.from_scope(scope).get(REQUEST_ID_HEADER)
        valid = incoming if incoming and is_valid_uuid4(incoming) else None
        headers[REQUEST_ID_HEADER] = correlation_id.get() or valid or uuid4().hex


def metrics_controller(settings: Settings) -> type[PrometheusController]:
    """Prometheus metrics, behind `OMNISTREAM_METRICS_TOKEN` when one is set."""
    expected = f"Bearer {settings.metrics_token}".encode()

    def token_given(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        given = (connection.headers.get("authorization") or "").encode()
        if not hmac.compare_digest(given, expected):
            raise NotAuthorizedException("metrics need the bearer token set in OMNISTREAM_METRICS_TOKEN")

    class Metrics(PrometheusController):
        guards = [token_given] if settings.metrics_token else []
        include_in_schema = False  # for the operator's scraper, not part of the API clients generate

    return Metrics


VIEWER_ASSETS = "/schema/assets"


def _viewer_assets() -> Path:
    """swagger-ui-py's copy of Swagger UI's scripts and styles, found without importing the package
    (whose own code serves other frameworks)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is missing; reinstall omnistream")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def redis_settings(settings: Settings) -> RedisSettings:
    return RedisSettings.from_dsn(settings.redis_url)


PUBLIC_RATE_LIMIT_STORE = "public_rate_limit"


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or load_settings()
    resolve_dependencies_in_line()
    repair_static_dead_ends()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # What the app connects to is read when it starts, from its state: an app object may be
        # started again with other databases (the tests do, rather than build a new one each time).
        settings: Settings = app.state.settings
        if not settings.database_url or not settings.redis_url:
            raise RuntimeError(
                "DATABASE_URL and REDIS_URL are not set: start with `omnistream dev`, "
                "which provides embedded servers, or point them at your own"
            )
        db = await Database.from_settings(settings)
        if settings.is_production:
            try:
                await db.require_confined_role()
            except RuntimeError:
                await db.close()
                raise
        redis = Redis.from_url(settings.redis_url)
        app.stores.register(
            PUBLIC_RATE_LIMIT_STORE,
            RedisStore(redis, namespace=f"{settings.redis_prefix}:public-rate-limit"),
            allow_override=True,
        )
        arq = await create_pool(
            redis_settings(settings),
            job_serializer=msgspec.msgpack.encode,
            job_deserializer=msgspec.msgpack.decode,
            default_queue_name=f"{settings.redis_prefix}:queue",
        )
        app.state.db = db
        app.state.redis = redis
        app.state.arq = arq
        app.state.throttle = LoginThrottle(
            settings.redis_url,
            settings.redis_prefix,
            per_ip=settings.login_max_failures_per_ip,
            per_ip_and_email=settings.login_max_failures_per_ip_and_email,
            slow_after_per_email=settings.login_slowdown_after_failures_per_email,
            slowdown_seconds=settings.login_slowdown_seconds,
            window_seconds=settings.login_failure_window_seconds,
        )
        try:
            # Every API process hears the others' changes to who is who (auth.sessions caches it).
            async with sessions.change_feed(redis, f"{settings.redis_prefix}:identity-changes"):
                yield
        finally:
            await arq.aclose()
            await redis.aclose()
            await db.close()

    auth = jwt_auth(settings)
    # Only the endpoints opened with PUBLIC_RATE_LIMITED are limited per client address (sign-in
    # failures have their own throttle); a tenant's own traffic is not: its volume is the point.
    public_rate_limit = RateLimitConfig(
        rate_limit=("minute", settings.public_requests_per_minute),
        exclude_opt_key=NOT_RATE_LIMITED,
        store=PUBLIC_RATE_LIMIT_STORE,
        identifier_for_request=rate_limit_identifier,
    )
    # Outermost of all: everything after it sees the client, not the proxy in front of the API.
    proxies = settings.trusted_proxy_networks
    forwarded_client = [DefineMiddleware(ForwardedClientMiddleware, proxies=proxies)] if proxies else []
    prometheus = PrometheusConfig(app_name="omnistream", group_path=True, exclude=["^/metrics"])
    app = Litestar(
        # The guard covers every API route; /schema and /metrics sit outside it.
        route_handlers=[
            Router(
                path="/",
                route_handlers=route_handlers(),
                guards=[authorize],
                middleware=[public_rate_limit.middleware],
                opt={NOT_RATE_LIMITED: True},
            ),
            metrics_controller(settings),
            create_static_files_router(
                path=VIEWER_ASSETS, directories=[_viewer_assets()], include_in_schema=False, send_as_attachment=False
            ),
        ],
        lifespan=[lifespan],
        on_app_init=[
            auth.on_app_init,
            _outside_auth(
                *forwarded_client,
                DefineMiddleware(CorrelationIdMiddleware, header_name=REQUEST_ID_HEADER),
                prometheus.middleware,
            ),
        ],
        before_send=[_request_id_on_every_response],
        # In memory until the app starts and counts in Redis, shared by the API's processes.
        stores={PUBLIC_RATE_LIMIT_STORE: MemoryStore()},
        plugins=[PROBLEM_DETAILS, app_logging.plugin(settings)],
        dependencies=dependencies(),
        request_class=StrictBodyRequest,
        state=State({"settings": settings}),
        openapi_config=OpenAPIConfig(
            title="OmniStream CRM API",
            version=version("omnistream"),
            description="Multi-tenant omnichannel customer-chat CRM. Errors are RFC 9457 problem details.",
            path="/schema",
            # The viewer's scripts come from the swagger-ui-py package, served here: the docs page
            # works on a machine without internet.
            render_plugins=[
                SwaggerRenderPlugin(
                    path="/",
                    js_url=f"{VIEWER_ASSETS}/swagger-ui-bundle.js",
                    css_url=f"{VIEWER_ASSETS}/swagger-ui.css",
                    standalone_preset_js_url=f"{VIEWER_ASSETS}/swagger-ui-standalone-preset.js",
                    favicon=f"<link rel='icon' type='image/png' href='{VIEWER_ASSETS}/favicon-32x32.png'>",
                )
            ],
        ),
        cors_config=CORSConfig(allow_origins=[], allow_credentials=True),
        debug=False,
    )
    openapi.install(app)
    repair_options_answers(app)
    return app


def __getattr__(name: str) -> Litestar:
    # `omnistream.app:app` for granian and tools, built on first access rather than at import.
    if name == "app":
        application = create_app()
        globals()["app"] = application
        return application
    raise AttributeError(name)
