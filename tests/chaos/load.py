"""The load generator: many users place orders (some over their credit, some cancelled, some
for stock that runs out) while faults are injected, as well-behaved clients would.

Before the load, an administrator (an email in user_svc's `ADMIN_EMAILS`) gives a few SKUs their
stock through inventory_svc's API: half of them too little for the orders that will ask for them,
so they sell out and later orders are rejected `out_of_stock`, half plenty. Orders mix lines of
those stock-managed SKUs with lines of SKUs that have no stock record.

Clients talk straight to the replicas' HTTP ports, spreading requests over the replicas of a
service like a load balancer. A request that fails the way a fault makes it fail (connection
refused or reset, timeout, 5xx, 503) is retried, on any replica, until its deadline:

- `POST /orders` always carries an `Idempotency-Key`, and a retry sends the same key and body,
  so a retried request never creates a second order. Every order id the API acknowledged (202)
  is recorded, by key;
- a cancellation sends `If-Match` with the version just read; on 412 (the order changed in the
  meantime, or our own earlier attempt did commit) it reads the order again and decides again.

Concurrency is bounded, and orders are released at a steady pace over the planned duration.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from tests.support.settings import SIGNING_KEY

log = logging.getLogger(__name__)

CONCURRENCY = 32
REQUEST_DEADLINE_SECONDS = 90.0
REQUEST_TIMEOUT_SECONDS = 10.0
CANCEL_SHARE = 0.15
TAIL_SHARE = 0.05
OVER_LIMIT_SHARE = 0.05
STOCK_MANAGED_SKUS = 6
STOCK_LINE_SHARE = 0.4
SCARCE_ORDERS_PER_UNIT = 10
"""A scarce SKU has one unit per this many orders of the load: less than they ask for."""
TOKEN_TTL_SECONDS = 6 * 3600
PASSWORD = "correct horse battery"


class LoadError(Exception):
    """The API answered something no fault explains (a bug, not an outage)."""


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    token: str


@dataclass(frozen=True)
class OrderIntent:
    user: User
    key: str
    items: tuple[dict[str, Any], ...]
    cancel_after: float | None
    """Seconds after placing it to cancel the order, if it is to be cancelled."""

    @property
    def total(self) -> int:
        return sum(int(i["quantity"]) * int(i["unit_price"]) for i in self.items)


@dataclass
class LoadResult:
    users: list[User] = field(default_factory=list)
    stock: dict[str, int] = field(default_factory=dict)
    """Every stock-managed SKU and the on_hand it was given."""
    sent: dict[str, OrderIntent] = field(default_factory=dict)
    """Every order intent sent at least once, by idempotency key."""
    acknowledged: dict[str, str] = field(default_factory=dict)
    """Idempotency key -> the order id the API answered with (202)."""
    abandoned: list[str] = field(default_factory=list)
    """Requests that never got an answer before their deadline."""
    unexpected: list[str] = field(default_factory=list)
    """Answers no fault explains."""
    cancelled: set[str] = field(default_factory=set)
    retries: Counter[str] = field(default_factory=Counter)
    """Retried requests, by what went wrong."""
    failures: list[tuple[float, str]] = field(default_factory=list)
    """Each retried request: when (time.monotonic()) and what went wrong."""
    last_acknowledged: float = 0.0
    """time.monotonic() of the last order acknowledged"""


class Replicas:
    """HTTP access to one service's replicas, retrying what a fault can cause."""

    def __init__(self, urls: Sequence[str], result: LoadResult, rng: random.Random) -> None:
        self._clients = [
            httpx.AsyncClient(
                base_url=url,
                timeout=REQUEST_TIMEOUT_SECONDS,
                limits=httpx.Limits(max_connections=CONCURRENCY * 2),
            )
            for url in urls
        ]
        self._result = result
        self._rng = rng

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """The first answer that is not an outage, from any replica, or TimeoutError."""
        all_headers = {**(headers or {})}
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        deadline = time.monotonic() + REQUEST_DEADLINE_SECONDS
        start = self._rng.randrange(len(self._clients))
        for attempt in itertools.count():
            client = self._clients[(start + attempt) % len(self._clients)]
            try:
                response = await client.request(method, path, headers=all_headers, **kwargs)
            except httpx.TransportError as error:
                what = type(error).__name__
            else:
                if response.status_code < 500:
                    return response
                what = f"HTTP {response.status_code}"
            self._result.retries[what] += 1
            self._result.failures.append((time.monotonic(), what))
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(min(1.0, 0.05 * 2 ** min(attempt, 5)) * self._rng.uniform(0.5, 1))
        raise TimeoutError(f"{method} {path}: no answer in {REQUEST_DEADLINE_SECONDS}s")


