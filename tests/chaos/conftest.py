"""One chaos run per module: the stack, the load, the faults, convergence and the findings.

The tests of the module each assert one property of that run. The table is printed in pytest's
terminal summary, so it shows with or without `-s`, whether the run passed or failed. The run
restarts the session's private PostgreSQL and RabbitMQ, never the machine's; whatever happens,
both are left running and the run's databases and vhost removed.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator

import pytest

from tests.chaos import servers
from tests.chaos.checker import check, wait_for_convergence
from tests.chaos.faults import FaultInjector
from tests.chaos.load import LoadGenerator
from tests.chaos.outside_events import OutsidePublisher
from tests.chaos.plan import CONVERGENCE_TIMEOUT_SECONDS, CREDIT_LIMIT, ChaosPlan
from tests.chaos.report import ChaosRun, render
from tests.chaos.stack import ChaosStack
from tests.support.servers.postgres import PostgresNode
from tests.support.servers.rabbitmq import RabbitNode
from tests.support.servers.registry import ServerRun
from tests.support.settings import ADMIN_EMAIL

REPORTS = pytest.StashKey[list[str]]()


@pytest.fixture(scope="module")
async def chaos_run(
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
    server_run: ServerRun,
    private_postgres: PostgresNode,
    private_rabbitmq: RabbitNode,
) -> AsyncIterator[ChaosRun]:
    plan = ChaosPlan.from_env()
    log_dir = tmp_path_factory.mktemp("chaos")
    started = time.monotonic()
    stack = ChaosStack(
        log_dir=log_dir,
        credit_limit=CREDIT_LIMIT,
        postgres=private_postgres,
        rabbitmq=private_rabbitmq,
        mark=server_run.mark,
    )
    try:
        await stack.start()
        load = LoadGenerator.over(
            stack.replicas_of, rng=random.Random(f"{plan.seed}-load"), credit_limit=CREDIT_LIMIT
        )
        users = await load.register_users(plan.users)
        await load.stock_up(admin_email=ADMIN_EMAIL, orders=plan.orders)
        outside = OutsidePublisher(
            amqp_url=stack.amqp_url,
            user_db=stack.user_db,
            order_db=stack.order_db,
            inventory_db=stack.inventory_db,
            users=[u.id for u in users],
            rng=random.Random(f"{plan.seed}-outside"),
        )
        faults = FaultInjector(
            stack=stack, outside=outside, rng=random.Random(f"{plan.seed}-faults")
        )
        kinds = plan.fault_kinds(random.Random(f"{plan.seed}-plan"))
        load_started = time.monotonic()
        async with asyncio.TaskGroup() as group:
            group.create_task(
                load.run(
                    load.intents(plan.orders),
                    seconds=plan.load_seconds,
                    hold_tail_until=faults.finished,
                )
            )
            group.create_task(faults.run(kinds, interval=plan.fault_interval))
        convergence = await wait_for_convergence(
            stack, load.result, since=faults.last_ended, timeout=CONVERGENCE_TIMEOUT_SECONDS
        )
        run = ChaosRun(
            plan=plan,
            load=load.result,
            faults=faults.injected,
            outside=outside,
            convergence=convergence,
            findings=await check(stack, load.result, outside),
            log_dir=log_dir,
            seconds=time.monotonic() - started,
            load_started=load_started,
            diagnostics=""
            if convergence.converged
            else await servers.describe_queues(stack.rabbitmq, stack.vhost),
        )
        request.config.stash.setdefault(REPORTS, []).append(render(run))
        yield run
    finally:
        try:
            await servers.ensure_servers_running(private_postgres, private_rabbitmq)
        finally:
            await stack.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for report in terminalreporter.config.stash.get(REPORTS, []):
        terminalreporter.write_sep("=", "chaos")
        terminalreporter.write_line(report)
