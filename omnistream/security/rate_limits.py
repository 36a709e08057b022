"""Failed-login throttling in Redis, per email and per client IP (moving windows from `limits`)."""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from omnistream.errors import TooManyRequests


class LoginThrottle:
    def __init__(self, redis_url: str, prefix: str, *, per_email: int, per_ip: int, window_seconds: int) -> None:
        uri = redis_url.replace("redis://", "async+redis://", 1).replace("rediss://", "async+rediss://", 1)
        self.storage = RedisStorage(uri, implementation="redispy", key_prefix=f"{prefix}:limits")
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.per_email = RateLimitItemPerSecond(per_email, window_seconds)
        self.per_ip = RateLimitItemPerSecond(per_ip, window_seconds)

    async def check(self, email: str, ip: str) -> None:
        """Refuse with 429 and Retry-After while either budget of failures is spent."""
        for item, scope, key in ((self.per_email, "login-email", email), (self.per_ip, "login-ip", ip)):
            if not await self.limiter.test(item, scope, key):
                stats = await self.limiter.get_window_stats(item, scope, key)
                retry_after = max(1, math.ceil(stats.reset_time - time.time()))
                raise TooManyRequests(
                    "too many failed sign-in attempts; try again later",
                    headers={"Retry-After": str(retry_after)},
                    retry_after=retry_after,
                )

    async def failed(self, email: str, ip: str) -> None:
        await self.limiter.hit(self.per_email, "login-email", email)
        await self.limiter.hit(self.per_ip, "login-ip", ip)

    async def succeeded(self, email: str) -> None:
        await self.limiter.clear(self.per_email, "login-email", email)
