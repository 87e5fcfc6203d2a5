"""Ordering properties: no consumer's result depends on the order its events arrive in.

A consumer may see a subject's events in any order and some of them more than once (see
docs/design/ordering.md, "What a consumer may see"). These properties feed shuffled, duplicated and
partly concurrent event streams through the real consumer path (`EventConsumer.handle`: decode,
inbox claim, the service's real handler, commit) into real PostgreSQL, and check that:

- order_svc's customers replica ends where in-order delivery leaves it (versions gate copies);
- every saga step order_svc receives is applied exactly once, however late (state machines gate
  steps, the inbox absorbs duplicates), from both participants (credit and stock);
- user_svc's credit invariants hold under any order (row lock, one reservation row per order,
  tombstone for a cancel that overtakes its create);
- the whole saga, its three services and both participants, ends with both invariants of the
  contract at rest whatever the order of delivery: every user's `credit_reserved` is the sum of
  the totals of their confirmed orders, every SKU's `reserved` the sum of its quantities over
  confirmed orders, and `0 <= reserved <= on_hand`.

A delivery schedule is a permutation of the events with some repeated (a repeat is the same body,
so the same event id), cut into batches handled concurrently, as a consumer with a prefetch above
one does. A failed attempt is handed back after everything already scheduled, as a retry through
a delay queue comes back behind newer messages. Each example uses fresh ids in a database shared
by the module.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Table, bindparam, func, select

from broker.topology import INVENTORY_SVC_QUEUE, ORDER_SVC_QUEUE, USER_SVC_QUEUE, Queue
from inventory_svc import app as inventory_app
from inventory_svc import models as inventory_models
from inventory_svc import uow as inventory_uow
from inventory_svc.domain import Stock
from order_svc import app as order_app
from order_svc import models as order_models
from order_svc import uow as order_uow
from order_svc.domain import Item, OrderStatus
from order_svc.handlers import CancelOrder, PlaceOrder, cancel_order, place_order
from shared.errors import Conflict
from shared.events import (
    CreditRejectionReason,
    DomainEvent,
    EventData,
    OrderCancelled,
    OrderCreated,
    OrderItem,
    OrderRejectionReason,
    StockItem,
    StockRejected,
    StockRejectionReason,
    StockReserved,
    UserCreditRejected,
    UserCreditReserved,
    UserDeactivated,
    UserRegistered,
    UserUpdated,
)
from shared.messaging.consumer import EventConsumer
from shared.messaging.envelope import decode, encode, wrap
from shared.messaging.middleware import Outcome
from shared.observability.metrics import Metrics
from shared.persistence.database import Database, drop_database
from shared.persistence.statements import Statement
from tests.support.databases import new_database
from user_svc import app as user_app
from user_svc import models as user_models
from user_svc import uow as user_uow
from user_svc.domain import ReservationState, User, UserStatus

pytestmark = pytest.mark.integration

EXAMPLES = 40
MAX_IN_FLIGHT = 4
"""Widest batch handled concurrently: a stand-in for the consumer's prefetch."""
MAX_FAILED_ATTEMPTS = 20

PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

Schedule = list[list[int]]


# -- databases, consumers, delivery ------------------------------------------------------------


@pytest.fixture(scope="module")
async def order_database(migrated_templates: None) -> AsyncIterator[Database]:
    """One order_svc database for every example of the module (each uses fresh ids)."""
    url = await new_database("order_svc")
    database = Database(url, pool_size=MAX_IN_FLIGHT)
    yield database
    await database.close()
    await drop_database(url)


@pytest.fixture(scope="module")
async def user_database(migrated_templates: None) -> AsyncIterator[Database]:
    """One user_svc database for every example of the module (each uses fresh ids)."""
    url = await new_database("user_svc")
    database = Database(url, pool_size=MAX_IN_FLIGHT)
    yield database
    await database.close()
    await drop_database(url)


