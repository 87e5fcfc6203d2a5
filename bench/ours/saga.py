"""The saga under load: `POST /orders` until `confirmed`, closed-loop and open-loop.

An order counts as confirmed when its `order.confirmed` event reaches a tap queue of the bench's
own, bound to the `events` exchange: the moment any other service could learn of it, without the
extra load of polling `GET /orders/{id}`. (order_svc commits the confirmation a relay hop
earlier; the figure includes that hop.) An event may arrive before the `POST` has returned under
load; it is kept and matched when the order id becomes known.

- Closed loop (`saga_orders_per_s`): N clients, each places an order and waits for its
  confirmation before placing the next. The run is cut into windows after a warm-up; each window
  is one repetition.
- Open loop (`saga_p50_ms`, `saga_p99_ms`, the sweep): orders are sent at a fixed rate on a
  schedule, whatever the system does, so a slow system cannot slow the load (no coordinated
  omission); evenly spaced, not Poisson.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import statistics
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import aiohttp
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection

from bench.report import percentile
from bench.stack import Customer, Stack, administrator

TAP_QUEUE = "bench.saga.tap"
OUTCOMES = ("order.confirmed", "order.rejected")
INTERMEDIATE = ("order.created", "user.credit_reserved", "inventory.stock_reserved")
# Every order reserves stock as well as credit: its book is one of these stock-managed SKUs, in
# turn (as many as there are closed-loop clients, so that the measurement is not of one hot
# row's lock), and its pen is not stock-managed and passes without a reservation.
STOCKED_SKUS = tuple(f"BOOK-{n:04d}" for n in range(32))
STOCK_ON_HAND = 1_000_000_000  # the contract's largest: no run comes close to selling it


def order_body(sequence: int) -> dict[str, Any]:
    """The `sequence`-th order's body."""
    return {
        "items": [
            {"sku": STOCKED_SKUS[sequence % len(STOCKED_SKUS)], "quantity": 2, "unit_price": 1_500},
            {"sku": "PEN-0042", "quantity": 1, "unit_price": 250},
        ]
    }


async def stock(stack: Stack) -> None:
    """Every SKU of `STOCKED_SKUS` made stock-managed, by the administrator over HTTP."""
    admin = await administrator(stack)
    async with aiohttp.ClientSession(base_url=stack.inventory_svc.url) as client:
        for sku in STOCKED_SKUS:
            async with client.put(
                f"/stock/{sku}",
                json={"on_hand": STOCK_ON_HAND},
                headers={"Authorization": f"Bearer {admin.token}"},
            ) as response:
                if response.status != 201:
                    raise RuntimeError(
                        f"PUT /stock/{sku}: {response.status} {await response.text()}"
                    )


class OrderRejected(Exception):
    pass


@dataclass
class Tap:
    """Confirmation (or rejection) arrival times by order id, from the bench's tap queue; while
    `watching`, also the wall-clock arrival of every event of the saga by event id (when the
    broker delivered it, for `bench.hops`)."""

    arrived: dict[str, tuple[float, str]] = field(default_factory=dict)
    waiting: dict[str, asyncio.Future[tuple[float, str]]] = field(default_factory=dict)
    delivered: dict[str, float] = field(default_factory=dict)
    connection: AbstractRobustConnection | None = None
    queue: AbstractQueue | None = None
    recording: bool = False

    async def start(self, amqp_url: str) -> None:
        self.connection = await aio_pika.connect_robust(amqp_url)
        channel = await self.connection.channel()
        await channel.set_qos(prefetch_count=1_000)
        self.queue = await channel.declare_queue(
            TAP_QUEUE, durable=True, arguments={"x-queue-type": "quorum"}
        )
        for routing_key in OUTCOMES:
            await self.queue.bind("events", routing_key)
        await self.queue.consume(self._on_message, no_ack=True)

    async def stop(self) -> None:
        if self.connection is not None:
            await self.connection.close()

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[None]:
        """Record when each event of the saga reaches the broker's consumers. The saga's
        intermediate events come to the tap only meanwhile: the extra deliveries would
        otherwise cost the machine's CPU during the throughput figures."""
        assert self.queue is not None
        for routing_key in INTERMEDIATE:
            await self.queue.bind("events", routing_key)
        self.recording = True
        try:
            yield
        finally:
            self.recording = False
            for routing_key in INTERMEDIATE:
                await self.queue.unbind("events", routing_key)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        now = time.perf_counter()
        if self.recording and message.message_id:
            self.delivered[message.message_id] = time.time()
        event: dict[str, Any] = json.loads(message.body)
        if event["type"] not in OUTCOMES:
            return
        order_id = str(event["data"]["order_id"])
        outcome = (now, str(event["type"]))
        future = self.waiting.pop(order_id, None)
        if future is None:
            self.arrived[order_id] = outcome
        elif not future.done():
            future.set_result(outcome)

    async def confirmed_at(self, order_id: str, within: float) -> float:
        outcome = self.arrived.pop(order_id, None)
        if outcome is None:
            future: asyncio.Future[tuple[float, str]] = asyncio.get_running_loop().create_future()
            self.waiting[order_id] = future
            try:
                outcome = await asyncio.wait_for(future, within)
            finally:
                self.waiting.pop(order_id, None)
        at, kind = outcome
        if kind != "order.confirmed":
            raise OrderRejected(f"order {order_id}: {kind}")
        return at


