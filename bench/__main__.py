"""`python -m bench [--quick]`: every measurement in one process tree, then the results.

Order of the run: broker and consumer throughput in this process (ours against the baselines,
repetitions interleaved so that drift on the machine hits both alike), the growth measurements
that need no services, then the three services as processes, with their memory sampled
throughout: HTTP against its baselines, the read timed in parts, the closed-loop saga in turns
with the plain floor program, the open loop at half the saturation rate and once more timed hop
by hop (`bench.hops`), the latency sweep; and last the closed-loop saga again with each service
split into its `api`, `worker` and `relay` roles. Whatever happens, the bench's databases,
vhosts and processes are removed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import FrameType
from typing import Any

import uvloop

from bench import cpu, growth, hop_times, hops, hops_chart, report
from bench.baselines import faststream_consume, raw_consume, raw_publish
from bench.floor import Floor
from bench.infra import Resources
from bench.machine import describe
from bench.messages import typical_size
from bench.ours import consumer, http, relay
from bench.ours.saga import Saga
from bench.rss import RssSampler
from bench.settings import FULL, QUICK, BenchSettings
from bench.stack import RATE_LIMITS, Service, Stack, register, start, start_roles
from bench.wrk import require_wrk

RESULTS = Path(__file__).with_name("results")
# `make bench` writes beside it, ignored by git; `make bench-reference` writes the committed run
# the README's table is taken from.
REFERENCE = RESULTS / "reference"
Measure = Callable[[], Awaitable[float]]

log = logging.getLogger("bench")


def phase(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


async def interleaved(
    named: dict[str, tuple[Measure, Measure]], repetitions: int, into: dict[str, list[float]]
) -> None:
    """A warm-up of each (discarded), then the repetitions taking turns: A, B, A, B, ..."""
    for name, (warmup, _) in named.items():
        phase(f"  warm-up {name}")
        await warmup()
    for round_ in range(repetitions):
        for name, (_, measure) in named.items():
            value = await measure()
            into[name].append(value)
            phase(f"  {name} #{round_ + 1}: {value:,.1f}")


async def broker_figures(
    settings: BenchSettings, resources: Resources, samples: dict[str, list[float]]
) -> dict[str, Any]:
    amqp = resources.vhost("mq")
    order_db = await resources.database("order", migrated_for="order_svc")
    raw_db = await resources.database("raw")
    user_db = await resources.database("user", migrated_for="user_svc")
    s = settings
    publish, warm = s.publish_messages, max(1, s.publish_messages // 5)

    phase("publishing: plain aio-pika against our relay")
    await interleaved(
        {
            "raw_publish_eps": (
                lambda: raw_publish.measure(amqp, messages=warm, window=s.publish_window),
                lambda: raw_publish.measure(amqp, messages=publish, window=s.publish_window),
            ),
            "relay_eps": (
                lambda: relay.measure(order_db, amqp, messages=warm),
                lambda: relay.measure(order_db, amqp, messages=publish),
            ),
        },
        s.repetitions,
        samples,
    )

    phase("consuming: plain aio-pika, FastStream, ours")
    consume, consume_warm = s.consume_messages, max(1, s.consume_messages // 5)
    baseline: dict[str, Any] = {
        "prefetch": s.baseline_prefetch,
        "pool_size": s.baseline_pool_size,
        "window": s.publish_window,
    }
    users = await consumer.add_users(user_db, s.consumer_users)
    ours, ours_warm = s.consumer_messages, max(1, s.consumer_messages // 5)
    await interleaved(
        {
            "raw_consume_pg_eps": (
                lambda: raw_consume.measure(raw_db, amqp, messages=consume_warm, **baseline),
                lambda: raw_consume.measure(raw_db, amqp, messages=consume, **baseline),
            ),
            "faststream_consume_pg_eps": (
                lambda: faststream_consume.measure(raw_db, amqp, messages=consume_warm, **baseline),
                lambda: faststream_consume.measure(raw_db, amqp, messages=consume, **baseline),
            ),
            "consumer_eps": (
                lambda: consumer.measure(
                    user_db, amqp, users, messages=ours_warm, window=s.publish_window
                ),
                lambda: consumer.measure(
                    user_db, amqp, users, messages=ours, window=s.publish_window
                ),
            ),
        },
        s.repetitions,
        samples,
    )

    # Backlogs of growing size, one after the other in the same outbox, so each drain also
    # runs over the published history of the ones before: its time should follow the backlog.
    drain_db = await resources.database("drain", migrated_for="order_svc")
    drains = []
    for rows in (s.drain_rows // 10, s.drain_rows * 3 // 10, s.drain_rows):
        phase(f"growth: relay draining {rows:,} outbox rows")
        drained_in = await relay.drain(drain_db, amqp, rows=rows)
        phase(f"  {drained_in:.1f} s")
        drains.append({"rows": rows, "seconds": round(drained_in, 3)})
    seconds = drained_in

    phase(f"growth: our consumer with an inbox of {s.inbox_rows:,} rows against an empty one")
    empty_db = await resources.database("inbox_empty", migrated_for="user_svc")
    filled_db = await resources.database("inbox_filled", migrated_for="user_svc")
    await consumer.fill_inbox(filled_db, s.inbox_rows)
    rates: dict[str, list[float]] = {"empty": [], "filled": []}
    empty_users = await consumer.add_users(empty_db, s.consumer_users)
    filled_users = await consumer.add_users(filled_db, s.consumer_users)
    for _ in range(s.inbox_repetitions):
        for label, db, who in (
            ("empty", empty_db, empty_users),
            ("filled", filled_db, filled_users),
        ):
            rate = await consumer.measure(
                db, amqp, who, messages=s.consumer_messages, window=s.publish_window
            )
            rates[label].append(rate)
            phase(f"  {label}: {rate:,.1f} events/s")
    return {
        "outbox_drain": {
            "rows": s.drain_rows,
            "seconds": round(seconds, 3),
            "events_per_s": round(s.drain_rows / seconds, 1),
            "by_backlog": drains,
        },
        "inbox": {
            "rows": s.inbox_rows,
            "messages_per_repetition": s.consumer_messages,
            "empty_eps": round(report.median(rates["empty"]), 1),
            "filled_eps": round(report.median(rates["filled"]), 1),
            "empty_samples": [round(r, 1) for r in rates["empty"]],
            "filled_samples": [round(r, 1) for r in rates["filled"]],
            "filled_over_empty": round(
                report.median(rates["filled"]) / report.median(rates["empty"]), 3
            ),
        },
    }


async def http_figures(
    settings: BenchSettings,
    resources: Resources,
    stack: Stack,
    log_dir: Path,
    samples: dict[str, list[float]],
    *,
    order_id: str,
    token: str,
) -> dict[str, dict[str, float]]:
    """wrk against both baselines and order_svc; the CPU each spent per request (the server
    process, PostgreSQL, the machine), as the median of the repetitions."""
    s = settings
    phase("HTTP GET /orders/{id}: bare ASGI, smallest FastAPI app, order_svc (wrk)")
    order_db = stack_database(resources, "order")
    raw = http.start_baseline("bench.baselines.raw_http", resources, order_db, log_dir)
    fastapi = http.start_baseline("bench.baselines.fastapi_http", resources, order_db, log_dir)
    for baseline in (raw, fastapi):
        await baseline.wait_ready(path="/healthz")
    targets = {
        "raw_http_get_rps": raw,
        "fastapi_http_get_rps": fastapi,
        "http_get_rps": stack.order_svc,
    }
    spent: dict[str, list[dict[str, float]]] = defaultdict(list)

    async def timed(name: str, server: Service) -> float:
        pids = {"server": server.pid}
        before = cpu.snapshot(pids)
        rps = await http.measure(server.url, order_id, token, s, seconds=s.http_seconds)
        spent[name].append(cpu.per_unit(before, cpu.snapshot(pids), rps * s.http_seconds))
        return rps

    await interleaved(
        {
            name: (
                lambda server=server: http.measure(
                    server.url, order_id, token, s, seconds=s.http_warmup_seconds
                ),
                lambda name=name, server=server: timed(name, server),
            )
            for name, server in targets.items()
        },
        s.repetitions,
        samples,
    )
    for baseline in (raw, fastapi):
        resources.stop(baseline.process)
    # Only what every repetition measured: `cpu.per_unit` leaves out a group whose processes
    # ended in between (a `rabbitmqctl` run by anyone on the machine is a `beam.smp` too).
    return {
        name: {
            key: report.median([run[key] for run in runs])
            for key in runs[0]
            if all(key in run for run in runs)
        }
        for name, runs in spent.items()
    }


async def service_figures(
    settings: BenchSettings,
    resources: Resources,
    log_dir: Path,
    samples: dict[str, list[float]],
) -> tuple[dict[str, Any], dict[str, Any], float, dict[str, Any]]:
    s = settings
    phase("starting user_svc, order_svc and inventory_svc")
    stack: Stack = await start(resources, log_dir)
    services = {name: service.pid for name, service in stack.processes.items()}
    sampler = RssSampler(services)
    sampler.start()
    try:
        phase(f"registering and logging in {s.saga_users} users over HTTP")
        customers = await register(stack, s.saga_users)
        async with Saga(stack, customers, s.saga_timeout_seconds) as saga:
            order_id, _, _ = await saga.order(customers[0])
            token = customers[0].token

            http_cpu = await http_figures(
                settings, resources, stack, log_dir, samples, order_id=order_id, token=token
            )
            phase(f"GET /orders/{{id}} one at a time, {s.hop_reads} times, timed in parts")
            reads = await hop_times.read_timings(
                f"{stack.order_svc.url}/orders/{order_id}", token, requests=s.hop_reads
            )

            saga_cpu, floor_cpu = await closed_loops(
                settings, resources, log_dir, saga, services, samples
            )
            saturation = report.median(samples["saga_orders_per_s"])
            open_runs, timelines = await half_saturation(
                settings, resources, saga, saturation / 2, samples
            )

            phase("saga, latency against offered load")
            points = []
            for fraction in s.sweep_fractions:
                result = await saga.open_loop(rate=saturation * fraction, seconds=s.sweep_seconds)
                result["fraction_of_saturation"] = fraction
                points.append(result)
                phase(
                    f"  {result['offered_per_s']:,.1f}/s: p50 {result['p50_ms']} ms, "
                    f"p99 {result['p99_ms']} ms, confirmed {result['confirmed']}/{result['sent']}"
                )
                await saga.settle()
    finally:
        await sampler.stop()
        stack.stop(resources)
    details = {
        "http": {"order_id": order_id, "tool": "wrk"},
        "floor_saga_cpu_ms_per_order": floor_cpu,
        "saga_open_loop_runs": open_runs,
        "rss_peak_mb": {k: round(v, 1) for k, v in sampler.peak_mb.items()},
        # Where the cores went (see bench/cpu.py): per order over the whole closed loop, and
        # per request (median of the repetitions) for each HTTP target.
        "saga_cpu_ms_per_order": saga_cpu,
        "http_cpu_ms_per_request": http_cpu,
        "service_logs": str(log_dir),
    }
    sweep = {
        "saturation_orders_per_s": round(saturation, 2),
        "clients": s.saga_clients,
        "seconds_per_point": s.sweep_seconds,
        "points": points,
    }
    return details, sweep, sampler.max_mb, hops.summarise(timelines, reads)


async def closed_loops(
    settings: BenchSettings,
    resources: Resources,
    log_dir: Path,
    saga: Saga,
    services: dict[str, int],
    samples: dict[str, list[float]],
) -> tuple[dict[str, float], dict[str, float]]:
    """`saga_orders_per_s` and `floor_saga_orders_per_s` in turns, a warm-up and a window each;
    the CPU each spent per order."""
    s = settings
    phase(f"saga, closed loop, {s.saga_clients} clients: ours and the plain floor program in turns")
    floor = Floor(resources, log_dir, users=s.saga_users)
    await floor.start()
    spent = cpu.Tally()
    for round_ in range(s.repetitions):
        before = cpu.snapshot(services)
        loop = await saga.closed_loop(
            clients=s.saga_clients, warmup=s.saga_warmup_seconds, windows=1, seconds=s.saga_seconds
        )
        spent.add(before, cpu.snapshot(services), loop.orders)
        samples["saga_orders_per_s"].extend(loop.windows)
        phase(f"  saga_orders_per_s #{round_ + 1}: {loop.windows[0]:,.1f}")
        await saga.settle()
        rate = await floor.measure(
            clients=s.saga_clients, warmup=s.saga_warmup_seconds, seconds=s.saga_seconds
        )
        samples["floor_saga_orders_per_s"].append(rate)
        phase(f"  floor_saga_orders_per_s #{round_ + 1}: {rate:,.1f}")
    floor.stop()
    phase(f"  CPU ms per order, ours: {spent.per_unit()}")
    phase(f"  CPU ms per order, floor: {floor.spent.per_unit()}")
    return spent.per_unit(), floor.spent.per_unit()


async def half_saturation(
    settings: BenchSettings,
    resources: Resources,
    saga: Saga,
    rate: float,
    samples: dict[str, list[float]],
) -> tuple[list[dict[str, Any]], list[hops.Timeline]]:
    """`saga_p50_ms` and `saga_p99_ms` at `rate`, open loop; then one more run at that rate with
    every order timed at every hop (`bench.hops`): the runs, and the orders' timelines. The
    timed run is apart because its tap takes a copy of every event of the saga, load that the
    judged figures must not carry."""
    phase(f"saga, open loop at half the saturation rate: {rate:,.1f} orders/s")
    runs = []
    for _ in range(settings.repetitions):
        result = await saga.open_loop(rate=rate, seconds=settings.saga_seconds)
        runs.append(result)
        samples["saga_p50_ms"].append(result["p50_ms"])
        samples["saga_p99_ms"].append(result["p99_ms"])
        phase(f"  p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms")
        await saga.settle()
    phase("  once more, hop by hop")
    async with saga.tap.watching():
        result = await saga.open_loop(rate=rate, seconds=settings.saga_seconds)
        phase(f"  p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms (the tap on every event)")
        await saga.settle()
    timelines = await hop_times.saga_timelines(
        databases={
            service: stack_database(resources, service.removesuffix("_svc"))
            for service in ("order_svc", *hops.PARTICIPANTS)
        },
        placed=saga.placed,
        delivered=saga.tap.delivered,
    )
    phase(f"  {len(timelines)} of {len(saga.placed)} orders timed at every hop")
    return runs, timelines


async def roles_figures(
    settings: BenchSettings,
    resources: Resources,
    log_dir: Path,
    samples: dict[str, list[float]],
) -> dict[str, Any]:
    """The closed-loop saga again, each service now split into an `api`, a `worker` and a
    `relay` process: what the split costs against `all`, on the same machine and settings."""
    s = settings
    phase("starting the services as api, worker and relay processes")
    stack = await start_roles(resources, log_dir)
    pids = {name: service.pid for name, service in stack.processes.items()}
    sampler = RssSampler(pids)
    sampler.start()
    try:
        customers = await register(stack, s.saga_users)
        async with Saga(stack, customers, s.saga_timeout_seconds) as saga:
            phase(f"saga over the roles, closed loop: {s.saga_clients} clients")
            before = cpu.snapshot(pids)
            loop = await saga.closed_loop(
                clients=s.saga_clients,
                warmup=s.saga_warmup_seconds,
                windows=s.repetitions,
                seconds=s.saga_seconds,
            )
            saga_cpu = cpu.per_unit(before, cpu.snapshot(pids), loop.orders)
    finally:
        await sampler.stop()
        stack.stop(resources)
    samples["roles_saga_orders_per_s"].extend(loop.windows)
    phase(f"  orders/s per window: {', '.join(f'{w:,.1f}' for w in loop.windows)}")
    phase(f"  CPU ms per order: {saga_cpu}")
    return {
        "roles_saga_cpu_ms_per_order": saga_cpu,
        "roles_rss_peak_mb": {k: round(v, 1) for k, v in sampler.peak_mb.items()},
    }


def stack_database(resources: Resources, service: str) -> str:
    """The database of the `all`-role stack's `service` ("order", "user", "inventory")."""
    return next(url for url in resources.databases if f"/bench_stack_{service}_" in url)


