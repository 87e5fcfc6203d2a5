"""Baseline `floor_saga_orders_per_s`: the saga's transactions and messages as one plain asyncpg +
aio-pika program, with no framework and no validation.

It is the least a program can do and still keep the saga's guarantees: every state change and
the event it causes commit in one transaction (the outbox), a relay publishes committed events
with publisher confirms and marks them in the transaction it commits after the confirms, and a
consumer claims each event in the inbox, applies it and writes its own events in one
transaction, then acks. The statements are the services' own, on databases migrated like theirs
(same tables, indexes and `NOTIFY outbox` trigger), into the same topology (quorum queues), and
the saga has the services' two participants, reserving in parallel, so that the ratio compares
the same work:

- placing an order: insert the order and its items (as arrays), append `order.created`;
- user side, per batch of `order.created`: claim the inbox rows, lock the users, read the
  orders' earlier decisions, insert the reservations, update the users (versioned), append
  `user.credit_reserved`;
- inventory side, per batch of `order.created`: claim the inbox rows, read the orders' earlier
  decisions, lock the stocks of the orders' SKUs in sku order (those that have one are the
  stock-managed ones), insert the reservations with the quantities they hold, update the
  stocks (versioned), append `inventory.stock_reserved`;
- order side, per batch of `user.credit_reserved` and `inventory.stock_reserved`, in either
  order: claim the inbox rows, lock the orders, record which participant reserved, and once
  both have, update the order to `confirmed` (versioned) and append `order.confirmed`; the
  first of the two is written at the order's version unchanged, as order_svc does (nothing a
  client sees has changed).

Neither participant ever refuses: the floor has no rejection and no compensation, and raises
if an order would need one (the bench gives every user credit, and every SKU stock, that no run
comes close to using).

Consumers take batches the way ours do (what is waiting, up to the service's batch size, one
transaction, acks after the commit), with the services' prefetch, pool and relay batch sizes.
What it leaves out is exactly what the ratio prices: HTTP and FastAPI, pydantic models and the
envelope's validation, the domain model, the unit of work and its repositories, middleware,
metrics, logging and tracing.

It runs as three processes, as the services do: `user` and `inventory` (each the consumer of
`order.created` on its service's queue and the relay of its outbox) until stopped, and `order`
(the relay of its outbox, the consumer of both participants' reservations, and the closed-loop
clients, each placing an order and waiting for its `order.confirmed` on a tap queue before
placing the next), which prints orders confirmed per second in each window (and the CPU it
spent on them) as one JSON line and exits:

    python -m bench.baselines.floor_saga user USER_DB AMQP_URL
    python -m bench.baselines.floor_saga inventory INVENTORY_DB AMQP_URL
    python -m bench.baselines.floor_saga order ORDER_DB AMQP_URL USERS_FILE \
        --clients 32 --warmup 3 --windows 1 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import secrets
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import uvloop
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
)

from bench.ours.saga import order_body
from broker.topology import (
    INVENTORY_SVC_QUEUE,
    ORDER_SVC_QUEUE,
    TOPOLOGY,
    USER_SVC_QUEUE,
    declare,
)
from shared.persistence.database import dsn
from shared.settings import ServiceSettings

DEFAULTS = ServiceSettings.model_fields
PREFETCH: int = DEFAULTS["consumer_prefetch"].default
BATCH_SIZE: int = DEFAULTS["consumer_batch_size"].default
RELAY_BATCH_SIZE: int = DEFAULTS["relay_batch_size"].default
POLL_SECONDS: float = DEFAULTS["relay_poll_seconds"].default
POOL_SIZE: int = DEFAULTS["database_pool_size"].default
CONTENT_TYPE = "application/cloudevents+json"
TAP_QUEUE = "bench.floor.tap"

INBOX_CLAIM = """
INSERT INTO inbox (consumer, event_id, event_type)
SELECT $1, unnest($2::uuid[]), unnest($3::text[])
ON CONFLICT (consumer, event_id) DO NOTHING
RETURNING event_id
"""
OUTBOX_APPEND = "INSERT INTO outbox (id, type, subject, body) VALUES ($1, $2, $3, $4)"
RELAY_CLAIM = """
UPDATE outbox SET published_at = now()
WHERE seq IN (
    SELECT seq FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED
)
RETURNING seq, id, type, body
"""

ADD_ORDER = """
INSERT INTO orders (id, user_id, status, reason, credit_reserved, stock_reserved, total, version,
                    created_at, updated_at, idempotency_key, request_fingerprint)
