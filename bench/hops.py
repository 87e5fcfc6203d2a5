"""The latency model, measured per hop: where an order's time goes between `POST /orders` and
its `order.confirmed`, and where a read's time goes.

An asynchronous hop carries one event from the service that commits it to the one that applies
it: T = T_publish + T_network + T_consume, taken apart at the instants the system records anyway
(all on the one machine's clock):

- commit: the event's CloudEvent `time`, stamped as the unit of work gathers it, moments before
  its commit (a consumer batch commits after its last handler, so the wait for a batch's later
  handlers shows in the next hop's publish);
- claimed: the outbox row's `published_at`, set when the relay claims it, in the transaction
  it commits once the broker has confirmed the whole batch;
- delivered: when the broker delivered the event to the bench's own queue bound beside the
  consumers' (`bench.ours.saga.Tap.watching`);
- applied: the consumer's inbox row's `processed_at`, when its transaction began;
- the consumer's commit: the `time` of the event its handler raised.

T_publish is commit -> claimed (the relay's wake-up, the batch before it, its claim); T_network
is claimed -> delivered (the publish, the quorum queue's write and confirm, the delivery: the
broker and the wire; on a quorum queue the confirm and the delivery both follow the same Raft
commit); T_consume is delivered -> the consumer's commit, in two parts: waiting (prefetch, a
free worker, the batch) and the transaction.

`order.created` goes to both participants at once, user_svc (credit) and inventory_svc (stock),
and order_svc confirms the order on whichever reservation comes second. So the saga's hops are
its critical path: `order.created` to the participant whose reservation came second, that
reservation back to order_svc, and `order.confirmed`, which ends at its delivery, where the
saga's own latency figure ends. With `POST /orders` until its commit first, the hops add up to
the saga's latency exactly. Which participant came second is read from the record, not guessed:
`order.confirmed`'s `causationid` is the reservation that completed the order. Beside the path,
each participant's branch (from `order.created`'s commit to its reservation's delivery) and how
often it was the one waited for.

The synchronous read, `GET /orders/{id}` one request at a time: T = T_request + T_response +
T_network, where T_request is the service's own time (its `Server-Timing` header: from the
request reaching it to its response starting), T_response the response's body reaching the
client after its headers, and T_network the rest of the round trip (loopback both ways,
uvicorn's parsing and writing, the client's HTTP stack).

Pure arithmetic; `bench.hop_times` reads the instants and `bench.hops_chart` draws the result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.report import median, percentile

# The saga's participants and the reservation each sends back to order_svc.
PARTICIPANTS: Mapping[str, str] = {
    "user_svc": "user.credit_reserved",
    "inventory_svc": "inventory.stock_reserved",
}


@dataclass(frozen=True)
class Timeline:
    """One order's instants by name (`sent`, `<event>:<instant>`, and
    `order.created:applied@<participant>`), and the participant whose reservation came second."""

    instants: Mapping[str, float]
    later: str

    def __getitem__(self, name: str) -> float:
        """An instant; `{later}` and `{reservation}` in its name stand for the later participant
        and its reservation."""
        return self.instants[name.format(later=self.later, reservation=PARTICIPANTS[self.later])]


@dataclass(frozen=True)
class Hop:
    name: str
    route: str
    kind: str  # "async" or "sync"
    # (part, from instant, to instant); consecutive, so the parts add up to the hop.
    parts: tuple[tuple[str, str, str], ...]


def _async_hop(name: str, route: str, event: str, consumed: tuple[str, str] | None = None) -> Hop:
    """`consumed`: the instant the consumer applied the event, and the event its handler raised."""
    parts = [("publish", f"{event}:commit", f"{event}:claimed")]
    parts.append(("network", f"{event}:claimed", f"{event}:delivered"))
    if consumed is not None:
        applied, raised = consumed
        parts.append(("consume: waiting", f"{event}:delivered", applied))
        parts.append(("consume: transaction", applied, f"{raised}:commit"))
    return Hop(name, route, "async", tuple(parts))


SAGA: tuple[Hop, ...] = (
    Hop(
        "POST /orders",
        "client -> order_svc",
        "sync",
        (("request until its commit", "sent", "order.created:commit"),),
    ),
    _async_hop(
        "order.created",
        "order_svc -> the later participant",
        "order.created",
        ("order.created:applied@{later}", "{reservation}"),
    ),
    _async_hop(
        "the later reservation",
        "user_svc or inventory_svc -> order_svc",
        "{reservation}",
        ("{reservation}:applied", "order.confirmed"),
    ),
    _async_hop("order.confirmed", "order_svc -> the bench", "order.confirmed"),
)
READ = Hop(
    "GET /orders/{id}",
    "client -> order_svc -> client",
    "sync",
    (("request", "", ""), ("response", "", ""), ("network", "", "")),
)


def needed(participant: str) -> set[str]:
    """The instants an order needs to be timed, when `participant` came second."""
    names = {n for hop in SAGA for _, start, end in hop.parts for n in (start, end)}
    names |= {f"{reservation}:delivered" for reservation in PARTICIPANTS.values()}
    return {n.format(later=participant, reservation=PARTICIPANTS[participant]) for n in names}


def _stats(values: Sequence[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {"p50_ms": round(median(ms), 3), "p99_ms": round(percentile(ms, 0.99), 3)}


def summarise(
    timelines: Sequence[Timeline], reads: Sequence[Mapping[str, float]]
) -> dict[str, Any]:
    """Medians and 99th percentiles of every hop and of each of its parts, and of each
    participant's branch: the `hops` section of the results."""
    hops = []
    for hop in SAGA:
        parts = {name: [t[end] - t[start] for t in timelines] for name, start, end in hop.parts}
        totals = [t[hop.parts[-1][2]] - t[hop.parts[0][1]] for t in timelines]
        hops.append(_hop(hop, parts, totals))
    if reads:
        parts = {name: [r[name] for r in reads] for name, _, _ in READ.parts}
        hops.append(_hop(READ, parts, [sum(r.values()) for r in reads]))
    saga = [t["order.confirmed:delivered"] - t["sent"] for t in timelines]
    return {
        "orders": len(timelines),
        "reads": len(reads),
        "saga": _stats(saga) if saga else None,
        "hops": hops,
        "participants": [
            _participant(name, reservation, timelines) for name, reservation in PARTICIPANTS.items()
        ],
    }


def _participant(name: str, reservation: str, timelines: Sequence[Timeline]) -> dict[str, Any]:
    branch = [t[f"{reservation}:delivered"] - t["order.created:commit"] for t in timelines]
    later = sum(t.later == name for t in timelines)
    return {
        "name": name,
        "reservation": reservation,
        "later_share": round(later / len(timelines), 3) if timelines else None,
        # order.created's commit -> the reservation's delivery to order_svc.
        "branch": _stats(branch) if branch else None,
    }


def _hop(hop: Hop, parts: Mapping[str, Sequence[float]], totals: Sequence[float]) -> dict[str, Any]:
    return {
        "name": hop.name,
        "route": hop.route,
        "kind": hop.kind,
        "total": _stats(totals) if totals else None,
        "parts": {name: _stats(values) for name, values in parts.items() if values},
    }
