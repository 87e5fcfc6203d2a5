"""How big each measurement is, in the full and the quick run.

One frozen value per run, recorded verbatim in the results, so a number can always be read with
the sizes that produced it. The quick run keeps every measurement but shrinks it, to fit in under
two minutes on a laptop; its growth figures are scaled down and say so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, kw_only=True)
class BenchSettings:
    quick: bool
    repetitions: int
    # Broker and consumer throughput: messages per repetition (the warm-up uses a fifth).
    publish_messages: int
    consume_messages: int
    consumer_messages: int
    # Outstanding publisher confirms of the plain publisher (the relay pipelines one batch).
    publish_window: int
    # Unacknowledged messages per consumer for the plain and FastStream consumers, tuned on this
    # machine (16..256 tried; beyond 64 nothing is gained). Ours runs with the service default.
    baseline_prefetch: int
    # Connections of the plain consumers' asyncpg pool: the services' pool holds up to 20.
    baseline_pool_size: int
    # Distinct users the consumer's order.created events are spread over.
    consumer_users: int
    # HTTP load (wrk): seconds per repetition, warm-up seconds, connections, threads.
    http_seconds: float
    http_warmup_seconds: float
    http_connections: int
    http_threads: int
    # The saga: registered users, closed-loop clients, seconds per repetition and warm-up.
    saga_users: int
    saga_clients: int
    saga_seconds: float
    saga_warmup_seconds: float
    # Reads of `GET /orders/{id}`, one at a time, timed in parts (`bench.hops`).
    hop_reads: int
    # Offered rates of the latency sweep, as fractions of the closed-loop saturation rate.
    sweep_fractions: tuple[float, ...]
    sweep_seconds: float
    # How long an order may take to be confirmed before it counts as timed out.
    saga_timeout_seconds: float
    # Growth.
    drain_rows: int
    inbox_rows: int
    # Repetitions of each side (empty, filled) of the inbox comparison.
    inbox_repetitions: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


FULL = BenchSettings(
    quick=False,
    repetitions=3,
    publish_messages=30_000,
    consume_messages=15_000,
    consumer_messages=4_000,
    publish_window=1_000,
    baseline_prefetch=64,
    baseline_pool_size=20,
    consumer_users=5_000,
    http_seconds=10.0,
    http_warmup_seconds=3.0,
    http_connections=32,
    http_threads=1,
    saga_users=100,
    saga_clients=32,
    saga_seconds=10.0,
    saga_warmup_seconds=3.0,
    hop_reads=2_000,
    sweep_fractions=(0.1, 0.25, 0.5, 0.7, 0.85, 1.0, 1.2, 1.5, 1.8, 2.2),
    sweep_seconds=6.0,
    saga_timeout_seconds=15.0,
    drain_rows=100_000,
    inbox_rows=1_000_000,
    inbox_repetitions=2,
)

QUICK = BenchSettings(
    quick=True,
    repetitions=3,
    # Big enough that starting and stopping (the relay's first claim, the consumer's start) stay
    # a small share of each figure: smaller runs moved the ratios by a tenth from run to run.
    publish_messages=10_000,
    consume_messages=5_000,
    consumer_messages=2_000,
    publish_window=1_000,
    baseline_prefetch=64,
    baseline_pool_size=20,
    consumer_users=1_000,
    http_seconds=2.0,
    http_warmup_seconds=1.0,
    http_connections=32,
    http_threads=1,
    saga_users=24,
    saga_clients=32,
    saga_seconds=3.0,
    saga_warmup_seconds=1.0,
    hop_reads=300,
    sweep_fractions=(0.25, 0.5, 0.85, 1.2),
    sweep_seconds=2.0,
    saga_timeout_seconds=10.0,
    drain_rows=10_000,
    inbox_rows=100_000,
    inbox_repetitions=1,
)
