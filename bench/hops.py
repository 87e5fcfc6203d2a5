"""The latency model, measured hop by hop: where an order's time goes between `POST /orders` and
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
  consumer's (`bench.ours.saga.Tap.watching`);
- applied: the inbox row's `processed_at`, when the consumer's transaction began;
- the consumer's commit: the `time` of the event its handler raised.

T_publish is commit -> claimed (the relay's wake-up, the batch before it, its claim); T_network
is claimed -> delivered (the publish, the quorum queue's write and confirm, the delivery: the
broker and the wire; on a quorum queue the confirm and the delivery both follow the same Raft
commit); T_consume is delivered -> the consumer's commit, in two parts: waiting (prefetch, a
free worker, the batch) and the transaction. The last hop, `order.confirmed`, ends at its
delivery, where the saga's own latency figure ends. `POST /orders` until its commit comes
first, so the hops add up to the saga's latency exactly.

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


@dataclass(frozen=True)
class Hop:
    name: str
    route: str
    kind: str  # "async" or "sync"
    # (part, from instant, to instant); consecutive, so the parts add up to the hop.
    parts: tuple[tuple[str, str, str], ...]


def _async_hop(event: str, route: str, next_event: str | None) -> Hop:
    parts = [("publish", f"{event}:commit", f"{event}:claimed")]
    parts.append(("network", f"{event}:claimed", f"{event}:delivered"))
    if next_event is not None:
        parts.append(("consume: waiting", f"{event}:delivered", f"{event}:applied"))
        parts.append(("consume: transaction", f"{event}:applied", f"{next_event}:commit"))
    return Hop(event, route, "async", tuple(parts))


SAGA: tuple[Hop, ...] = (
    Hop(
        "POST /orders",
        "client -> order_svc",
        "sync",
        (("request until its commit", "sent", "order.created:commit"),),
    ),
    _async_hop("order.created", "order_svc -> user_svc", "user.credit_reserved"),
    _async_hop("user.credit_reserved", "user_svc -> order_svc", "order.confirmed"),
    _async_hop("order.confirmed", "order_svc -> the bench", None),
)
READ = Hop(
    "GET /orders/{id}",
    "client -> order_svc -> client",
    "sync",
    (("request", "", ""), ("response", "", ""), ("network", "", "")),
)


def _stats(values: Sequence[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {"p50_ms": round(median(ms), 3), "p99_ms": round(percentile(ms, 0.99), 3)}


def summarise(
    timelines: Sequence[Mapping[str, float]], reads: Sequence[Mapping[str, float]]
) -> dict[str, Any]:
    """Medians and 99th percentiles of every hop and of each of its parts: the `hops` section of
    the results."""
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
    }


def _hop(hop: Hop, parts: Mapping[str, Sequence[float]], totals: Sequence[float]) -> dict[str, Any]:
    return {
        "name": hop.name,
        "route": hop.route,
        "kind": hop.kind,
        "total": _stats(totals) if totals else None,
        "parts": {name: _stats(values) for name, values in parts.items() if values},
    }