@pytest.fixture(scope="module")
async def inventory_database(migrated_templates: None) -> AsyncIterator[Database]:
    """One inventory_svc database for every example of the module (each uses fresh SKUs)."""
    url = await new_database("inventory_svc")
    database = Database(url, pool_size=MAX_IN_FLIGHT)
    yield database
    await database.close()
    await drop_database(url)


def order_consumer(database: Database) -> EventConsumer[order_uow.OrderUnitOfWork]:
    return EventConsumer(
        queue=ORDER_SVC_QUEUE,
        handlers=order_app.SPEC.handlers,
        unit_of_work=lambda: order_uow.unit_of_work(database),
        inbox_table=order_models.inbox,
        metrics=Metrics(),
        prefetch=MAX_IN_FLIGHT,
        max_attempts=MAX_FAILED_ATTEMPTS,
    )


def user_consumer(database: Database) -> EventConsumer[user_uow.UserUnitOfWork]:
    return EventConsumer(
        queue=USER_SVC_QUEUE,
        handlers=user_app.SPEC.handlers,
        unit_of_work=lambda: user_uow.unit_of_work(database),
        inbox_table=user_models.inbox,
        metrics=Metrics(),
        prefetch=MAX_IN_FLIGHT,
        max_attempts=MAX_FAILED_ATTEMPTS,
    )


def inventory_consumer(database: Database) -> EventConsumer[inventory_uow.InventoryUnitOfWork]:
    return EventConsumer(
        queue=INVENTORY_SVC_QUEUE,
        handlers=inventory_app.SPEC.handlers,
        unit_of_work=lambda: inventory_uow.unit_of_work(database),
        inbox_table=inventory_models.inbox,
        metrics=Metrics(),
        prefetch=MAX_IN_FLIGHT,
        max_attempts=MAX_FAILED_ATTEMPTS,
    )


def body_of(data: EventData, *, subject: UUID, version: int, source: str) -> bytes:
    """The CloudEvent body a relay would publish: a new event id on every call."""
    domain_event = DomainEvent(data=data, subject=subject, aggregate_version=version)
    return encode(wrap(domain_event, source=source))


@dataclass(frozen=True)
class Delivery:
    """What a delivery did: the events applied in each round, in the order of the rounds."""

    rounds: list[list[int]]

    @property
    def applied(self) -> Counter[int]:
        return Counter(index for applied in self.rounds for index in applied)

    @property
    def one_at_a_time(self) -> bool:
        return all(len(applied) <= 1 for applied in self.rounds)

    def round_of(self, index: int) -> int:
        return next(n for n, applied in enumerate(self.rounds) if index in applied)


async def deliver(
    consumer: EventConsumer[Any], bodies: Sequence[bytes], schedule: Schedule
) -> Delivery:
    """Hand `bodies` to the consumer as `schedule` says, one batch (a round) at a time.

    A batch is handled concurrently. A failed attempt is handed back once everything already
    scheduled has been, as a retry through a delay queue comes back behind newer messages.
    """
    rounds: list[list[int]] = []
    failures: list[str] = []
    pending = [list(batch) for batch in schedule]
    while pending:
        batch = pending.pop(0)
        results = await asyncio.gather(*(consumer.handle(bodies[i]) for i in batch))
        rounds.append([])
        retry: list[int] = []
        for index, result in zip(batch, results, strict=True):
            if result.outcome is Outcome.APPLIED:
                rounds[-1].append(index)
            elif result.outcome is not Outcome.DUPLICATE:
                event(f"an attempt failed ({result.exception_type}), retried later")
                failures.append(f"{result.event_type} {result.outcome}: {result.reason}")
                assert len(failures) < MAX_FAILED_ATTEMPTS, failures
                retry.append(index)
        if retry:
            pending.append(retry)
    return Delivery(rounds)


