"""After the last fault: wait for the system to converge, then judge what it converged to.

Converged means: every acknowledged order is in the database and in a terminal state, every
outbox is fully published, every published event a service consumes is in its inbox, and
the service queues and their delay queues are empty. Then, from the three databases and the DLQs:

- lost: an acknowledged order missing, or still pending, or without a credit or stock decision;
- decisions: each order's terminal state is the one its two participants' decisions allow
  (confirmed = both reserved, rejected = one of them rejected it for that reason and the other
  holds nothing, cancelled = neither left reserved); replaying each user's decisions in order,
  every reservation fit in the credit left and every rejection for insufficient credit did not;
  replaying each SKU's decisions in order, every reservation fit in the stock available and
  every rejection for stock named a SKU that really fell short;
- credit invariant: for every user, `credit_reserved` = the totals of their confirmed orders,
  and at most `credit_limit`;
- stock invariant: for every stock-managed SKU, `reserved` = its quantities over confirmed
  orders, and `0 <= reserved <= on_hand`; no stock reservation held for an order that is not
  confirmed;
- duplicated effects: one decision per order in `credit_reservations` and in
  `stock_reservations`; at most one credit decision, one stock decision and one release of each
  per order in the participants' outboxes; exactly one `order.created` and at most one of each
  later order event in order_svc's outbox; versions that their history explains (an order's, a
  user's, a stock's); the reserved credit and stock their events add up to; one order per
  idempotency key;
- every malformed message published is in the right DLQ, and nothing else is;
- nothing unpublished in either outbox;
- the outside publisher's reordered events ended where in-order delivery would have.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Protocol

from tests.chaos import snapshot
from tests.chaos.load import LoadResult
from tests.chaos.outside_events import OutsidePublisher
from tests.chaos.snapshot import Order, Snapshot
from tests.support.waiting import eventually

TERMINAL = {"confirmed", "rejected", "cancelled"}


class Deployment(Protocol):
    """Where the services under test keep their state (the chaos and failover stacks)."""

    @property
    def user_db(self) -> str: ...

    @property
    def order_db(self) -> str: ...

    @property
    def inventory_db(self) -> str: ...

    @property
    def amqp_url(self) -> str: ...


ORDER_STEPS = ("order.confirmed", "order.rejected", "order.cancelled")
OUT_OF_STOCK = "out_of_stock"
# What a participant may hold for an order that ended without being confirmed.
NOT_HELD = {"rejected", "released", "cancelled"}


@dataclass(frozen=True)
class Convergence:
    converged: bool
    seconds: float
    """From the end of the last fault to convergence (or to giving up)."""
    waiting_for: str
    """What was still missing at the last poll before convergence (or at the deadline)."""


async def wait_for_convergence(
    stack: Deployment, load: LoadResult, *, since: float, timeout: float
) -> Convergence:
    waiting_for = ""

    async def converged() -> bool:
        nonlocal waiting_for
        reason = await _not_converged_because(stack, load)
        waiting_for = reason or waiting_for
        return not reason

    try:
        await eventually(converged, timeout=timeout, what="convergence")
    except AssertionError:
        return Convergence(False, time.monotonic() - since, waiting_for)
    return Convergence(True, time.monotonic() - since, waiting_for)


async def _not_converged_because(stack: Deployment, load: LoadResult) -> str:
    """Why the system has not converged yet, or "" once it has."""
    state = await _snapshot(stack)
    pending = [o.id for o in state.orders.values() if o.status == "pending"]
    present = {str(o) for o in state.orders}
    missing = [i for i in load.acknowledged.values() if i not in present]
    reasons = []
    if pending:
        reasons.append(f"{len(pending)} orders pending")
    if missing:
        reasons.append(f"{len(missing)} acknowledged orders missing")
    reasons += [f"{n} unpublished in {s}" for s, n in state.unpublished.items() if n]
    reasons += [f"{n} events not yet consumed by {s}" for s, n in state.unconsumed.items() if n]
    if not reasons:
        depths = await snapshot.queue_depths(stack.amqp_url)
        reasons += [f"{n} messages in {q}" for q, n in depths.items() if n]
    return "; ".join(reasons)


@dataclass
class Findings:
    orders: Counter[str] = field(default_factory=Counter)
    """orders in order_svc's database, by status"""
    rejections: Counter[str] = field(default_factory=Counter)
    """rejected orders, by reason"""
    lost: list[str] = field(default_factory=list)
    wrong_decisions: list[str] = field(default_factory=list)
    invariant_violations: list[str] = field(default_factory=list)
    stock_violations: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    dead_lettered: int = 0
    malformed_missing: list[str] = field(default_factory=list)
    unexpected_dead_letters: list[str] = field(default_factory=list)
    unpublished: dict[str, int] = field(default_factory=dict)
    reorder_violations: list[str] = field(default_factory=list)
    users_checked: int = 0
    skus_checked: int = 0
    skus_sold_out: int = 0
    """stock-managed SKUs with nothing available at rest"""

    @property
    def invariant_holds(self) -> bool:
        return not self.invariant_violations

    @property
    def stock_invariant_holds(self) -> bool:
        return not self.stock_violations

    @property
    def out_of_stock(self) -> int:
        """orders rejected because stock ran out"""
        return self.rejections[OUT_OF_STOCK]


