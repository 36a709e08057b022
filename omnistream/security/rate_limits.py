"""Failed-login throttling in Redis (moving windows from `limits`).

Three counts of failed sign-ins within the window, each keyed so that nobody without the
password can lock a user out from elsewhere:

* per client address: past `per_ip` failures the address is refused (429), whatever the email;
* per client address and email: past `per_ip_and_email` failures that address is refused for
  that email (429); the right password from any other address still works;
* per email, from every address: past `slow_after_per_email` failures each attempt for the
  email waits `slowdown_seconds` before its password is checked. Guessing from many addresses
  is slowed, never turned into a lockout of the account's owner.

The addresses counted are `proxies.throttle_key`s: an IPv6 client counts by its /64.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from omnistream.errors import TooManyRequests
from omnistream.security.proxies import throttle_key


class LoginThrottle:
    def __init__(
        self,
        redis_url: str,
        prefix: str,
        *,
        per_ip: int,
        per_ip_and_email: int,
        slow_after_per_email: int,
        slowdown_seconds: float,
        window_seconds: int,
    ) -> None:
        uri = redis_url.replace("redis://", "async+redis://", 1).replace("rediss://", "async+rediss://", 1)
        self.storage = RedisStorage(uri, implementation="redispy", key_prefix=f"{prefix}:limits")
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.per_ip = RateLimitItemPerSecond(per_ip, window_seconds)
        self.per_ip_and_email = RateLimitItemPerSecond(per_ip_and_email, window_seconds)
        self.per_email = RateLimitItemPerSecond(slow_after_per_email, window_seconds)
        self.slowdown_seconds = slowdown_seconds

    async def check(self, email: str, ip: str | None) -> float:
        """Refuse with 429 and Retry-After while the address's budget, or the address's budget for
        this email, is spent; otherwise return how many seconds to wait before checking the password."""
        address = throttle_key(ip)
        refusing = ((self.per_ip, ("login-ip", address)), (self.per_ip_and_email, ("login-ip-email", address, email)))
        for item, key in refusing:
            if not await self.limiter.test(item, *key):
                stats = await self.limiter.get_window_stats(item, *key)
                retry_after = max(1, math.ceil(stats.reset_time - time.time()))
                raise TooManyRequests(
                    "too many failed sign-in attempts from this address; try again later",
                    headers={"Retry-After": str(retry_after)},
                    retry_after=retry_after,
                )
        if not await self.limiter.test(self.per_email, "login-email", email):
            return self.slowdown_seconds
        return 0.0

    async def failed(self, email: str, ip: str | None) -> None:
        address = throttle_key(ip)
        await self.limiter.hit(self.per_ip, "login-ip", address)
        await self.limiter.hit(self.per_ip_and_email, "login-ip-email", address, email)
        await self.limiter.hit(self.per_email, "login-email", email)

    async def succeeded(self, email: str, ip: str | None) -> None:
        """The address knows the password: its failures for this email are forgiven. Its failures
        for other emails, and the email's failures from elsewhere, still count."""
        await self.limiter.clear(self.per_ip_and_email, "login-ip-email", throttle_key(ip), email)
