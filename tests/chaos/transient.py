"""Retrying the test's own reads and publishes through a server outage.

The checker and the outside publisher talk to PostgreSQL and RabbitMQ directly; a server
restarting (this run's fault, or another test run's on the same machine) must delay them, not
fail the run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiormq
import asyncpg
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

T = TypeVar("T")

OUTAGE_SECONDS = 60.0
TRANSIENT = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, aiormq.AMQPError)


async def through_outages(action: Callable[[], Awaitable[T]]) -> T:
    """`action()`, tried again while the servers are unreachable, for up to OUTAGE_SECONDS."""
    async for attempt in AsyncRetrying(
        stop=stop_after_delay(OUTAGE_SECONDS),
        wait=wait_exponential(multiplier=0.2, max=2),
        retry=retry_if_exception_type(TRANSIENT),
        reraise=True,
    ):
        with attempt:
            return await action()
    raise AssertionError("unreachable: tenacity re-raises the last error")
