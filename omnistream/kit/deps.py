"""What handlers declare to receive the app's shared resources (explicit, by name)."""

from __future__ import annotations

from arq import ArqRedis
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


def _db(state: State) -> Database:
    return state.db


def _redis(state: State) -> Redis:
    return state.redis


def _arq(state: State) -> ArqRedis:
    return state.arq


def _throttle(state: State) -> LoginThrottle:
    return state.throttle


def dependencies(settings: Settings) -> dict[str, Provide]:
    # The app-wide resources are resolved once per app (use_cache); the actor and the list
    # parameters belong to each request.
    return {
        "settings": Provide(lambda: settings, sync_to_thread=False),
        "db": Provide(_db, sync_to_thread=False, use_cache=True),
        "redis": Provide(_redis, sync_to_thread=False, use_cache=True),
        "throttle": Provide(_throttle, sync_to_thread=False, use_cache=True),
        "arq": Provide(_arq, sync_to_thread=False, use_cache=True),
        "actor": Provide(provide_actor, sync_to_thread=False),
        "params": Provide(list_params, sync_to_thread=False),
    }