async def check(
    stack: Deployment, load: LoadResult, outside: OutsidePublisher | None = None
) -> Findings:
    """Judge the converged state; without an outside publisher, every dead letter is
    unexpected."""
    state = await _snapshot(stack)
    findings = Findings(
        orders=Counter(o.status for o in state.orders.values()),
        rejections=Counter(o.reason or "" for o in state.orders.values() if o.status == "rejected"),
        unpublished=state.unpublished,
    )
    _check_orders_acknowledged(state, load, findings)
    _check_decisions(state, findings)
    _check_stock_decisions(state, findings)
    _check_users(state, load, findings)
    _check_stocks(state, load, findings)
    _check_credit_history(state, findings)
    _check_stock_history(state, findings)
    _check_order_events(state, findings)
    _check_user_events(state, findings)
    _check_stock_events(state, findings)
    if outside is not None:
        _check_reordered(state, outside, findings)
    await _check_dead_letters(stack, outside, findings)
    return findings


async def _snapshot(stack: Deployment) -> Snapshot:
    return await snapshot.take(
        user_db=stack.user_db, order_db=stack.order_db, inventory_db=stack.inventory_db
    )


def _check_orders_acknowledged(state: Snapshot, load: LoadResult, findings: Findings) -> None:
    by_key = {o.idempotency_key: o for o in state.orders.values()}
    for key, order_id in load.acknowledged.items():
        order = by_key.get(key)
        if order is None:
            findings.lost.append(f"order {order_id} was acknowledged but is not in the database")
        elif str(order.id) != order_id:
            findings.duplicated.append(f"key {key} acknowledged {order_id} and holds {order.id}")
    for order in state.orders.values():
        if order.status not in TERMINAL:
            findings.lost.append(f"order {order.id} is still {order.status}")
        if order.idempotency_key not in load.sent:
            findings.duplicated.append(f"order {order.id} was never asked for by the load")


def _allowed(order: Order, *, rejects_for: set[str]) -> set[str]:
    """The states a participant's decision may be in at rest, for an order in its final state:
    `rejects_for` are the reasons this participant rejects for."""
    if order.status == "confirmed":
        return {"reserved"}
    if order.status == "rejected" and order.reason in rejects_for:
        return {"rejected"}
    # Rejected by the other participant, or cancelled (while pending: a tombstone, or rejected
    # first; after confirmed: released): nothing held either way.
    return NOT_HELD


def _check_decisions(state: Snapshot, findings: Findings) -> None:
    for order in state.orders.values():
        if order.status not in TERMINAL:
            continue  # already counted as lost
        reservation = state.reservations.get(order.id)
        if reservation is None:
            findings.lost.append(f"order {order.id} ({order.status}) has no credit decision")
            continue
        credit_reasons = {"insufficient_credit", "user_inactive", "unknown_user"}
        if reservation.state not in _allowed(order, rejects_for=credit_reasons):
            findings.wrong_decisions.append(
                f"order {order.id} is {order.status} ({order.reason}) but its credit "
                f"reservation is {reservation.state}"
            )
        # `order.rejected` carries no total: the tombstone it leaves when the rejection (by
        # inventory_svc) reaches user_svc before the order does holds nothing, amount 0.
        tombstone = reservation.state == "cancelled" and not reservation.amount
        rejected_first = order.status == "rejected" and tombstone
        amount_right = reservation.amount == order.total or rejected_first
        if not amount_right or reservation.user_id != order.user_id:
            findings.wrong_decisions.append(f"order {order.id}: reservation does not match it")
        if order.reason in credit_reasons and order.reason != reservation.reason:
            findings.wrong_decisions.append(
                f"order {order.id} rejected for {order.reason}, user_svc said {reservation.reason}"
            )