@st.composite
def schedules(draw: st.DrawFn, events: Sequence[int]) -> Schedule:
    """Each of `events` delivered at least once, some again, in any order, in batches."""
    repeats = draw(st.lists(st.sampled_from(events), max_size=len(events)), label="repeated")
    order = draw(st.permutations([*events, *repeats]), label="arrival order")
    width = draw(st.integers(1, MAX_IN_FLIGHT), label="messages in flight")
    return [order[start : start + width] for start in range(0, len(order), width)]


# -- user histories, as user_svc would publish them --------------------------------------------


@dataclass(frozen=True, kw_only=True)
class UserChange:
    kind: Literal["registered", "updated", "deactivated"]
    version: int
    name: str | None = None

    def body(self, user_id: UUID) -> bytes:
        data: EventData
        if self.kind == "registered":
            assert self.name is not None
            data = UserRegistered(
                user_id=user_id, email=f"{user_id}@example.com", name=self.name, credit_limit=100
            )
        elif self.kind == "updated":
            assert self.name is not None
            data = UserUpdated(user_id=user_id, name=self.name)
        else:
            data = UserDeactivated(user_id=user_id)
        return body_of(data, subject=user_id, version=self.version, source="/user_svc")


names = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=12)


@st.composite
def user_histories(draw: st.DrawFn) -> list[UserChange]:
    """user.registered v1, renames and at most one deactivation, versions rising with gaps.

    The gaps stand for credit events, which bump the user's version but carry no replica state.
    """
    renames: list[str | None] = list(draw(st.lists(names, max_size=6), label="renames"))
    deactivation = draw(st.none() | st.integers(0, len(renames)), label="deactivated at")
    if deactivation is not None:
        renames.insert(deactivation, None)
    gaps = draw(st.lists(st.integers(1, 3), min_size=len(renames), max_size=len(renames)))
    history = [UserChange(kind="registered", version=1, name=draw(names, label="registered as"))]
    for name, gap in zip(renames, gaps, strict=True):
        version = history[-1].version + gap
        kind: Literal["updated", "deactivated"] = "deactivated" if name is None else "updated"
        history.append(UserChange(kind=kind, version=version, name=name))
    return history


def in_order_result(history: Sequence[UserChange]) -> tuple[str | None, str, int]:
    """(name, status, version) after applying `history` in order: the specification."""
    name = next(c.name for c in reversed(history) if c.name is not None)
    status = "deactivated" if any(c.kind == "deactivated" for c in history) else "active"
    return name, status, history[-1].version


async def replica(database: Database, user_id: UUID) -> tuple[str | None, str | None, int]:
    async with order_uow.unit_of_work(database) as uow:
        customer = await uow.customers.get(user_id)
    assert customer is not None
    return customer.name, customer.status, customer.version


# -- a. order_svc's customers replica ------------------------------------------------------------


@PROPERTY
@given(history=user_histories(), data=st.data())
async def test_the_replica_ends_where_in_order_delivery_leaves_it(
    order_database: Database, history: list[UserChange], data: st.DataObject
) -> None:
    consumer = order_consumer(order_database)
    in_order, reordered = uuid4(), uuid4()
    in_order_delivery = await deliver(
        consumer, [c.body(in_order) for c in history], [[i] for i in range(len(history))]
    )
    bodies = [c.body(reordered) for c in history]
    schedule = data.draw(schedules(range(len(bodies))), label="schedule")

    delivery = await deliver(consumer, bodies, schedule)

    assert in_order_delivery.applied == delivery.applied == Counter(range(len(history)))
    assert await replica(order_database, in_order) == in_order_result(history)
    assert await replica(order_database, reordered) == await replica(order_database, in_order)


