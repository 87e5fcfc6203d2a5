"""Rate limits on the two doors attackers knock on: login and registration (OWASP API4).

Per client (the peer address) they bound credential stuffing and mass sign-ups; per account
(the normalised email) they bound guessing one user's password, however many addresses the
guesses come from. Only failed logins count against an account, so its owner logging in often
is never locked out by their own successes.

Counters live in process memory (the `limits` library, moving window). With N replicas the
effective limit is N times the setting, which still bounds an attack; a shared store would make
it exact at the cost of a network round trip on every attempt.
"""

from __future__ import annotations

import math
import time

import limits
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from shared.errors import TooManyRequests
from user_svc.settings import UserSettings


class Throttle:
    def __init__(self, limit: str, *, scope: str, limiter: MovingWindowRateLimiter) -> None:
        self._item = limits.parse(limit)
        self._scope = scope
        self._limiter = limiter

    async def hit(self, key: str) -> None:
        """Count one attempt; TooManyRequests when it is over the limit."""
        if not await self._limiter.hit(self._item, self._scope, key):
            await self._refuse(key)

    async def check(self, key: str) -> None:
        """TooManyRequests when the limit is already reached, without counting an attempt."""
        if not await self._limiter.test(self._item, self._scope, key):
            await self._refuse(key)

    async def _refuse(self, key: str) -> None:
        stats = await self._limiter.get_window_stats(self._item, self._scope, key)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise TooManyRequests(
            f"too many {self._scope} attempts; retry in {retry_after} s", retry_after=retry_after
        )


class Throttles:
    def __init__(self, settings: UserSettings) -> None:
        limiter = MovingWindowRateLimiter(MemoryStorage())
        self.login_per_client = Throttle(settings.login_rate_limit, scope="login", limiter=limiter)
        self.failed_login_per_account = Throttle(
            settings.login_account_rate_limit, scope="failed login", limiter=limiter
        )
        self.registration_per_client = Throttle(
            settings.registration_rate_limit, scope="registration", limiter=limiter
        )
        self.registration_per_account = Throttle(
            settings.registration_account_rate_limit,
            scope="registration for this email",
            limiter=limiter,
        )