class Served(Protocol):
    """A replica of a service, where its API answers."""

    @property
    def url(self) -> str: ...


@dataclass
class LoadGenerator:
    user_urls: Sequence[str]
    order_urls: Sequence[str]
    stock_urls: Sequence[str]
    rng: random.Random
    credit_limit: int
    result: LoadResult = field(default_factory=LoadResult)

    @classmethod
    def over(
        cls,
        replicas_of: Callable[[str], Sequence[Served]],
        *,
        rng: random.Random,
        credit_limit: int,
    ) -> LoadGenerator:
        """The load of a stack whose replicas of each service `replicas_of` names."""
        return cls(
            user_urls=[r.url for r in replicas_of("user_svc")],
            order_urls=[r.url for r in replicas_of("order_svc")],
            stock_urls=[r.url for r in replicas_of("inventory_svc")],
            rng=rng,
            credit_limit=credit_limit,
        )

    async def register_users(self, count: int) -> list[User]:
        users = Replicas(self.user_urls, self.result, self.rng)
        gate = asyncio.Semaphore(8)

        async def one() -> User:
            async with gate:
                return await self._register(users)

        try:
            self.result.users = list(await asyncio.gather(*(one() for _ in range(count))))
        finally:
            await users.aclose()
        return self.result.users

    async def stock_up(self, *, admin_email: str, orders: int) -> dict[str, int]:
        """As the administrator, give each stock-managed SKU its stock: for a load of `orders`,
        half of them scarce, half plenty."""
        users = Replicas(self.user_urls, self.result, self.rng)
        stock = Replicas(self.stock_urls, self.result, self.rng)
        try:
            await self._register(users, admin_email)
            login = await users.request(
                "POST", "/auth/token", data={"username": admin_email, "password": PASSWORD}
            )
            token = _expect(login, 200)["access_token"]
            for number in range(STOCK_MANAGED_SKUS):
                sku = f"STOCK-{number}"
                scarce = number % 2 == 0
                on_hand = max(1, orders // SCARCE_ORDERS_PER_UNIT) if scarce else orders
                await _set_stock(stock, token, sku, on_hand)
                self.result.stock[sku] = on_hand
        finally:
            await users.aclose()
            await stock.aclose()
        return self.result.stock

    async def _register(self, users: Replicas, email: str | None = None) -> User:
        email = email or f"chaos-{uuid.uuid4().hex[:12]}@example.com"
        created = await users.request(
            "POST", "/users", json={"email": email, "name": "Chaos", "password": PASSWORD}
        )
        if created.status_code == 409:
            # An earlier attempt committed, its answer was lost: log in to learn the id.
            login = await users.request(
                "POST", "/auth/token", data={"username": email, "password": PASSWORD}
            )
            me = await users.request("GET", "/users/me", token=_expect(login, 200)["access_token"])
            user_id = uuid.UUID(_expect(me, 200)["id"])
        else:
            user_id = uuid.UUID(_expect(created, 201)["id"])
        token = SIGNING_KEY.issue(user_id, ttl_seconds=TOKEN_TTL_SECONDS)
        return User(user_id, token)

    def intents(self, count: int) -> list[OrderIntent]:
        """Random orders over the users; their totals often exceed the credit that is left."""
        intents = []
        for _ in range(count):
            if self.rng.random() < OVER_LIMIT_SHARE:
                items: tuple[dict[str, Any], ...] = (
                    _item(1, self.rng.randint(self.credit_limit + 1, 2 * self.credit_limit)),
                )
            else:
                items = tuple(self._line() for _ in range(self.rng.randint(1, 3)))
            cancel_after = self.rng.uniform(0, 1.5) if self.rng.random() < CANCEL_SHARE else None
            intents.append(
                OrderIntent(
                    user=self.rng.choice(self.result.users),
                    key=str(uuid.uuid4()),
                    items=items,
                    cancel_after=cancel_after,
                )
            )
        return intents

    def _line(self) -> dict[str, Any]:
        """A line of a stock-managed SKU (if there are any) or of one with no stock record."""
        line = _item(self.rng.randint(1, 2), self.rng.randint(50, 800))
        if self.result.stock and self.rng.random() < STOCK_LINE_SHARE:
            line["sku"] = self.rng.choice(sorted(self.result.stock))
        return line

    async def run(
        self, intents: Sequence[OrderIntent], *, seconds: float, hold_tail_until: asyncio.Event
    ) -> LoadResult:
        """Release the intents evenly over `seconds`, at most CONCURRENCY flows at once.

        The last TAIL_SHARE of them also wait for `hold_tail_until`: orders are still being
        placed when the last fault hits, however long the faults took."""
        orders = Replicas(self.order_urls, self.result, self.rng)
        gate = asyncio.Semaphore(CONCURRENCY)
        start = time.monotonic()
        step = seconds / max(1, len(intents))
        tail = len(intents) - max(1, int(len(intents) * TAIL_SHARE))

        async def flow(i: int, intent: OrderIntent) -> None:
            await asyncio.sleep(max(0.0, start + i * step - time.monotonic()))
            if i >= tail:
                await hold_tail_until.wait()
            async with gate:
                await self._order_flow(orders, intent)

        try:
            await asyncio.gather(*(flow(i, intent) for i, intent in enumerate(intents)))
        finally:
            await orders.aclose()
        return self.result

    async def decided_order(self, *, timeout: float) -> bool:
        """Place one more order, recorded like the others, and wait until user_svc decided it:
        True once the whole saga worked end to end, False if it did not within `timeout`."""
        (intent,) = self.intents(1)
        intent = OrderIntent(
            user=intent.user, key=intent.key, items=intent.items, cancel_after=None
        )
        orders = Replicas(self.order_urls, self.result, self.rng)
        deadline = time.monotonic() + timeout
        try:
            await self._order_flow(orders, intent)
            order_id = self.result.acknowledged.get(intent.key)
            while order_id is not None and time.monotonic() < deadline:
                order = await orders.request("GET", f"/orders/{order_id}", token=intent.user.token)
                if _expect(order, 200)["status"] != "pending":
                    return True
                await asyncio.sleep(0.1)
            return False
        finally:
            await orders.aclose()

    async def _order_flow(self, orders: Replicas, intent: OrderIntent) -> None:
        self.result.sent[intent.key] = intent
        try:
            response = await orders.request(
                "POST",
                "/orders",
                token=intent.user.token,
                headers={"Idempotency-Key": intent.key},
                json={"items": list(intent.items)},
            )
            order_id = str(_expect(response, 202)["id"])
            self.result.acknowledged[intent.key] = order_id
            self.result.last_acknowledged = time.monotonic()
            if intent.cancel_after is not None:
                await asyncio.sleep(intent.cancel_after)
                if await self._cancel(orders, intent.user, order_id):
                    self.result.cancelled.add(order_id)
        except TimeoutError as error:
            self.result.abandoned.append(str(error))
        except LoadError as error:
            self.result.unexpected.append(str(error))

    async def _cancel(self, orders: Replicas, user: User, order_id: str) -> bool:
        """Cancel with the version just read; True once the order is cancelled."""
        path = f"/orders/{order_id}"
        while True:
            order = _expect(await orders.request("GET", path, token=user.token), 200)
            if order["status"] == "cancelled":
                return True  # an earlier attempt of ours committed, its answer was lost
            if order["status"] == "rejected":
                return False
            response = await orders.request(
                "POST",
                f"{path}/cancel",
                token=user.token,
                headers={"If-Match": f'"{order["version"]}"'},
            )
            if response.status_code == 200:
                return True
            if response.status_code == 409:
                return False  # rejected since we read it
            _expect(response, 412)  # changed since we read it: read it again


async def _set_stock(stock: Replicas, token: str, sku: str, on_hand: int) -> None:
    """Create the SKU's stock; a 428 means an earlier attempt of ours created it (its answer
    was lost): then it must hold what we set."""
    created = await stock.request("PUT", f"/stock/{sku}", token=token, json={"on_hand": on_hand})
    if created.status_code == 428:
        found = _expect(await stock.request("GET", f"/stock/{sku}", token=token), 200)
        if found["on_hand"] != on_hand:
            raise LoadError(f"stock of {sku} is {found}, not the {on_hand} we set")
        return
    _expect(created, 201)


def _item(quantity: int, unit_price: int) -> dict[str, Any]:
    return {"sku": f"SKU-{unit_price % 97}", "quantity": quantity, "unit_price": unit_price}


def _expect(response: httpx.Response, status: int) -> dict[str, Any]:
    if response.status_code != status:
        raise LoadError(
            f"{response.request.method} {response.request.url.path}: expected {status}, "
            f"got {response.status_code}: {response.text[:500]}"
        )
    body: dict[str, Any] = response.json()
    return body