# -- b. order_svc's saga steps -------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Decision:
    """Both participants' answers for one order: each reserved if its reason is None, else
    rejected."""

    credit: CreditRejectionReason | None
    stock: StockRejectionReason | None
    user_version: int
    unit_price: int

    @property
    def outcome(self) -> OrderStatus:
        reserved = self.credit is None and self.stock is None
        return OrderStatus.CONFIRMED if reserved else OrderStatus.REJECTED

    def possible_reasons(
        self, *, credit_round: int, stock_round: int
    ) -> list[OrderRejectionReason | None]:
        """The reasons the order may end with, given the rounds the answers were applied in:
        none if both reserved, else the first rejection's (either, if both came in one round)."""
        rejected = [
            (applied, reason)
            for applied, reason in ((credit_round, self.credit), (stock_round, self.stock))
            if reason is not None
        ]
        if not rejected:
            return [None]
        first = min(applied for applied, _ in rejected)
        return [reason for applied, reason in rejected if applied == first]

    def credit_body(self, *, user_id: UUID, order_id: UUID, amount: int) -> bytes:
        data: EventData
        if self.credit is None:
            data = UserCreditReserved(user_id=user_id, order_id=order_id, amount=amount)
        else:
            data = UserCreditRejected(
                user_id=user_id, order_id=order_id, amount=amount, reason=self.credit
            )
        return body_of(data, subject=user_id, version=self.user_version, source="/user_svc")

    def stock_body(self, *, order_id: UUID) -> bytes:
        data: EventData
        if self.stock is None:
            data = StockReserved(order_id=order_id, items=[StockItem(sku="SKU-1", quantity=2)])
        else:
            data = StockRejected(order_id=order_id, reason=self.stock, skus=["SKU-1"])
        return body_of(data, subject=order_id, version=1, source="/inventory_svc")


decisions = st.builds(
    Decision,
    credit=st.none() | st.sampled_from(CreditRejectionReason),
    stock=st.none() | st.just(StockRejectionReason.OUT_OF_STOCK),
    user_version=st.integers(0, 30),
    unit_price=st.integers(0, 1_000),
)


def _bodies_of(outbox: Table) -> Statement:
    """The outbox bodies of one subject, in the order they were written."""
    return Statement(
        select(outbox.c.body).where(outbox.c.subject == bindparam("subject")).order_by(outbox.c.seq)
    )


_ORDER_BODIES = _bodies_of(order_models.outbox)
_USER_BODIES = _bodies_of(user_models.outbox)
_RESERVATIONS = Statement(
    select(user_models.credit_reservations).where(
        user_models.credit_reservations.c.user_id == bindparam("user_id")
    )
)


async def order_events(database: Database, order_id: UUID) -> list[tuple[str, int]]:
    """(type, aggregate version) of every event order_svc's outbox holds for the order."""
    async with database.connection() as connection:
        rows = await _ORDER_BODIES.fetch(connection, subject=str(order_id))
    envelopes = [decode(row["body"])[0] for row in rows]
    return [(e.type, e.aggregateversion) for e in envelopes]


@PROPERTY
@given(
    answers=st.lists(decisions, min_size=1, max_size=5),
    history=user_histories(),
    data=st.data(),
)
async def test_every_saga_step_is_applied_once_however_late_it_arrives(
    order_database: Database,
    answers: list[Decision],
    history: list[UserChange],
    data: st.DataObject,
) -> None:
    """A decision is gated by the order's state, never by the user versions seen before it: an
    order is confirmed once both participants reserved, in either order, and rejected by the
    first rejection, with its reason."""
    user_id = uuid4()
    orders = []
    for answer in answers:
        command = PlaceOrder(
            user_id=user_id, items=(Item(sku="SKU-1", quantity=2, unit_price=answer.unit_price),)
        )
        orders.append((await place_order(command, order_uow.unit_of_work(order_database))).order)
    bodies = [
        answer.credit_body(user_id=user_id, order_id=order.id, amount=order.total)
        for answer, order in zip(answers, orders, strict=True)
    ] + [
        answer.stock_body(order_id=order.id) for answer, order in zip(answers, orders, strict=True)
    ]
    bodies += [change.body(user_id) for change in history]
    schedule = data.draw(schedules(range(len(bodies))), label="schedule")

    delivery = await deliver(order_consumer(order_database), bodies, schedule)

    assert delivery.applied == Counter(range(len(bodies)))
    async with order_uow.unit_of_work(order_database) as uow:
        final = [await uow.orders.get(order.id) for order in orders]
    for n, (answer, order) in enumerate(zip(answers, final, strict=True)):
        assert order is not None
        assert (order.status, order.version) == (answer.outcome, 2)
        assert order.reason in answer.possible_reasons(
            credit_round=delivery.round_of(n), stock_round=delivery.round_of(len(answers) + n)
        )
        assert await order_events(order_database, order.id) == [
            ("order.created", 1),
            (f"order.{answer.outcome}", 2),
        ]
    assert await replica(order_database, user_id) == in_order_result(history)