VALUES ($1, $2, 'pending', NULL, false, false, $3, 1, $4, $4, NULL, NULL)
ON CONFLICT ON CONSTRAINT uq_orders_idempotency_key DO NOTHING
RETURNING id
"""
ADD_ITEMS = """
INSERT INTO order_items (order_id, position, sku, quantity, unit_price)
SELECT $1, unnest($2::integer[]), unnest($3::text[]), unnest($4::integer[]), unnest($5::bigint[])
"""
LOCK_ORDERS = """
SELECT id, user_id, total, status, credit_reserved, stock_reserved, version, updated_at FROM orders
WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE
"""
SAVE_ORDERS = """
UPDATE orders SET status = changed.status, credit_reserved = changed.credit_reserved,
                  stock_reserved = changed.stock_reserved, version = changed.version,
                  updated_at = changed.updated_at
FROM unnest($1::uuid[], $2::text[], $3::boolean[], $4::boolean[], $5::integer[], $6::integer[],
            $7::timestamptz[])
    AS changed (id, status, credit_reserved, stock_reserved, version, stored_version, updated_at)
WHERE orders.id = changed.id AND orders.version = changed.stored_version
RETURNING orders.id
"""

LOCK_USERS = """
SELECT id, status, credit_limit, credit_reserved, version FROM users
WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE
"""
DECIDED = "SELECT order_id FROM credit_reservations WHERE order_id = ANY($1::uuid[])"
ADD_RESERVATIONS = """
INSERT INTO credit_reservations (order_id, user_id, amount, state)
SELECT unnest($1::uuid[]), unnest($2::uuid[]), unnest($3::bigint[]), 'reserved'
ON CONFLICT (order_id) DO NOTHING
RETURNING order_id
"""
RESERVE_CREDIT = """
UPDATE users SET credit_reserved = changed.credit_reserved, version = changed.version,
                 updated_at = changed.updated_at
FROM unnest($1::uuid[], $2::bigint[], $3::integer[], $4::integer[], $5::timestamptz[])
    AS changed (id, credit_reserved, version, stored_version, updated_at)
WHERE users.id = changed.id AND users.version = changed.stored_version
RETURNING users.id
"""

STOCK_DECIDED = "SELECT order_id FROM stock_reservations WHERE order_id = ANY($1::uuid[])"
LOCK_STOCKS = """
SELECT sku, on_hand, reserved, version FROM stock
WHERE sku = ANY($1::text[]) ORDER BY sku FOR UPDATE
"""
ADD_STOCK_RESERVATIONS = """
INSERT INTO stock_reservations (order_id, status, items, version)
SELECT unnest($1::uuid[]), 'reserved', unnest($2::jsonb[]), 1
ON CONFLICT (order_id) DO NOTHING
RETURNING order_id
"""
RESERVE_STOCK = """
UPDATE stock SET reserved = changed.reserved, version = changed.version,
                 updated_at = changed.updated_at
FROM unnest($1::text[], $2::bigint[], $3::integer[], $4::integer[], $5::timestamptz[])
    AS changed (sku, reserved, version, stored_version, updated_at)