def _check_stock_decisions(state: Snapshot, findings: Findings) -> None:
    """Each order's stock decision: the state its order allows, holding exactly the order's
    stock-managed quantities."""
    for order in state.orders.values():
        if order.status not in TERMINAL:
            continue  # already counted as lost
        reservation = state.stock_reservations.get(order.id)
        if reservation is None:
            findings.lost.append(f"order {order.id} ({order.status}) has no stock decision")
            continue
        if reservation.status not in _allowed(order, rejects_for={OUT_OF_STOCK}):
            findings.wrong_decisions.append(
                f"order {order.id} is {order.status} ({order.reason}) but its stock "
                f"reservation is {reservation.status}"
            )
        managed = {s: q for s, q in order.quantities.items() if s in state.stocks}
        if reservation.status in ("reserved", "released") and reservation.items != managed:
            findings.wrong_decisions.append(
                f"order {order.id} needs {managed} of managed stock, its reservation holds "
                f"{reservation.items}"
            )


def _check_users(state: Snapshot, load: LoadResult, findings: Findings) -> None:
    confirmed: dict[uuid.UUID, int] = defaultdict(int)
    for order in state.orders.values():
        if order.status == "confirmed":
            confirmed[order.user_id] += order.total
    reserved_events: Counter[uuid.UUID] = Counter()
    changes: Counter[uuid.UUID] = Counter()
    for event in state.user_events:
        if event.type in ("user.credit_reserved", "user.credit_released"):
            sign = 1 if event.type == "user.credit_reserved" else -1
            user_id = uuid.UUID(event.subject)
            reserved_events[user_id] += sign * (event.amount or 0)
            changes[user_id] += 1
    for user in load.users:
        row = state.users.get(user.id)
        if row is None:
            findings.lost.append(f"user {user.id} is not in user_svc's database")
            continue
        findings.users_checked += 1
        if row.credit_reserved != confirmed[user.id]:
            findings.invariant_violations.append(
                f"user {user.id}: credit_reserved {row.credit_reserved}, "
                f"confirmed orders total {confirmed[user.id]}"
            )
        if row.credit_reserved > row.credit_limit:
            findings.invariant_violations.append(
                f"user {user.id}: credit_reserved {row.credit_reserved} > {row.credit_limit}"
            )
        if row.credit_reserved != reserved_events[user.id]:
            findings.duplicated.append(
                f"user {user.id}: credit_reserved {row.credit_reserved}, but its events add up "
                f"to {reserved_events[user.id]}"
            )
        if row.version != 1 + changes[user.id]:
            findings.duplicated.append(
                f"user {user.id} is at version {row.version} after {changes[user.id]} changes"
            )


def _check_stocks(state: Snapshot, load: LoadResult, findings: Findings) -> None:
    confirmed: Counter[str] = Counter()
    for order in state.orders.values():
        if order.status == "confirmed":
            confirmed.update(order.quantities)
    held = _stock_held(state, findings)
    from_events, changes = _stock_changes(state)
    for sku, on_hand in load.stock.items():
        row = state.stocks.get(sku)
        if row is None:
            findings.lost.append(f"stock of {sku} is not in inventory_svc's database")
            continue
        findings.skus_checked += 1
        findings.skus_sold_out += row.reserved == row.on_hand
        if row.on_hand != on_hand:
            findings.stock_violations.append(f"{sku}: on_hand {row.on_hand}, set to {on_hand}")
        if row.reserved != confirmed[sku]:
            findings.stock_violations.append(
                f"{sku}: reserved {row.reserved}, confirmed orders hold {confirmed[sku]}"
            )
        if not 0 <= row.reserved <= row.on_hand:
            findings.stock_violations.append(f"{sku}: reserved {row.reserved} of {row.on_hand}")
        if row.reserved != held[sku]:
            findings.duplicated.append(
                f"{sku}: reserved {row.reserved}, but its reservations hold {held[sku]}"
            )
        if row.reserved != from_events[sku]:
            findings.duplicated.append(
                f"{sku}: reserved {row.reserved}, but its events add up to {from_events[sku]}"
            )
        if row.version != 1 + changes[sku]:
            findings.duplicated.append(
                f"{sku} is at version {row.version} after {changes[sku]} changes"
            )


