"""Structured logs: console lines in development, JSON in production, with request id and tenant."""

from __future__ import annotations

import logging
from typing import Any

import structlog
from asgi_correlation_id import correlation_id
from litestar.logging.config import StructLoggingConfig
from litestar.middleware.logging import LoggingMiddlewareConfig
from litestar.plugins.structlog import StructlogConfig, StructlogPlugin

from omnistream.config import Settings


def _add_request_id(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    request_id = correlation_id.get()
    if request_id:
        event.setdefault("request_id", request_id)
    return event


def processors(settings: Settings) -> list[Any]:
    renderer: Any = (
        structlog.processors.JSONRenderer() if settings.log_json else structlog.dev.ConsoleRenderer(colors=False)
    )
    return [
        structlog.contextvars.merge_contextvars,
        _add_request_id,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        renderer,
    ]


def plugin(settings: Settings) -> StructlogPlugin:
    level = logging.getLevelName(settings.log_level.upper())
    return StructlogPlugin(
        StructlogConfig(
            structlog_logging_config=StructLoggingConfig(
                processors=processors(settings),
                wrapper_class=structlog.make_filtering_bound_logger(level if isinstance(level, int) else 20),
                logger_factory=structlog.WriteLoggerFactory(),
                log_exceptions="never",  # errors.from_unexpected logs them once, with context
                pretty_print_tty=False,
            ),
            middleware_logging_config=LoggingMiddlewareConfig(
                # Bodies and credentials are never logged.
                request_log_fields=("method", "path", "query", "client"),
                response_log_fields=("status_code",),
                # Meta's deliveries come by the thousand a second: an access line each would cost a
                # fifth of their handling; what they carry is logged by the webhooks area instead.
                exclude=["^/metrics", "^/api/health", "^/api/webhooks/"],
            ),
            enable_middleware_logging=settings.env != "test",
        )
    )