WHERE stock.sku = changed.sku AND stock.version = changed.stored_version
RETURNING stock.sku
"""

Outgoing = tuple[uuid.UUID, str, str, bytes]  # an outbox row: id, type, subject, body


def event(
    event_type: str,
    *,
    source: str,
    subject: uuid.UUID,
    data: dict[str, Any],
    version: int,
    correlation: str,
    cause: dict[str, Any] | None = None,
) -> Outgoing:
    """An outbox row carrying a CloudEvent with the same attributes as the services' own."""
    event_id = uuid.uuid4()
    trace_id = cause["traceparent"].split("-")[1] if cause else secrets.token_hex(16)
    envelope = {
        "specversion": "1.0",
        "id": str(event_id),
        "source": source,
        "type": event_type,
        "subject": str(subject),
        "time": datetime.now(UTC).isoformat(),
        "datacontenttype": "application/json",
        "data": data,
        "aggregateversion": version,
        "correlationid": correlation,
        **({"causationid": cause["id"]} if cause else {}),
        "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01",
    }
    body = json.dumps(envelope, separators=(",", ":")).encode()
    return event_id, event_type, str(subject), body


async def append(connection: asyncpg.Connection, rows: Sequence[Outgoing]) -> None:
    if rows:
        await connection.executemany(OUTBOX_APPEND, rows)


class Relay:
    """Claims a batch and marks it published in one statement, publishes it with confirms, and
    commits only after every confirm; woken by `NOTIFY outbox`, polling as a fallback."""

    def __init__(self, pool: asyncpg.Pool, database_url: str, amqp: AbstractConnection) -> None:
        self._pool = pool
        self._url = database_url
        self._amqp = amqp
        self._wake = asyncio.Event()

    async def run(self) -> None:
        channel = await self._amqp.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(TOPOLOGY.exchange.name, ensure=False)
        listener = await asyncpg.connect(dsn(self._url))
        await listener.add_listener("outbox", lambda *_: self._wake.set())
        try:
            while True:
                self._wake.clear()
                while await self._publish_batch(exchange) == RELAY_BATCH_SIZE:
                    pass
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
        finally:
            await listener.close()

    async def _publish_batch(self, exchange: AbstractExchange) -> int:
        async with self._pool.acquire() as connection, connection.transaction():
            rows = await connection.fetch(RELAY_CLAIM, RELAY_BATCH_SIZE)
            rows.sort(key=lambda row: row["seq"])
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            body=row["body"],
                            message_id=str(row["id"]),
                            type=row["type"],
                            content_type=CONTENT_TYPE,
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        ),
                        routing_key=row["type"],
                    )
                    for row in rows
                )
            )
        return len(rows)


Apply = Callable[[asyncpg.Connection, list[dict[str, Any]]], Awaitable[None]]