async def run(settings: BenchSettings) -> dict[str, Any]:
    require_wrk()
    resources = Resources()
    log_dir = Path(tempfile.mkdtemp(prefix="bench-logs-"))
    samples: dict[str, list[float]] = defaultdict(list)
    started = time.perf_counter()
    try:
        machine = await describe()
        growth_figures = await broker_figures(settings, resources, samples)
        details, sweep, max_rss, hop_figures = await service_figures(
            settings, resources, log_dir, samples
        )
        details.update(await roles_figures(settings, resources, log_dir, samples))
    finally:
        phase("removing the bench's databases, vhosts and processes")
        await resources.release()
    growth_figures["saga_latency_vs_load"] = sweep
    growth_figures["quick"] = settings.quick
    if settings.quick:
        growth_figures["note"] = (
            f"quick run: outbox backlog of {settings.drain_rows:,} rows and inbox of "
            f"{settings.inbox_rows:,} rows instead of 100,000 and 1,000,000"
        )
    details["message_bytes"] = typical_size()
    details["duration_seconds"] = round(time.perf_counter() - started, 1)
    details["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return report.build_results(
        repetitions=samples,
        maxima={"max_rss_mb": max_rss},
        machine=machine,
        settings={
            **settings.as_dict(),
            "relay_batch_size": relay.BATCH_SIZE,
            "consumer_prefetch": consumer.PREFETCH,
            "consumer_batch_size": consumer.BATCH_SIZE,
            "queues": "quorum",
            "event_loop": "uvloop",
            "rate_limits": RATE_LIMITS,
        },
        growth=growth_figures,
        hops=hop_figures,
        details=details,
    )


