"""Rate limits on the two doors attackers knock on: login and registration (OWASP API4).

Per client (the peer address) they bound credential stuffing and mass sign-ups; per account
(the normalised email) they bound guessing one user's password, however many addresses the
guesses come from. Only failed logins count against an account, so its owner logging in often
is never locked out by their own successes.

They count in the service's rate-limit store (`shared.web.rate_limits`): process memory by default,
or the Redis of `RATE_LIMIT_STORAGE_URL`, where every replica counts against the same limit.
Like every limit there, they fail open while that store is unreachable. The moving window: a
login attempt is rare enough that keeping one entry per attempt costs nothing, and it never
lets a burst through at a window boundary.
"""

from __future__ import annotations

import limits

from shared.errors import TooManyRequests
from shared.web.rate_limits import Limiter, RateLimitStore, Usage
from user_svc.settings import UserSettings


class Throttle:
    def __init__(self, limit: str, *, scope: str, limiter: Limiter) -> None:
        self._item = limits.parse(limit)
        self._scope = scope
        self._limiter = limiter

    async def hit(self, key: str) -> None:
        """Count one attempt; TooManyRequests when it is over the limit."""
        self._refuse_unless_allowed(await self._limiter.hit(self._item, self._scope, key))

    async def check(self, key: str) -> None:
        """TooManyRequests when the limit is already reached, without counting an attempt."""
        self._refuse_unless_allowed(await self._limiter.test(self._item, self._scope, key))

    def _refuse_unless_allowed(self, usage: Usage) -> None:
        if not usage.allowed:
            raise TooManyRequests(
                f"too many {self._scope} attempts; retry in {usage.retry_after} s",
                retry_after=usage.retry_after,
            )


class Throttles:
    def __init__(self, settings: UserSettings, store: RateLimitStore) -> None:
        limiter = store.moving_window()
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