class Consumer:
    """Batches of what is waiting (up to the batch size), one transaction each: the inbox claim,
    `apply` on the events claimed now, commit, then the acks."""

    def __init__(self, pool: asyncpg.Pool, queue: str, apply: Apply) -> None:
        self._pool = pool
        self._queue = queue
        self._apply = apply
        self._delivered: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()

    async def run(self, amqp: AbstractConnection) -> None:
        channel = await amqp.channel()
        await channel.set_qos(prefetch_count=PREFETCH)
        queue = await channel.get_queue(self._queue)
        workers = [asyncio.create_task(self._work()) for _ in range(PREFETCH // BATCH_SIZE)]
        await queue.consume(self._delivered.put)
        await asyncio.gather(*workers)

    async def _work(self) -> None:
        while True:
            batch = [await self._delivered.get()]
            while len(batch) < BATCH_SIZE and not self._delivered.empty():
                batch.append(self._delivered.get_nowait())
            events = [json.loads(message.body) for message in batch]
            async with self._pool.acquire() as connection, connection.transaction():
                claimed = {
                    str(row[0])
                    for row in await connection.fetch(
                        INBOX_CLAIM,
                        self._queue,
                        [e["id"] for e in events],
                        [e["type"] for e in events],
                    )
                }
                await self._apply(connection, [e for e in events if e["id"] in claimed])
            for message in batch:
                await message.ack()


async def reserve_credit(connection: asyncpg.Connection, events: list[dict[str, Any]]) -> None:
    """user_svc's decision on a batch of `order.created`: reserve each order's total."""
    orders = [e["data"] for e in events]
    users = {
        str(row["id"]): dict(row)
        for row in await connection.fetch(LOCK_USERS, [o["user_id"] for o in orders])
    }
    decided = {
        str(row[0]) for row in await connection.fetch(DECIDED, [o["order_id"] for o in orders])
    }
    reservations: list[tuple[str, str, int]] = []
    stored: dict[str, int] = {}
    outgoing: list[Outgoing] = []
    for envelope, order in zip(events, orders, strict=True):
        user = users.get(order["user_id"])
        total = order["total"]
        if (
            user is None
            or order["order_id"] in decided
            or user["status"] != "active"
            or user["credit_reserved"] + total > user["credit_limit"]
        ):
            raise RuntimeError(f"the floor has no credit rejection: order {order['order_id']}")
        stored.setdefault(order["user_id"], user["version"])
        user["credit_reserved"] += total
        user["version"] += 1
        reservations.append((order["order_id"], order["user_id"], total))
        outgoing.append(
            event(
                "user.credit_reserved",
                source="/user_svc",
                subject=user["id"],
                data={"user_id": order["user_id"], "order_id": order["order_id"], "amount": total},
                version=user["version"],
                correlation=envelope["correlationid"],
                cause=envelope,
            )
        )
    if reservations:
        ids, owners, amounts = zip(*reservations, strict=True)
        await connection.fetch(ADD_RESERVATIONS, ids, owners, amounts)
        changed = [users[key] for key in stored]
        now = datetime.now(UTC)
        written = await connection.fetch(
            RESERVE_CREDIT,
            [u["id"] for u in changed],
            [u["credit_reserved"] for u in changed],
            [u["version"] for u in changed],
            [stored[key] for key in stored],
            [now] * len(changed),
        )
        if len(written) != len(changed):
            raise RuntimeError("a user changed under the batch")
    await append(connection, outgoing)


async def reserve_stock(connection: asyncpg.Connection, events: list[dict[str, Any]]) -> None:
    """inventory_svc's decision on a batch of `order.created`: reserve each order's lines of
    stock-managed SKUs, summed per SKU (the order's other lines need no stock)."""
    orders = [e["data"] for e in events]
    decided = {
        str(row[0])
        for row in await connection.fetch(STOCK_DECIDED, [o["order_id"] for o in orders])
    }
    skus = list({item["sku"] for order in orders for item in order["items"]})
    stocks = {row["sku"]: dict(row) for row in await connection.fetch(LOCK_STOCKS, skus)}
    reservations: list[tuple[uuid.UUID, str]] = []
    stored: dict[str, int] = {}
    outgoing: list[Outgoing] = []
    for envelope, order in zip(events, orders, strict=True):
        needed: dict[str, int] = {}
        for item in order["items"]:
            if item["sku"] in stocks:
                needed[item["sku"]] = needed.get(item["sku"], 0) + item["quantity"]
        if order["order_id"] in decided or any(
            stocks[sku]["on_hand"] - stocks[sku]["reserved"] < quantity
            for sku, quantity in needed.items()
        ):
            raise RuntimeError(f"the floor has no stock rejection: order {order['order_id']}")
        for sku, quantity in needed.items():
            stored.setdefault(sku, stocks[sku]["version"])
            stocks[sku]["reserved"] += quantity
            stocks[sku]["version"] += 1
        items = [{"sku": sku, "quantity": quantity} for sku, quantity in needed.items()]
        order_id = uuid.UUID(order["order_id"])
        reservations.append((order_id, json.dumps(items)))
        outgoing.append(
            event(
                "inventory.stock_reserved",
                source="/inventory_svc",
                subject=order_id,
                data={"order_id": order["order_id"], "items": items},
                version=1,  # a new reservation's
                correlation=envelope["correlationid"],
                cause=envelope,
            )
        )
    if reservations:
        ids, held = zip(*reservations, strict=True)
        added = await connection.fetch(ADD_STOCK_RESERVATIONS, ids, held)
        if len(added) != len(ids):
            raise RuntimeError("another transaction decided orders of the batch")
    if stored:
        changed = [stocks[sku] for sku in stored]
        now = datetime.now(UTC)
        written = await connection.fetch(
            RESERVE_STOCK,
            list(stored),
            [s["reserved"] for s in changed],
            [s["version"] for s in changed],
            list(stored.values()),
            [now] * len(changed),
        )
        if len(written) != len(changed):
            raise RuntimeError("a stock changed under the batch")
    await append(connection, outgoing)


# The order's column that records each participant's reservation, by the event that brings it.
HELD = {"user.credit_reserved": "credit_reserved", "inventory.stock_reserved": "stock_reserved"}


async def confirm_orders(connection: asyncpg.Connection, events: list[dict[str, Any]]) -> None:
    """order_svc's step on a batch of reservations from either participant: record each on its
    pending order, and confirm the order once it holds both, whichever came first."""
    orders = {
        str(row["id"]): dict(row)
        for row in await connection.fetch(LOCK_ORDERS, [e["data"]["order_id"] for e in events])
    }
    now = datetime.now(UTC)
    stored: dict[str, int] = {}
    outgoing: list[Outgoing] = []
    for envelope in events:
        order_id = envelope["data"]["order_id"]
        order, held = orders[order_id], HELD[envelope["type"]]
        if order["status"] != "pending" or order[held]:
            continue
        stored.setdefault(order_id, order["version"])
        order[held] = True
        if not (order["credit_reserved"] and order["stock_reserved"]):
            continue
        order["status"] = "confirmed"
        order["version"] += 1
        order["updated_at"] = now
        outgoing.append(
            event(
                "order.confirmed",
                source="/order_svc",
                subject=order["id"],
                data={
                    "order_id": order_id,
                    "user_id": str(order["user_id"]),
                    "total": order["total"],
                },
                version=order["version"],
                correlation=envelope["correlationid"],
                cause=envelope,
            )
        )
    if stored:
        changed = [orders[order_id] for order_id in stored]
        written = await connection.fetch(
            SAVE_ORDERS,
            [o["id"] for o in changed],
            [o["status"] for o in changed],
            [o["credit_reserved"] for o in changed],
            [o["stock_reserved"] for o in changed],
            [o["version"] for o in changed],
            list(stored.values()),
            [o["updated_at"] for o in changed],
        )
        if len(written) != len(changed):
            raise RuntimeError("an order changed under the batch")
    await append(connection, outgoing)


async def place_order(pool: asyncpg.Pool, user_id: uuid.UUID, sequence: int) -> str:
    """`POST /orders`' transaction: the order, its items, its `order.created`."""
    items = order_body(sequence)["items"]
    order_id = uuid.uuid4()
    total = sum(i["quantity"] * i["unit_price"] for i in items)
    created = event(
        "order.created",
        source="/order_svc",
        subject=order_id,
        data={"order_id": str(order_id), "user_id": str(user_id), "items": items, "total": total},
        version=1,
        correlation=str(order_id),
    )
    async with pool.acquire() as connection, connection.transaction():
        await connection.fetchrow(ADD_ORDER, order_id, user_id, total, datetime.now(UTC))
        await connection.execute(
            ADD_ITEMS,
            order_id,
            list(range(len(items))),
            [i["sku"] for i in items],
            [i["quantity"] for i in items],
            [i["unit_price"] for i in items],
        )
        await append(connection, [created])
    return str(order_id)


class Tap:
    """`order.confirmed` arrivals by order id, for the clients waiting on them."""

    def __init__(self) -> None:
        self._arrived: set[str] = set()
        self._waiting: dict[str, asyncio.Future[None]] = {}

    async def start(self, channel: AbstractChannel) -> None:
        queue = await channel.declare_queue(
            TAP_QUEUE, durable=True, arguments={"x-queue-type": "quorum"}
        )
        await queue.bind(TOPOLOGY.exchange.name, "order.confirmed")
        await queue.consume(self._on_message, no_ack=True)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        order_id = json.loads(message.body)["data"]["order_id"]
        future = self._waiting.pop(order_id, None)
        if future is None:
            self._arrived.add(order_id)
        else:
            future.set_result(None)

    async def confirmed(self, order_id: str, within: float) -> None:
        if order_id in self._arrived:
            self._arrived.remove(order_id)
            return
        future = asyncio.get_running_loop().create_future()
        self._waiting[order_id] = future
        await asyncio.wait_for(future, within)


async def closed_loop(
    pool: asyncpg.Pool,
    tap: Tap,
    users: Sequence[uuid.UUID],
    *,
    clients: int,
    warmup: float,
    windows: int,
    seconds: float,
) -> dict[str, Any]:
    """As `bench.ours.saga.Saga.closed_loop`: orders confirmed per second in each window."""
    measured_from = time.perf_counter() + warmup
    end = measured_from + windows * seconds
    confirmations: list[float] = []
    sequence = itertools.count()

    async def client(index: int) -> None:
        user = users[index % len(users)]
        while time.perf_counter() < end:
            order_id = await place_order(pool, user, next(sequence))
            await tap.confirmed(order_id, within=60)
            confirmations.append(time.perf_counter())

    await asyncio.gather(*(client(i) for i in range(clients)))
    counts = [0] * windows
    for at in confirmations:
        window = int((at - measured_from) // seconds)
        if 0 <= window < windows:
            counts[window] += 1
    return {"windows": [count / seconds for count in counts], "orders": len(confirmations)}


async def participant_side(database_url: str, amqp_url: str, *, queue: str, apply: Apply) -> None:
    """A participant's relay and its consumer of `order.created`, until stopped."""
    async with asyncpg.create_pool(dsn(database_url), min_size=1, max_size=POOL_SIZE) as pool:
        amqp = await aio_pika.connect(amqp_url)
        async with amqp:
            await declare(await amqp.channel())
            await asyncio.gather(
                Relay(pool, database_url, amqp).run(),
                Consumer(pool, queue, apply).run(amqp),
            )


PARTICIPANTS = {
    "user": (USER_SVC_QUEUE.name, reserve_credit),
    "inventory": (INVENTORY_SVC_QUEUE.name, reserve_stock),
}


async def order_side(
    database_url: str, amqp_url: str, users: Sequence[uuid.UUID], options: argparse.Namespace
) -> None:
    async with asyncpg.create_pool(dsn(database_url), min_size=1, max_size=POOL_SIZE) as pool:
        amqp = await aio_pika.connect(amqp_url)
        async with amqp:
            channel = await amqp.channel()
            await declare(channel)
            tap = Tap()
            await tap.start(channel)
            background = [
                asyncio.create_task(Relay(pool, database_url, amqp).run()),
                asyncio.create_task(Consumer(pool, ORDER_SVC_QUEUE.name, confirm_orders).run(amqp)),
            ]
            cpu_before = time.process_time()
            result = await closed_loop(
                pool,
                tap,
                users,
                clients=options.clients,
                warmup=options.warmup,
                windows=options.windows,
                seconds=options.seconds,
            )
            result["cpu_seconds"] = time.process_time() - cpu_before
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
    print(json.dumps(result), flush=True)


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.baselines.floor_saga")
    parser.add_argument("side", choices=(*PARTICIPANTS, "order"))
    parser.add_argument("database_url")
    parser.add_argument("amqp_url")
    parser.add_argument("users", nargs="?", help="order side: a file of user ids, one a line")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--windows", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10.0)
    options = parser.parse_args(argv)
    if options.side in PARTICIPANTS:
        queue, apply = PARTICIPANTS[options.side]
        work = participant_side(options.database_url, options.amqp_url, queue=queue, apply=apply)
    else:
        users = [uuid.UUID(line) for line in Path(options.users).read_text().split()]
        work = order_side(options.database_url, options.amqp_url, users, options)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(until_terminated(work))


async def until_terminated(work: Awaitable[None]) -> None:
    """Run `work`; SIGTERM (the bench stopping the process) cancels it and exits cleanly."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await work


if __name__ == "__main__":
    main(sys.argv[1:])
