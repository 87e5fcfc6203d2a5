"""What the three databases and the broker hold right now, read directly (never through a proxy).

The services never read each other's database; the chaos checker does, because it is the only
way to prove from the outside that every side agrees and that nothing happened twice.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import aio_pika
import asyncpg

from broker.topology import TOPOLOGY
from shared.persistence.database import dsn
from tests.chaos.transient import through_outages
from tests.support.events import dead_letters

# Which events each service consumes: these must all be in the consumer's inbox.
CONSUMED_BY_USER_SVC = ("order.created", "order.rejected", "order.cancelled")
CONSUMED_BY_INVENTORY_SVC = CONSUMED_BY_USER_SVC
CONSUMED_BY_ORDER_SVC = ("user.registered", "user.credit_reserved", "user.credit_rejected")
CONSUMED_BY_ORDER_SVC_FROM_INVENTORY = ("inventory.stock_reserved", "inventory.stock_rejected")


@dataclass(frozen=True)
class Order:
    id: uuid.UUID
    user_id: uuid.UUID
    status: str
    reason: str | None
    total: int
    version: int
    idempotency_key: str | None
    quantities: Counter[str]
    """sku -> the quantity of it over the order's lines"""


@dataclass(frozen=True)
class UserRow:
    id: uuid.UUID
    credit_limit: int
    credit_reserved: int
    version: int


@dataclass(frozen=True)
class Reservation:
    order_id: uuid.UUID
    user_id: uuid.UUID
    amount: int
    state: str
    reason: str | None


@dataclass(frozen=True)
class StockRow:
    sku: str
    on_hand: int
    reserved: int
    version: int


@dataclass(frozen=True)
class StockReservation:
    order_id: uuid.UUID
    status: str
    items: dict[str, int]
    """sku -> quantity it holds (reserved) or held (released)"""
    version: int


@dataclass(frozen=True)
class StockEvent:
    """An outbox row of inventory_svc, in decision order per SKU (it locks the stocks)."""

    id: uuid.UUID
    type: str
    order_id: uuid.UUID | None
    items: dict[str, int]
    """sku -> quantity, of a reservation event"""
    skus: tuple[str, ...]
    """the SKUs that fell short, of a rejection"""


@dataclass(frozen=True)
class Event:
    """An outbox row: its type, the order it concerns (if any) and the amount it carries."""

    id: uuid.UUID
    type: str
    subject: str
    order_id: uuid.UUID | None
    amount: int | None
    reason: str | None


@dataclass(frozen=True)
class Customer:
    name: str | None
    status: str | None
    version: int


@dataclass(frozen=True)
class Snapshot:
    orders: dict[uuid.UUID, Order]
    users: dict[uuid.UUID, UserRow]
    reservations: dict[uuid.UUID, Reservation]
    order_events: list[Event]
    user_events: list[Event]
    customers: dict[uuid.UUID, Customer]
    stocks: dict[str, StockRow]
    stock_reservations: dict[uuid.UUID, StockReservation]
    stock_events: list[StockEvent]
    unpublished: dict[str, int]
    """service -> outbox rows not yet published"""
    unconsumed: dict[str, int]
    """consuming service -> published events of the other service missing from its inbox"""


async def take(*, user_db: str, order_db: str, inventory_db: str) -> Snapshot:
    return await through_outages(
        lambda: _take(user_db=user_db, order_db=order_db, inventory_db=inventory_db)
    )


