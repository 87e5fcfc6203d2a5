"""Where rate-limit hits are counted, and what happens when that place cannot be reached.

Counters live in process memory by default. With `RATE_LIMIT_STORAGE_URL=redis://...` they live
in Redis, so every replica counts against the same limit (the `limits` library's async Redis
storage; its scripts do each check-and-count in one round trip, atomically).

Limiting is a guard, not a dependency: when the store fails or is slow, the request is served
unlimited (fails open) rather than refused or held. Every store call is bounded by a short
timeout, so a Redis that accepts connections but never answers cannot hang the request path.
After a failure the store is left alone for `STORE_RETRY_SECONDS`: during an outage one request
in that time waits for it, the others are served at once. Each failure is counted
(`rate_limit_storage_errors_total`); the outage is logged once when it starts and once when it
ends, never once per request.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

import limits
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import (
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.errors import StorageError
from prometheus_client import Counter

log = logging.getLogger(__name__)

T = TypeVar("T")

# Far longer than Redis on the same network takes to answer, so that an event loop busy with
# other requests still gets round to the answer in time; short enough that a hung Redis costs a
# request a pause, not a failure.
STORE_TIMEOUT_SECONDS = 0.5
# How long the store is left alone after it failed: requests meanwhile are served unlimited
# without waiting for it.
STORE_RETRY_SECONDS = 1.0


@dataclass(frozen=True)
class Usage:
    """The answer to one hit: allowed or not, what is left and when more comes back.

    `remaining` and `reset_after` are None when the store could not be asked (limiting failed
    open): nothing was counted.
    """

    allowed: bool
    remaining: int | None
    reset_after: int | None

    @property
    def retry_after(self) -> int:
        """Whole seconds a refused client should wait (at least one)."""
        return max(1, self.reset_after or 0)


NOT_COUNTED = Usage(allowed=True, remaining=None, reset_after=None)


class RateLimitStore:
    """The counters of one service process: in memory, or in Redis shared by its replicas."""

    def __init__(self, url: str | None, *, key_prefix: str, errors: Counter) -> None:
        self._storage: Storage = (
            MemoryStorage()
            if url is None
            else RedisStorage(f"async+{url}", key_prefix=key_prefix, wrap_exceptions=True)
        )
        self._errors = errors
        # Where it is, for the log: never the URL, which may hold a password.
        self._where = "memory" if url is None else _host_and_port(url)
        self._retry_at = -math.inf
        self._failing = False

    def sliding_window(self) -> Limiter:
        return Limiter(self, SlidingWindowCounterRateLimiter(self._storage))

    def moving_window(self) -> Limiter:
        return Limiter(self, MovingWindowRateLimiter(self._storage))

    async def ask(self, call: Callable[[], Awaitable[T]]) -> T | None:
        """`call`'s answer, or None when the store failed, was too slow, or is being let be."""
        if time.monotonic() < self._retry_at:
            return None
        try:
            async with asyncio.timeout(STORE_TIMEOUT_SECONDS):
                answer = await call()
        except (StorageError, TimeoutError) as error:
            self._errors.inc()
            self._retry_at = time.monotonic() + STORE_RETRY_SECONDS
            if not self._failing:
                self._failing = True
                log.error(
                    "rate-limit store %s unreachable (%r): requests are served unlimited "
                    "until it answers again",
                    self._where,
                    error,
                )
            return None
        if self._failing:
            self._failing = False
            log.info("rate-limit store %s answers again: limits are enforced", self._where)
        return answer


def _host_and_port(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 6379}"


class Limiter:
    """One counting strategy over a store; every call fails open (see the module docstring)."""

    def __init__(self, store: RateLimitStore, strategy: RateLimiter) -> None:
        self._store = store
        self._strategy = strategy

    async def hit(self, limit: limits.RateLimitItem, *identifiers: str) -> Usage:
        """Count one request against `limit` for `identifiers`, unless it is already spent."""

        async def hit() -> Usage:
            allowed = await self._strategy.hit(limit, *identifiers)
            return await self._usage(limit, identifiers, allowed=allowed)

        return await self._store.ask(hit) or NOT_COUNTED

    async def test(self, limit: limits.RateLimitItem, *identifiers: str) -> Usage:
        """Whether one more request would be allowed, without counting it."""

        async def test() -> Usage:
            allowed = await self._strategy.test(limit, *identifiers)
            return await self._usage(limit, identifiers, allowed=allowed)

        return await self._store.ask(test) or NOT_COUNTED

    async def _usage(
        self, limit: limits.RateLimitItem, identifiers: tuple[str, ...], *, allowed: bool
    ) -> Usage:
        stats = await self._strategy.get_window_stats(limit, *identifiers)
        reset_after = max(0, math.ceil(stats.reset_time - time.time()))
        return Usage(allowed=allowed, remaining=stats.remaining, reset_after=reset_after)
