from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.persistence.database import drop_database
from tests.e2e.harness import Customer, Stack, register
from tests.support.databases import POSTGRES
from tests.support.names import unique_suffix
from tests.support.servers.postgres import PostgresNode
from tests.support.servers.rabbitmq import RabbitNode
from tests.support.servers.registry import ServerRun
from tests.support.vhosts import VhostSupply

pytestmark = pytest.mark.e2e


def started_stack(tmp_path: Path, vhosts: VhostSupply) -> Stack:
    """Every service on brand-new (not even created) databases and a new vhost."""
    _, amqp_url = vhosts.take()
    suffix = unique_suffix()
    return Stack(
        amqp_url=amqp_url,
        user_db=f"{POSTGRES}/e2e_user_svc_{suffix}",
        order_db=f"{POSTGRES}/e2e_order_svc_{suffix}",
        inventory_db=f"{POSTGRES}/e2e_inventory_svc_{suffix}",
        log_dir=tmp_path,
    )


async def teardown(stack: Stack, vhosts: VhostSupply) -> None:
    stack.kill()
    for database in stack.databases:
        await drop_database(database)
    vhosts.discard(stack.amqp_url.rsplit("/", 1)[1])


@pytest.fixture(scope="package")
async def stack(
    tmp_path_factory: pytest.TempPathFactory, vhosts: VhostSupply
) -> AsyncIterator[Stack]:
    """One running stack shared by every test here that needs no stack of its own; each test
    uses its own users and event ids, and nothing here stops, restarts or reconfigures it."""
    stack = started_stack(tmp_path_factory.mktemp("stack"), vhosts)
    try:
        await stack.start()
        yield stack
        stack.stop()
    finally:
        await teardown(stack, vhosts)


@pytest.fixture
async def own_stack(
    tmp_path: Path,
    server_run: ServerRun,
    private_postgres: PostgresNode,
    private_rabbitmq: RabbitNode,
) -> AsyncIterator[Stack]:
    """A stack for a test that stops, kills or restarts services or servers; the test starts
    it. It runs on this session's private servers, never on the machine's."""
    suffix = uuid.uuid4().hex[:12]
    vhost = f"e2e-{suffix}"
    stack = Stack(
        amqp_url=private_rabbitmq.add_vhost(vhost),
        user_db=f"{private_postgres.base_url()}/e2e_user_svc_{suffix}",
        order_db=f"{private_postgres.base_url()}/e2e_order_svc_{suffix}",
        inventory_db=f"{private_postgres.base_url()}/e2e_inventory_svc_{suffix}",
        log_dir=tmp_path,
    )
    for service in stack.services:
        service.env.update(server_run.mark)  # removed with the servers, even after a SIGKILL
    try:
        yield stack
    finally:
        stack.kill()
        private_postgres.ensure_running()
        private_rabbitmq.ensure_running()
        for database in stack.databases:
            await drop_database(database)
        private_rabbitmq.ctl("delete_vhost", vhost)


@pytest.fixture
async def customer(stack: Stack) -> AsyncIterator[Customer]:
    customer = await register(stack)
    yield customer
    await customer.close()
