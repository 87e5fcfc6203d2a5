"""One failover run per module: the replicated servers, the services, the load with its side
stream, the faults, convergence and the findings.

The tests of the module each assert one property of that run. The table is printed in pytest's
terminal summary, with or without `-s`, whether the run passed or failed. The servers (three
RabbitMQ nodes and their namespaces, HAProxy, two PostgreSQL nodes) are the session's private
ones: at the end of the module every service replica is removed, the servers are left whole,
and the run's vhost and databases are removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator

import pytest

from tests.chaos.checker import check, wait_for_convergence
from tests.chaos.load import LoadGenerator
from tests.chaos.plan import CONVERGENCE_TIMEOUT_SECONDS
from tests.failover.faults import FailoverInjector
from tests.failover.plan import CREDIT_LIMIT, SIDE_STREAM_RATE, FailoverPlan
from tests.failover.report import FailoverRun, render
from tests.failover.side_stream import SideStream
from tests.failover.stack import FailoverStack
from tests.support.servers.haproxy import HAProxy
from tests.support.servers.postgres import PostgresPair
from tests.support.servers.rabbitmq import RabbitCluster
from tests.support.servers.registry import ServerRun
from tests.support.settings import ADMIN_EMAIL

REPORTS = pytest.StashKey[list[str]]()
SIDE_STREAM_DRAIN_SECONDS = 60.0


@pytest.fixture(scope="module")
async def failover_run(
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
    server_run: ServerRun,
    private_rabbit_cluster: RabbitCluster,
    private_balancer: HAProxy,
    private_postgres_pair: PostgresPair,
) -> AsyncIterator[FailoverRun]:
    plan = FailoverPlan.from_env()
    log_dir = tmp_path_factory.mktemp("failover")
    started = time.monotonic()
    stack = FailoverStack(
        run=server_run,
        cluster=private_rabbit_cluster,
        balancer=private_balancer,
        databases=private_postgres_pair,
        log_dir=log_dir,
        credit_limit=CREDIT_LIMIT,
    )
    try:
        await stack.start()
        load = LoadGenerator.over(
            stack.replicas_of, rng=random.Random(f"{plan.seed}-load"), credit_limit=CREDIT_LIMIT
        )
        await load.register_users(plan.users)
        await load.stock_up(admin_email=ADMIN_EMAIL, orders=plan.orders)
        side = SideStream(amqp_url=stack.amqp_url, rate=SIDE_STREAM_RATE)
        await side.declare()
        faults = FailoverInjector(stack=stack, load=load, rng=random.Random(f"{plan.seed}-faults"))
        stop_publishing = asyncio.Event()
        publisher = asyncio.create_task(side.publish_until(stop_publishing))
        consumer = asyncio.create_task(side.consume_forever())
        load_started = time.monotonic()
        async with asyncio.TaskGroup() as group:
            group.create_task(
                load.run(
                    load.intents(plan.orders),
                    seconds=plan.load_seconds,
                    hold_tail_until=faults.finished,
                )
            )
            group.create_task(faults.run(plan.faults, interval=plan.fault_interval))
        load_seconds = time.monotonic() - load_started
        stop_publishing.set()
        await publisher
        convergence = await wait_for_convergence(
            stack, load.result, since=faults.last_ended, timeout=CONVERGENCE_TIMEOUT_SECONDS
        )
        await side.drain(SIDE_STREAM_DRAIN_SECONDS)
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
        run = FailoverRun(
            plan=plan,
            load=load.result,
            faults=faults.injected,
            side_stream=side,
            convergence=convergence,
            findings=await check(stack, load.result),
            log_dir=log_dir,
            seconds=time.monotonic() - started,
            load_started=load_started,
            load_seconds=load_seconds,
        )
        request.config.stash.setdefault(REPORTS, []).append(render(run))
        yield run
    finally:
        await stack.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for report in terminalreporter.config.stash.get(REPORTS, []):
        terminalreporter.write_sep("=", "failover")
        terminalreporter.write_line(report)