async def _take(*, user_db: str, order_db: str, inventory_db: str) -> Snapshot:
    users_side = await asyncpg.connect(dsn(user_db))
    orders_side = await asyncpg.connect(dsn(order_db))
    inventory_side = await asyncpg.connect(dsn(inventory_db))
    try:
        order_events = _events(await orders_side.fetch(EVENTS))
        user_events = _events(await users_side.fetch(EVENTS))
        stock_events = [_stock_event(r) for r in await inventory_side.fetch(STOCK_EVENTS)]
        user_inbox = await _inbox(users_side)
        order_inbox = await _inbox(orders_side)
        inventory_inbox = await _inbox(inventory_side)
        quantities: dict[uuid.UUID, Counter[str]] = {}
        for r in await orders_side.fetch("SELECT order_id, sku, quantity FROM order_items"):
            quantities.setdefault(r["order_id"], Counter())[r["sku"]] += r["quantity"]
        return Snapshot(
            orders={
                r["id"]: Order(**r, quantities=quantities.get(r["id"], Counter()))
                for r in await orders_side.fetch(
                    "SELECT id, user_id, status, reason, total, version, idempotency_key"
                    " FROM orders"
                )
            },
            users={
                r["id"]: UserRow(**r)
                for r in await users_side.fetch(
                    "SELECT id, credit_limit, credit_reserved, version FROM users"
                )
            },
            reservations={
                r["order_id"]: Reservation(**r)
                for r in await users_side.fetch(
                    "SELECT order_id, user_id, amount, state, reason FROM credit_reservations"
                )
            },
            order_events=order_events,
            user_events=user_events,
            customers={
                r["id"]: Customer(r["name"], r["status"], r["version"])
                for r in await orders_side.fetch("SELECT id, name, status, version FROM customers")
            },
            stocks={
                r["sku"]: StockRow(**r)
                for r in await inventory_side.fetch(
                    "SELECT sku, on_hand, reserved, version FROM stock"
                )
            },
            stock_reservations={
                r["order_id"]: StockReservation(
                    order_id=r["order_id"],
                    status=r["status"],
                    items=_quantities(json.loads(r["items"])),
                    version=r["version"],
                )
                for r in await inventory_side.fetch(
                    "SELECT order_id, status, items, version FROM stock_reservations"
                )
            },
            stock_events=stock_events,
            unpublished={
                "user_svc": await users_side.fetchval(UNPUBLISHED),
                "order_svc": await orders_side.fetchval(UNPUBLISHED),
                "inventory_svc": await inventory_side.fetchval(UNPUBLISHED),
            },
            unconsumed={
                "user_svc": _missing(order_events, CONSUMED_BY_USER_SVC, user_inbox),
                "order_svc": _missing(user_events, CONSUMED_BY_ORDER_SVC, order_inbox)
                + _missing(stock_events, CONSUMED_BY_ORDER_SVC_FROM_INVENTORY, order_inbox),
                "inventory_svc": _missing(order_events, CONSUMED_BY_INVENTORY_SVC, inventory_inbox),
            },
        )
    finally:
        await users_side.close()
        await orders_side.close()
        await inventory_side.close()


# In `seq` order: for one user, that is the order in which user_svc decided (it locks the user).
EVENTS = """
    SELECT id, type, subject,
           (data ->> 'order_id')::uuid AS order_id,
           coalesce(data ->> 'amount', data ->> 'total')::bigint AS amount,
           data ->> 'reason' AS reason
    FROM (SELECT seq, id, type, subject, convert_from(body, 'UTF8')::jsonb -> 'data' AS data
          FROM outbox) AS events
    ORDER BY seq
"""
# In `seq` order: for one SKU, that is the order in which inventory_svc decided (it locks it).
STOCK_EVENTS = """
    SELECT id, type, convert_from(body, 'UTF8')::jsonb -> 'data' AS data FROM outbox ORDER BY seq
"""
UNPUBLISHED = "SELECT count(*) FROM outbox WHERE published_at IS NULL"


def _events(rows: Iterable[asyncpg.Record]) -> list[Event]:
    return [Event(**r) for r in rows]


def _stock_event(row: asyncpg.Record) -> StockEvent:
    data = json.loads(row["data"])
    order_id = data.get("order_id")
    return StockEvent(
        id=row["id"],
        type=row["type"],
        order_id=None if order_id is None else uuid.UUID(order_id),
        items=_quantities(data.get("items", [])),
        skus=tuple(data.get("skus", [])),
    )


def _quantities(items: Iterable[dict[str, object]]) -> dict[str, int]:
    return {str(item["sku"]): int(str(item["quantity"])) for item in items}


async def _inbox(connection: asyncpg.Connection) -> set[uuid.UUID]:
    return {r["event_id"] for r in await connection.fetch("SELECT event_id FROM inbox")}


def _missing(
    events: Iterable[Event | StockEvent], types: tuple[str, ...], inbox: set[uuid.UUID]
) -> int:
    return sum(1 for e in events if e.type in types and e.id not in inbox)


async def queue_depths(amqp_url: str) -> dict[str, int]:
    """Messages ready in every service queue and its delay queues (not the DLQs)."""
    return await through_outages(lambda: _queue_depths(amqp_url))


async def _queue_depths(amqp_url: str) -> dict[str, int]:
    names = [n for q in TOPOLOGY.queues for n in (q.name, *q.retry_queues)]
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        depths = {}
        for name in names:
            queue = await channel.declare_queue(name, passive=True)
            depths[name] = queue.declaration_result.message_count or 0
        return depths


async def dead_letter_ids(amqp_url: str) -> dict[str, set[str]]:
    """message id -> the DLQs holding it, for every message in every DLQ (left where it is):
    a message routed to two queues can land in both DLQs."""
    return await through_outages(lambda: _dead_letter_ids(amqp_url))


async def _dead_letter_ids(amqp_url: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for queue in TOPOLOGY.queues:
        for message in await dead_letters(amqp_url, queue.dead_letter_queue):
            found.setdefault(str(message.message_id), set()).add(queue.dead_letter_queue)
    return found