def _stock_held(state: Snapshot, findings: Findings) -> Counter[str]:
    """What the reservations in `reserved` state hold, per SKU; each must be of a confirmed
    order."""
    held: Counter[str] = Counter()
    for reservation in state.stock_reservations.values():
        if reservation.status != "reserved":
            continue
        held.update(reservation.items)
        holder = state.orders.get(reservation.order_id)
        if holder is None or holder.status != "confirmed":
            findings.stock_violations.append(
                f"stock held for order {reservation.order_id}, which is "
                f"{'unknown' if holder is None else holder.status}"
            )
    return held


def _stock_changes(state: Snapshot) -> tuple[Counter[str], Counter[str]]:
    """Per SKU: what its reservation events add up to, and how many changed it."""
    from_events: Counter[str] = Counter()
    changes: Counter[str] = Counter()
    for event in state.stock_events:
        if event.type in ("inventory.stock_reserved", "inventory.stock_released"):
            sign = 1 if event.type == "inventory.stock_reserved" else -1
            for sku, quantity in event.items.items():
                from_events[sku] += sign * quantity
                changes[sku] += 1
    return from_events, changes


def _check_credit_history(state: Snapshot, findings: Findings) -> None:
    """Replay each user's credit decisions in the order they were taken: every reservation fit
    the limit, and every rejection for insufficient credit really did not fit."""
    reserved: dict[uuid.UUID, int] = defaultdict(int)
    for event in state.user_events:
        user = state.users.get(uuid.UUID(event.subject))
        if user is None or event.amount is None:
            continue
        if event.type == "user.credit_reserved":
            reserved[user.id] += event.amount
            if reserved[user.id] > user.credit_limit:
                findings.wrong_decisions.append(
                    f"order {event.order_id} reserved {event.amount} beyond the limit of {user.id}"
                )
        elif event.type == "user.credit_released":
            reserved[user.id] -= event.amount
        elif event.type == "user.credit_rejected":
            fits = reserved[user.id] + event.amount <= user.credit_limit
            if event.reason == "insufficient_credit" and fits:
                findings.wrong_decisions.append(
                    f"order {event.order_id} rejected though {user.id} had the credit for it"
                )


def _check_stock_history(state: Snapshot, findings: Findings) -> None:
    """Replay each SKU's stock decisions in the order they were taken: every reservation fit
    what was available, and every rejection named a SKU the order really needed more of."""
    reserved: Counter[str] = Counter()
    for event in state.stock_events:
        if event.type == "inventory.stock_reserved":
            reserved.update(event.items)
            for sku in event.items:
                stock = state.stocks.get(sku)
                if stock is None or reserved[sku] > stock.on_hand:
                    findings.wrong_decisions.append(
                        f"order {event.order_id} reserved {sku} beyond its stock"
                    )
        elif event.type == "inventory.stock_released":
            reserved.subtract(event.items)
        elif event.type == "inventory.stock_rejected" and event.order_id is not None:
            order = state.orders.get(event.order_id)
            if order is None:
                continue
            if not event.skus or any(
                sku not in state.stocks
                or order.quantities[sku] <= state.stocks[sku].on_hand - reserved[sku]
                for sku in event.skus
            ):
                findings.wrong_decisions.append(
                    f"order {event.order_id} rejected for {event.skus} though they were available"
                )