# -- c. user_svc's credit ------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Purchase:
    amount: int
    cancelled: bool


Standing = Literal["active", "deactivated", "unknown"]
REJECTION: dict[Standing, CreditRejectionReason] = {
    "active": CreditRejectionReason.INSUFFICIENT_CREDIT,
    "deactivated": CreditRejectionReason.USER_INACTIVE,
    "unknown": CreditRejectionReason.UNKNOWN_USER,
}


@dataclass(frozen=True, kw_only=True)
class Credit:
    """What user_svc holds for one user at the end: its row, reservations and credit events."""

    user: User | None
    states: dict[UUID, ReservationState]
    events: dict[UUID, list[tuple[str, dict[str, Any]]]]


async def credit_of(database: Database, user_id: UUID) -> Credit:
    async with user_uow.unit_of_work(database) as uow:
        user = await uow.users.get(user_id)
    async with database.connection() as connection:
        reservations = await _RESERVATIONS.fetch(connection, user_id=user_id)
        bodies = await _USER_BODIES.fetch(connection, subject=str(user_id))
    states = {row["order_id"]: ReservationState(row["state"]) for row in reservations}
    events: dict[UUID, list[tuple[str, dict[str, Any]]]] = {}
    for row in bodies:
        envelope, _ = decode(row["body"])
        order_id = UUID(envelope.data["order_id"])
        events.setdefault(order_id, []).append((envelope.type, envelope.data))
    return Credit(user=user, states=states, events=events)


def first_come_first_served(
    purchases: Sequence[Purchase], arrivals: Sequence[int], *, standing: Standing, limit: int
) -> list[ReservationState]:
    """The reservation states that handling `arrivals` one at a time, in order, must leave.

    Event 2n is purchase n's `order.created`, event 2n+1 its `order.cancelled`.
    """
    states: dict[int, ReservationState] = {}
    reserved = 0
    for index in arrivals:
        n, purchase = index // 2, purchases[index // 2]
        if index % 2 == 0 and n not in states:
            fits = standing == "active" and reserved + purchase.amount <= limit
            states[n] = ReservationState.RESERVED if fits else ReservationState.REJECTED
            reserved += purchase.amount if fits else 0
        elif index % 2 == 1 and n not in states:
            states[n] = ReservationState.CANCELLED
        elif index % 2 == 1 and states[n] is ReservationState.RESERVED:
            states[n] = ReservationState.RELEASED
            reserved -= purchase.amount
    return [states[n] for n in range(len(purchases))]


