"""Self-healing and graceful shutdown: the servers restart under running services, the services
carry on without a manual restart; a SIGTERM stops a service cleanly and loses nothing.

The servers restarted here are this session's private ones (`own_stack` runs on them), never
the machine's."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import uuid

import aio_pika
import httpx
import pytest

from tests.e2e.harness import Stack, register
from tests.support.events import cloud_event, publish
from tests.support.processes import ServiceProcess
from tests.support.proxy import TcpProxy
from tests.support.servers.postgres import PostgresNode
from tests.support.servers.rabbitmq import RabbitNode
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e


async def readiness(service: ServiceProcess) -> int:
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            return (await client.get(f"{service.url}/readyz")).status_code
    except httpx.TransportError:
        return 0


async def becomes(service: ServiceProcess, status: int) -> None:
    async def reached() -> bool:
        return await readiness(service) == status

    await eventually(reached, timeout=60, what=f"{service.module} /readyz {status}")


async def test_services_carry_on_by_themselves_after_rabbitmq_restarts(
    own_stack: Stack, private_rabbitmq: RabbitNode
) -> None:
    await own_stack.start()
    customer = await register(own_stack)
    await asyncio.to_thread(private_rabbitmq.ctl, "stop_app")
    try:
        await becomes(own_stack.user_svc, 503)
        await becomes(own_stack.order_svc, 503)
        # The API still takes orders while the broker is down: they wait in the outbox.
        order = await customer.place_order(700)
    finally:
        await asyncio.to_thread(private_rabbitmq.ctl, "start_app")

    await becomes(own_stack.user_svc, 200)
    await becomes(own_stack.order_svc, 200)
    await customer.order_reaches(order["id"], "confirmed")
    assert (await customer.me())["credit_reserved"] == 700
    await customer.close()


async def test_services_carry_on_by_themselves_after_postgresql_restarts(
    own_stack: Stack, private_postgres: PostgresNode
) -> None:
    await own_stack.start()
    customer = await register(own_stack)
    before = [await customer.place_order(100) for _ in range(5)]
    # Immediate mode: no checkpoint, every connection cut, as after a crash.
    await asyncio.to_thread(private_postgres.restart, "immediate")

    await becomes(own_stack.user_svc, 200)
    await becomes(own_stack.order_svc, 200)

    async def placed_after() -> dict[str, object] | None:
        try:
            return await customer.place_order(100)
        except (AssertionError, httpx.TransportError):
            return None  # the pool may still hand out a connection the restart killed

    after = await eventually(placed_after, what="an order accepted after the restart")
    for order in [*before, after]:
        await customer.order_reaches(str(order["id"]), "confirmed")
    assert (await customer.me())["credit_reserved"] == 600
    await customer.close()


async def test_sigterm_stops_a_service_cleanly_and_loses_nothing(own_stack: Stack) -> None:
    await own_stack.start()
    customer = await register(own_stack)
    orders = [await customer.place_order(100) for _ in range(20)]

    own_stack.user_svc.stop()

    assert own_stack.user_svc.process is not None
    # uvicorn re-raises the signal once its shutdown is complete, as the convention wants.
    assert own_stack.user_svc.process.returncode == -signal.SIGTERM
    assert "Application shutdown complete" in own_stack.user_svc.log_path.read_text()
    own_stack.user_svc.start()
    await own_stack.user_svc.wait_ready()
    for order in orders:
        final = await customer.order_reaches(order["id"], "confirmed")
        assert final["version"] == 2
    assert (await customer.me())["credit_reserved"] == 2_000
    await customer.close()


async def test_a_second_sigterm_ends_a_shutdown_stuck_on_a_dead_database(
    own_stack: Stack, private_postgres: PostgresNode
) -> None:
    """order_svc's database path stalls with a message in flight: the graceful shutdown waits
    for that message, and a second SIGTERM ends the wait at once."""
    proxy = TcpProxy(private_postgres.port)
    await proxy.start()
    service = own_stack.order_svc
    service.env["ORDER_SVC_DATABASE_URL"] = service.env["ORDER_SVC_DATABASE_URL"].replace(
        f"127.0.0.1:{private_postgres.port}", f"127.0.0.1:{proxy.port}"
    )
    await own_stack.start()
    stall = asyncio.create_task(proxy.stall(120))
    user_id = uuid.uuid4()
    await publish(
        own_stack.amqp_url,
        "user.updated",
        cloud_event(
            "user.updated", {"user_id": str(user_id), "name": "X"}, subject=user_id, version=2
        ),
    )

    async def taken_by_the_consumer() -> bool:
        return await ready_messages(own_stack.amqp_url, "order_svc.events") == 0

    await eventually(taken_by_the_consumer, what="the message in flight")
    assert service.process is not None
    service.process.send_signal(signal.SIGTERM)

    with pytest.raises(subprocess.TimeoutExpired):
        await asyncio.to_thread(service.process.wait, 3)
    service.process.send_signal(signal.SIGTERM)
    returncode = await asyncio.to_thread(service.process.wait, 10)

    assert returncode == 1
    assert "second SIGTERM during shutdown" in service.log_path.read_text()
    stall.cancel()
    await proxy.close()


async def ready_messages(amqp_url: str, queue: str) -> int:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)
