"""What handlers declare to receive the app's shared resources (explicit, by name)."""

from __future__ import annotations

import functools
from typing import Any

from arq import ArqRedis
from litestar._kwargs.cleanup import DependencyCleanupGroup
from litestar._kwargs.dependencies import resolve_dependency
from litestar._kwargs.kwargs_model import KwargsModel
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from redis.asyncio import Redis

from omnistream.config import Settings
from omnistream.db import Database
from omnistream.kit.pagination import ListParams, list_params
from omnistream.security.middleware import provide_actor
from omnistream.security.principal import Actor
from omnistream.security.rate_limits import LoginThrottle

DB = NamedDependency[Database]
RedisClient = NamedDependency[Redis]
AppSettings = NamedDependency[Settings]
Throttle = NamedDependency[LoginThrottle]
CurrentActor = NamedDependency[Actor]
Paging = NamedDependency[ListParams]
Jobs = NamedDependency[ArqRedis]


def _settings(state: State) -> Settings:
    return state.settings


def _db(state: State) -> Database:
    return state.db


def _redis(state: State) -> Redis:
    return state.redis


def _arq(state: State) -> ArqRedis:
    return state.arq


def _throttle(state: State) -> LoginThrottle:
    return state.throttle


def dependencies() -> dict[str, Provide]:
    # The app-wide resources are resolved once per app (use_cache); the actor and the list
    # parameters belong to each request.
    return {
        "settings": Provide(_settings, sync_to_thread=False, use_cache=True),
        "db": Provide(_db, sync_to_thread=False, use_cache=True),
        "redis": Provide(_redis, sync_to_thread=False, use_cache=True),
        "throttle": Provide(_throttle, sync_to_thread=False, use_cache=True),
        "arq": Provide(_arq, sync_to_thread=False, use_cache=True),
        "actor": Provide(provide_actor, sync_to_thread=False),
        "params": Provide(list_params, sync_to_thread=False),
    }


# ------------------------------------------------------------------ resolution

_resolve_concurrently = KwargsModel.resolve_dependencies


async def _resolve_without_task_groups(
    self: KwargsModel, connection: ASGIConnection[Any, Any, Any, Any], kwargs: dict[str, Any]
) -> DependencyCleanupGroup:
    """Litestar 2 resolves a handler's independent dependencies in an anyio task group, even when
    none of them can wait (litestar-org/litestar#4563): for a handler taking `db` and `actor`
    that group cost a fifth of an authenticated request (benchmarks.http). A batch in which at
    most one dependency can wait gains nothing from a task group, so it is resolved in line."""
    if _some_batch_waits_more_than_once(self):
        return await _resolve_concurrently(self, connection, kwargs)
    cleanup_group = DependencyCleanupGroup()
    for batch in self.dependency_batches:
        for dependency in batch:
            await resolve_dependency(dependency, connection, kwargs, cleanup_group)
    return cleanup_group


@functools.lru_cache(maxsize=4096)
def _some_batch_waits_more_than_once(model: KwargsModel) -> bool:
    """Decided once per handler, not on every request: its batches never change."""
    return any(sum(not d.provide.has_sync_callable for d in batch) > 1 for batch in model.dependency_batches)


def resolve_dependencies_in_line() -> None:
    """Install `_resolve_without_task_groups` (once per process; create_app calls it)."""
    KwargsModel.resolve_dependencies = _resolve_without_task_groups  # type: ignore[method-assign]