def _interrupt(signum: int, _: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a scaled-down run (< 2 minutes)")
    parser.add_argument(
        "--reference",
        action="store_true",
        help="write the committed reference run (bench/results/reference/) instead of the "
        "ignored latest one",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # A SIGTERM (make interrupted, CI timeout) unwinds like Ctrl-C, so the clean-up still runs.
    signal.signal(signal.SIGTERM, _interrupt)
    settings = QUICK if args.quick else FULL
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        results = runner.run(run(settings))
    written = outputs(REFERENCE if args.reference else RESULTS, reference=args.reference)
    report.write(results, written["results"])
    growth.plot(results["growth"], written["scaling"])
    hops_chart.plot(results["hops"], written["hops"], title=run_title(results))
    print(report.markdown(results))
    print()
    print(report.verdicts(results))
    phase(f"wrote {', '.join(str(path) for path in written.values())}")


def outputs(directory: Path, *, reference: bool) -> dict[str, Path]:
    """Where a run's files go: `latest.json` for the ignored latest run, `results.json` for
    the reference."""
    return {
        "results": directory / ("results.json" if reference else "latest.json"),
        "scaling": directory / "scaling.png",
        "hops": directory / "hops.png",
    }


def run_title(results: dict[str, Any]) -> str:
    half = report.median(results["repetitions"]["saga_orders_per_s"]) / 2
    kind = "quick run" if results["settings"]["quick"] else "full run"
    return (
        f"eventful: latency hop by hop at half the saturation rate ({half:,.0f} orders/s, {kind})"
    )


if __name__ == "__main__":
    main()
