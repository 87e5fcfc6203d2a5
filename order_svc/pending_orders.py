"""How many orders wait for their saga, and how long the oldest has waited: for alerting.

An order stays `pending` until the saga's participants have answered. A saga that stalls (a
participant down, its reply dead-lettered, a consumer stuck) fails no request and raises no
handler error; it only leaves orders pending for longer and longer. So the workers measure it,
every interval, from the orders table itself: the one place that knows, whichever replica
placed the order or will decide it. Every worker reports the same figure, so alert on the
maximum. The partial index on pending orders keeps the measurement to the undecided rows,
however long the history.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Gauge

from order_svc.queries import OrderQueries
from shared.web.ops import Check

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 15.0


class PendingOrders:
    """A part of the `worker` and `all` roles (see `shared.runtime.parts.Part`)."""

    def __init__(
        self,
        queries: OrderQueries,
        registry: CollectorRegistry,
        *,
        interval_seconds: float = INTERVAL_SECONDS,
    ) -> None:
        self._queries = queries
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None
        self.count = Gauge(
            "orders_pending", "Orders whose saga is not decided yet.", registry=registry
        )
        self.oldest_age = Gauge(
            "orders_oldest_pending_age_seconds",
            "Age of the oldest order whose saga is not decided yet (0 when there is none).",
            registry=registry,
        )

    @property
    def checks(self) -> Mapping[str, Check]:
        return {}

    async def measure(self) -> None:
        count, oldest = await self._queries.pending()
        self.count.set(count)
        age = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0
        self.oldest_age.set(max(age, 0.0))

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="order_svc-pending-orders")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self.measure()
            except Exception:
                log.exception("measuring pending orders failed; next try in %.0fs", self._interval)
            await asyncio.sleep(self._interval)