@dataclass(frozen=True)
class ClosedLoop:
    windows: list[float]  # orders confirmed per second in each window after the warm-up
    orders: int  # orders confirmed in all, warm-up included


@dataclass
class Saga:
    stack: Stack
    customers: Sequence[Customer]
    timeout: float
    tap: Tap = field(default_factory=Tap)
    client: aiohttp.ClientSession | None = None
    # While the tap is watching: when each order was sent (wall clock), by order id.
    placed: dict[str, float] = field(default_factory=dict)
    sequence: itertools.count[int] = field(default_factory=itertools.count)

    async def __aenter__(self) -> Saga:
        await stock(self.stack)
        await self.tap.start(self.stack.amqp_url)
        # aiohttp rather than httpx for the load itself: the load generator shares the machine
        # with what it measures, and httpx cost about 7 ms of CPU per order, as much as
        # order_svc itself.
        self.client = aiohttp.ClientSession(
            base_url=self.stack.order_svc.url,
            timeout=aiohttp.ClientTimeout(total=60),
            connector=aiohttp.TCPConnector(limit=512),
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        if self.client is not None:
            await self.client.close()
        await self.tap.stop()

    async def order(self, customer: Customer) -> tuple[str, float, float]:
        """Place one order; return (order id, sent, confirmed) on the perf_counter clock."""
        assert self.client is not None
        sent, sent_at = time.perf_counter(), time.time()
        async with self.client.post(
            "/orders",
            json=order_body(next(self.sequence)),
            headers={"Authorization": f"Bearer {customer.token}"},
        ) as response:
            if response.status != 202:
                raise RuntimeError(f"POST /orders: {response.status} {await response.text()}")
            order_id = str((await response.json())["id"])
        if self.tap.recording:
            self.placed[order_id] = sent_at
        return order_id, sent, await self.tap.confirmed_at(order_id, self.timeout)

    async def closed_loop(
        self, *, clients: int, warmup: float, windows: int, seconds: float
    ) -> ClosedLoop:
        """Orders confirmed per second in each of `windows` windows after the warm-up, and
        how many were confirmed in all (for the CPU they cost)."""
        started = time.perf_counter()
        measured_from = started + warmup
        end = measured_from + windows * seconds
        confirmations: list[float] = []

        async def client(index: int) -> None:
            customer = self.customers[index % len(self.customers)]
            while time.perf_counter() < end:
                _, _, confirmed = await self.order(customer)
                confirmations.append(confirmed)

        await asyncio.gather(*(client(i) for i in range(clients)))
        counts = [0] * windows
        for at in confirmations:
            window = int((at - measured_from) // seconds)
            if 0 <= window < windows:
                counts[window] += 1
        return ClosedLoop([count / seconds for count in counts], len(confirmations))

    async def open_loop(self, *, rate: float, seconds: float) -> dict[str, Any]:
        """Send `rate` orders per second for `seconds`; percentiles of their confirmation."""
        total = max(1, round(rate * seconds))
        latencies: list[float] = []
        failures: dict[str, int] = {}
        tasks: list[asyncio.Task[None]] = []

        async def one(customer: Customer) -> None:
            try:
                _, sent, confirmed = await self.order(customer)
            except (TimeoutError, OrderRejected, RuntimeError, aiohttp.ClientError) as error:
                failures[type(error).__name__] = failures.get(type(error).__name__, 0) + 1
                return
            latencies.append((confirmed - sent) * 1000)

        started = time.perf_counter()
        for i in range(total):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(self.customers[i % len(self.customers)])))
        sending = time.perf_counter() - started
        await asyncio.gather(*tasks)
        finished = time.perf_counter() - started
        return summarise(
            latencies,
            offered=rate,
            sent=total,
            sending_seconds=sending,
            finished_seconds=finished,
            failures=failures,
        )

    async def settle(self) -> None:
        """Let the tap forget confirmations nobody waited for (late ones of timed-out orders)."""
        await asyncio.sleep(0.5)
        self.tap.arrived.clear()


def summarise(
    latencies: Sequence[float],
    *,
    offered: float,
    sent: int,
    sending_seconds: float,
    finished_seconds: float,
    failures: dict[str, int],
) -> dict[str, Any]:
    return {
        "offered_per_s": round(offered, 2),
        "sent": sent,
        "confirmed": len(latencies),
        "failures": failures,
        # Sent on schedule or not: if the client could not keep up, the offered rate is a lie.
        "achieved_send_per_s": round(sent / sending_seconds, 2) if sending_seconds else None,
        "confirmed_per_s": round(len(latencies) / finished_seconds, 2),
        "p50_ms": round(percentile(latencies, 0.50), 2),
        "p90_ms": round(percentile(latencies, 0.90), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "max_ms": round(max(latencies), 2) if latencies else None,
        "mean_ms": round(statistics.fmean(latencies), 2) if latencies else None,
    }