def _check_order_events(state: Snapshot, findings: Findings) -> None:
    counts: dict[uuid.UUID, Counter[str]] = defaultdict(Counter)
    for event in state.order_events:
        counts[uuid.UUID(event.subject)][event.type] += 1
    for order in state.orders.values():
        seen = counts[order.id]
        if seen["order.created"] != 1:
            findings.duplicated.append(f"order {order.id}: {seen['order.created']} order.created")
        for step in ORDER_STEPS:
            if seen[step] > 1:
                findings.duplicated.append(f"order {order.id}: {seen[step]} {step}")
        if seen["order.confirmed"] + seen["order.rejected"] > 1:
            findings.duplicated.append(f"order {order.id} was both confirmed and rejected")
        steps = sum(seen[s] for s in ORDER_STEPS)
        if order.version != 1 + steps:
            findings.duplicated.append(
                f"order {order.id} is at version {order.version} after {steps} steps"
            )
        if order.status != "pending" and seen[f"order.{order.status}"] != 1:
            findings.duplicated.append(f"order {order.id} is {order.status} without its event")


def _check_user_events(state: Snapshot, findings: Findings) -> None:
    counts: dict[uuid.UUID, Counter[str]] = defaultdict(Counter)
    for event in state.user_events:
        if event.order_id is not None:
            counts[event.order_id][event.type] += 1
    for order_id, seen in counts.items():
        decisions = seen["user.credit_reserved"] + seen["user.credit_rejected"]
        if decisions > 1:
            findings.duplicated.append(f"order {order_id}: {decisions} credit decisions")
        if seen["user.credit_released"] > 1:
            findings.duplicated.append(f"order {order_id}: released {seen['user.credit_released']}")
        if seen["user.credit_released"] > seen["user.credit_reserved"]:
            findings.duplicated.append(f"order {order_id}: released but never reserved")


def _check_stock_events(state: Snapshot, findings: Findings) -> None:
    counts: dict[uuid.UUID, Counter[str]] = defaultdict(Counter)
    for event in state.stock_events:
        if event.order_id is not None:
            counts[event.order_id][event.type] += 1
    for order_id, seen in counts.items():
        reserved, released = seen["inventory.stock_reserved"], seen["inventory.stock_released"]
        decisions = reserved + seen["inventory.stock_rejected"]
        if decisions > 1:
            findings.duplicated.append(f"order {order_id}: {decisions} stock decisions")
        if released > 1:
            findings.duplicated.append(f"order {order_id}: stock released {released} times")
        if released > reserved:
            findings.duplicated.append(f"order {order_id}: stock released but never reserved")
        reservation = state.stock_reservations.get(order_id)
        if reservation is not None and reservation.version != 1 + released:
            findings.duplicated.append(
                f"stock reservation of order {order_id} is at version {reservation.version} "
                f"after {released} releases"
            )


def _check_reordered(state: Snapshot, outside: OutsidePublisher, findings: Findings) -> None:
    for user_id, expected in outside.fake_customers.items():
        customer = state.customers.get(user_id)
        if customer is None or (customer.name, customer.status, customer.version) != (
            expected.name,
            expected.status,
            expected.version,
        ):
            findings.reorder_violations.append(
                f"replica of user {user_id} is {customer}, expected {expected}"
            )
    findings.reorder_violations += outside.not_applied
    decided = {e.order_id for e in state.user_events if e.order_id is not None}
    decided |= {e.order_id for e in state.stock_events if e.order_id is not None}
    for order_id in outside.cancelled_before_created:
        credit = state.reservations.get(order_id)
        stock = state.stock_reservations.get(order_id)
        if (
            credit is None
            or credit.state != "cancelled"
            or stock is None
            or stock.status != "cancelled"
            or order_id in decided
        ):
            findings.reorder_violations.append(
                f"order {order_id}, cancelled before it was created, ended as {credit}, {stock}"
            )


async def _check_dead_letters(
    stack: Deployment, outside: OutsidePublisher | None, findings: Findings
) -> None:
    found = await snapshot.dead_letter_ids(stack.amqp_url)
    findings.dead_lettered = len(found)
    malformed = outside.malformed if outside is not None else {}
    for message_id, queues in malformed.items():
        if found.get(message_id, set()) != queues:
            findings.malformed_missing.append(
                f"malformed message {message_id} in {sorted(found.get(message_id, ()))}, "
                f"not in {sorted(queues)}"
            )
    findings.unexpected_dead_letters = [
        f"{message_id} in {sorted(queues)}"
        for message_id, queues in found.items()
        if message_id not in malformed
    ]