@PROPERTY
@given(
    limit=st.integers(0, 1_000),
    standing=st.sampled_from(list(REJECTION)),
    purchases=st.lists(
        st.builds(Purchase, amount=st.integers(0, 500), cancelled=st.booleans()),
        min_size=1,
        max_size=6,
    ),
    data=st.data(),
)
async def test_credit_invariants_hold_under_any_order(
    user_database: Database,
    limit: int,
    standing: Standing,
    purchases: list[Purchase],
    data: st.DataObject,
) -> None:
    """Credit is consistent whatever the order; *which* orders get it depends on arrival order.

    When the limit binds, the orders that win credit are those whose `order.created` arrives
    first (first come, first served), so the property is the invariant, not a fixed set: the
    reserved credit is the sum of the reservations held, never above the limit; a cancelled
    order holds nothing; each order gets exactly one decision unless its cancel arrived first
    (then none) and at most one release. Handled one at a time, the result is also exactly what
    first come, first served predicts for the order in which the events were applied.
    """
    user_id = uuid4()
    if standing != "unknown":
        user = User(id=user_id, email=f"{user_id}@example.com", name="Ada", credit_limit=limit)
        user.status = UserStatus.ACTIVE if standing == "active" else UserStatus.DEACTIVATED
        async with user_uow.unit_of_work(user_database) as uow:
            assert await uow.users.add(user, password_hash="not used here")
            await uow.commit()
    order_ids = [uuid4() for _ in purchases]
    bodies: list[bytes] = []  # in-order history: each order's cancel right after its create
    for order_id, purchase in zip(order_ids, purchases, strict=True):
        created = OrderCreated(
            order_id=order_id,
            user_id=user_id,
            items=[OrderItem(sku="SKU-1", quantity=1, unit_price=purchase.amount)],
            total=purchase.amount,
        )
        cancelled = OrderCancelled(
            order_id=order_id, user_id=user_id, total=purchase.amount, previous_status="pending"
        )
        bodies.append(body_of(created, subject=order_id, version=1, source="/order_svc"))
        bodies.append(body_of(cancelled, subject=order_id, version=2, source="/order_svc"))
    # An order that is never cancelled has no order.cancelled event in the stream at all.
    events = [i for i in range(len(bodies)) if i % 2 == 0 or purchases[i // 2].cancelled]
    schedule = data.draw(schedules(events), label="schedule")

    delivery = await deliver(user_consumer(user_database), bodies, schedule)

    assert delivery.applied == Counter(events)
    credit = await credit_of(user_database, user_id)
    held = [credit.states[order_id] for order_id in order_ids]
    reserved = sum(
        p.amount
        for p, state in zip(purchases, held, strict=True)
        if state is ReservationState.RESERVED
    )
    changes = 0
    for n, (order_id, purchase, state) in enumerate(zip(order_ids, purchases, held, strict=True)):
        types = [t for t, _ in credit.events.get(order_id, [])]
        decisions = [t for t in types if t in ("user.credit_reserved", "user.credit_rejected")]
        releases = types.count("user.credit_released")
        changes += types.count("user.credit_reserved") + releases
        assert len(types) == len(decisions) + releases
        assert all(e["amount"] == purchase.amount for _, e in credit.events.get(order_id, []))
        if purchase.cancelled:
            assert state is not ReservationState.RESERVED, "a cancelled order holds no credit"
            create, cancel = delivery.round_of(2 * n), delivery.round_of(2 * n + 1)
            if cancel != create:  # else they raced: either may have gone first
                assert (state is ReservationState.CANCELLED) == (cancel < create)
        if state is ReservationState.CANCELLED:
            assert decisions == [], "a cancel that arrived first leaves no decision"
        else:
            assert len(decisions) == 1, "exactly one decision per order"
        assert releases == (1 if state is ReservationState.RELEASED else 0)
        if state in (ReservationState.RESERVED, ReservationState.RELEASED):
            assert decisions == ["user.credit_reserved"]
        if state is ReservationState.REJECTED:
            assert decisions == ["user.credit_rejected"]
            [(_, rejection)] = credit.events[order_id]
            assert rejection["reason"] == REJECTION[standing]
    if credit.user is None:
        assert standing == "unknown"
        assert reserved == changes == 0
    else:
        assert credit.user.credit_reserved == reserved
        assert credit.user.credit_reserved <= credit.user.credit_limit == limit
        assert credit.user.version == 1 + changes
    if delivery.one_at_a_time:
        arrivals = [index for applied in delivery.rounds for index in applied]
        expected = first_come_first_served(purchases, arrivals, standing=standing, limit=limit)
        assert held == expected


# -- d. the whole saga: three services, two participants ---------------------------------------

SKUS = ("A", "B")
"""The stock-managed SKUs; an order line of any other SKU needs no stock."""
MAX_STEPS = 400


@dataclass(frozen=True, kw_only=True)
class Purchase2:
    lines: tuple[tuple[str, int, int], ...]
    """(sku, quantity, unit_price)"""
    cancelled: bool

    @property
    def total(self) -> int:
        return sum(quantity * price for _, quantity, price in self.lines)


purchases2 = st.builds(
    Purchase2,
    lines=st.lists(
        st.tuples(st.sampled_from([*SKUS, "FREE"]), st.integers(1, 3), st.integers(0, 300)),
        min_size=1,
        max_size=3,
    ).map(tuple),
    cancelled=st.booleans(),
)


@dataclass
class Service:
    """One service as the saga sees it: its consumer and the outbox its relay publishes."""

    consumer: EventConsumer[Any]
    database: Database
    outbox: Table
    queue: Queue
    published: int = 0
    """The outbox `seq` up to which the relay has published."""


_PUBLISHABLE = {
    table: Statement(
        select(table.c.seq, table.c.type, table.c.body)
        .where(table.c.seq > bindparam("after"))
        .order_by(table.c.seq)
    )
    for table in (user_models.outbox, order_models.outbox, inventory_models.outbox)
}
_LAST_SEQ = {
    table: Statement(select(func.coalesce(func.max(table.c.seq), 0)))
    for table in (user_models.outbox, order_models.outbox, inventory_models.outbox)
}


@dataclass(frozen=True)
class Message:
    target: Service
    body: bytes
    redelivery: bool = False


async def relay(services: Sequence[Service]) -> list[Message]:
    """What every relay publishes now, routed to each queue bound to its type."""
    routed: list[Message] = []
    for source in services:
        async with source.database.connection() as connection:
            rows = await _PUBLISHABLE[source.outbox].fetch(connection, after=source.published)
        for row in rows:
            source.published = row["seq"]
            bound = [target for target in services if row["type"] in target.queue.bindings]
            routed += [Message(target, row["body"]) for target in bound]
    return routed


async def run_to_rest(
    services: Sequence[Service],
    to_cancel: list[UUID],
    cancel: Callable[[UUID], Awaitable[None]],
    rng: random.Random,
) -> None:
    """Relay and deliver until nothing is left to publish, deliver or cancel: each step either
    cancels the next order to cancel or delivers a few of the messages in flight, chosen by
    `rng`, concurrently; a delivered message may come once again, a failed one comes back
    later. (The choices come from a seeded generator, not from hypothesis draws: what happens
    to a concurrent batch may differ between runs, and with it how many choices are made.)"""
    in_flight: list[Message] = []
    for _ in range(MAX_STEPS):
        in_flight += await relay(services)
        if not in_flight and not to_cancel:
            return
        if to_cancel and (not in_flight or rng.random() < 0.2):
            await cancel(to_cancel.pop(0))
            continue
        width = rng.randint(1, min(MAX_IN_FLIGHT, len(in_flight)))
        picked = rng.sample(range(len(in_flight)), width)
        batch = [in_flight[i] for i in picked]
        in_flight = [m for i, m in enumerate(in_flight) if i not in picked]
        results = await asyncio.gather(*(m.target.consumer.handle(m.body) for m in batch))
        for message, result in zip(batch, results, strict=True):
            if result.outcome not in (Outcome.APPLIED, Outcome.DUPLICATE):
                event(f"an attempt failed ({result.exception_type}), retried later")
                in_flight.append(message)
            elif not message.redelivery and rng.random() < 0.2:
                in_flight.append(Message(message.target, message.body, redelivery=True))
    pytest.fail(f"the saga did not come to rest in {MAX_STEPS} steps")


@PROPERTY
@given(
    limit=st.integers(0, 1_500),
    on_hand=st.tuples(st.integers(0, 6), st.integers(0, 6)),
    purchases=st.lists(purchases2, min_size=1, max_size=5),
    seed=st.integers(0, 2**32 - 1),
)
async def test_both_invariants_hold_at_rest_whatever_the_order_of_delivery(
    user_database: Database,
    order_database: Database,
    inventory_database: Database,
    limit: int,
    on_hand: tuple[int, int],
    purchases: list[Purchase2],
    seed: int,
) -> None:
    """Orders flow through all three services; every published event is delivered to each
    queue bound to it in an arbitrary order, some twice, some concurrently, and cancels come at
    arbitrary moments. At rest nothing is pending and the contract's invariants hold."""
    user_id, skus = uuid4(), {sku: f"{sku}-{uuid4().hex[:8]}" for sku in SKUS}
    async with user_uow.unit_of_work(user_database) as uow:
        await uow.users.add(
            User(id=user_id, email=f"{user_id}@example.com", name="Ada", credit_limit=limit),
            password_hash="not used here",
        )
        await uow.commit()
    async with inventory_uow.unit_of_work(inventory_database) as uow:
        for sku, units in zip(SKUS, on_hand, strict=True):
            await uow.stocks.add(Stock(sku=skus[sku], on_hand=units))
        await uow.commit()
    services = [
        Service(user_consumer(user_database), user_database, user_models.outbox, USER_SVC_QUEUE),
        Service(
            order_consumer(order_database), order_database, order_models.outbox, ORDER_SVC_QUEUE
        ),
        Service(
            inventory_consumer(inventory_database),
            inventory_database,
            inventory_models.outbox,
            INVENTORY_SVC_QUEUE,
        ),
    ]
    for service in services:  # only this example's events
        async with service.database.connection() as connection:
            service.published = await _LAST_SEQ[service.outbox].fetchval(connection)
    orders = []
    for purchase in purchases:
        command = PlaceOrder(
            user_id=user_id,
            items=tuple(
                Item(sku=skus.get(sku, sku), quantity=quantity, unit_price=price)
                for sku, quantity, price in purchase.lines
            ),
        )
        orders.append((await place_order(command, order_uow.unit_of_work(order_database))).order)
    to_cancel = [o.id for o, p in zip(orders, purchases, strict=True) if p.cancelled]

    await run_to_rest(
        services, to_cancel, lambda o: cancel(order_database, o, user_id), random.Random(seed)
    )

    async with order_uow.unit_of_work(order_database) as uow:
        final = [await uow.orders.get(order.id) for order in orders]
    assert all(o is not None and o.status is not OrderStatus.PENDING for o in final)
    confirmed = [o for o in final if o is not None and o.status is OrderStatus.CONFIRMED]
    async with user_uow.unit_of_work(user_database) as uow:
        user = await uow.users.get(user_id)
    assert user is not None
    assert user.credit_reserved == sum(o.total for o in confirmed)
    assert 0 <= user.credit_reserved <= user.credit_limit
    for sku in SKUS:
        async with inventory_uow.unit_of_work(inventory_database) as uow:
            stock = await uow.stocks.get(skus[sku])
        assert stock is not None
        held = sum(i.quantity for o in confirmed for i in o.items if i.sku == skus[sku])
        assert stock.reserved == held, f"{sku}: reserved {stock.reserved}, confirmed {held}"
        assert 0 <= stock.reserved <= stock.on_hand


async def cancel(database: Database, order_id: UUID, user_id: UUID) -> None:
    """The owner cancels the order as it stands, if it still can be."""
    async with order_uow.unit_of_work(database) as uow:
        order = await uow.orders.get(order_id)
    assert order is not None
    try:
        await cancel_order(
            CancelOrder(order_id=order_id, user_id=user_id, expected_version=order.version),
            order_uow.unit_of_work(database),
        )
    except Conflict:
        event("a cancel came after the order was rejected or cancelled")
