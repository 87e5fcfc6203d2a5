"""Waiting for what happens a moment later: poll a probe until it holds, or fail by a deadline.

In an event-driven system most effects land after the call that caused them returns (an order is
confirmed once two services have exchanged events), so a test asks again until the answer comes,
never sleeps a fixed time. The failure names what was awaited and what the last attempt saw, so a
CI log tells why without a rerun.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_INTERVAL_SECONDS = 0.1
_SHOWN_CHARACTERS = 1000


async def eventually(
    probe: Callable[[], Awaitable[T]],
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    interval: float = DEFAULT_INTERVAL_SECONDS,
    what: str | None = None,
) -> T:
    """Await `probe` until it returns something truthy, and return that.

    An `AssertionError` raised by the probe counts as "not yet", so a probe may assert what it
    expects; any other exception is a failure at once. After `timeout` seconds, raises
    `AssertionError` naming `what` (else the probe's name) and the last answer or assertion.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = await probe()
        except AssertionError as error:
            last = f"the last attempt failed: {_shown(error)}"
        else:
            if result:
                return result
            last = f"the last attempt returned {_shown(result)}"
        if time.monotonic() >= deadline:
            awaited = what or getattr(probe, "__qualname__", repr(probe))
            raise AssertionError(f"timed out after {timeout:g}s waiting for {awaited}; {last}")
        await asyncio.sleep(min(interval, max(0.0, deadline - time.monotonic())))


def _shown(value: object) -> str:
    text = repr(value) if not isinstance(value, AssertionError) else str(value) or "AssertionError"
    return text if len(text) <= _SHOWN_CHARACTERS else f"{text[:_SHOWN_CHARACTERS]}..."
