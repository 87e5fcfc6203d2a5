"""The private RabbitMQ cluster behaves as the failover run relies on: three members before any
queue exists, quorum queues replicated on all three, HAProxy handing clients a live node, a
killed member rejoining, and a partitioned member pausing, the cluster whole again after the heal.

The session's cluster serves them all; every test leaves it whole again."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import aio_pika
import pytest

from tests.support.servers.commands import listening
from tests.support.servers.haproxy import HAProxy
from tests.support.servers.rabbitmq import RabbitCluster, RabbitNode
from tests.support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


@pytest.fixture
def cluster(
    private_rabbit_cluster: RabbitCluster, private_balancer: HAProxy
) -> Iterator[tuple[RabbitCluster, HAProxy]]:
    yield private_rabbit_cluster, private_balancer
    private_rabbit_cluster.make_whole()


@pytest.fixture
async def queue(cluster: tuple[RabbitCluster, HAProxy]) -> AsyncIterator[str]:
    _, balancer = cluster
    name = f"test-{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect(balancer.url())
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
    yield name
    connection = await aio_pika.connect(balancer.url())
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(name)


def members(cluster: RabbitCluster, queue: str) -> set[str]:
    rows = cluster.nodes[0].ctl_json("list_queues", "name", "members")
    return {member for row in rows if row["name"] == queue for member in row["members"]}


async def test_a_quorum_queue_has_a_replica_on_every_member(
    cluster: tuple[RabbitCluster, HAProxy], queue: str
) -> None:
    nodes, _ = cluster
    assert members(nodes, queue) == {node.node for node in nodes.nodes}


async def test_confirmed_messages_survive_the_kill_of_their_queues_leader(
    cluster: tuple[RabbitCluster, HAProxy], queue: str
) -> None:
    nodes, balancer = cluster
    connection = await aio_pika.connect(balancer.url())
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        for number in range(200):
            await channel.default_exchange.publish(
                aio_pika.Message(str(number).encode(), delivery_mode=2), routing_key=queue
            )
    leader = nodes.member(nodes.leaders("/")[queue])

    await asyncio.to_thread(leader.kill)

    assert await count_through(balancer, queue) == 200
    await asyncio.to_thread(leader.start)
    await asyncio.to_thread(nodes.wait_until_formed)


async def test_a_partitioned_member_pauses_and_the_cluster_is_whole_again_after_the_heal(
    cluster: tuple[RabbitCluster, HAProxy], queue: str
) -> None:
    """A paused member usually resumes by itself once it sees the others again, but RabbitMQ
    does not promise it (pause_minority can leave it paused, or stuck booting), so what the
    failover run relies on is that the cluster is whole again after the heal, by itself or by
    RabbitMQ's documented restart of the paused member, and nothing confirmed is lost."""
    nodes, balancer = cluster
    isolated = nodes.nodes[2]
    await asyncio.to_thread(nodes.partition, isolated)
    try:
        await eventually(lambda: stopped_serving(isolated), timeout=60, what="the pause")
        # The majority carries on, once it has elected a leader if the queue's was isolated.
        await eventually(lambda: confirmed_through(balancer, queue), timeout=60, what="a confirm")
    finally:
        await asyncio.to_thread(nodes.heal, isolated)
    await asyncio.to_thread(nodes.rejoin, isolated, within=60)
    # The confirmed message is there (a publish nacked during the election may be there too).
    await count_through(balancer, queue)


async def confirmed_through(balancer: HAProxy, queue: str) -> bool:
    """One publish on a fresh channel (a channel that met an election keeps nacking), confirmed."""
    try:
        async with await aio_pika.connect(balancer.url(), timeout=5) as connection:
            channel = await connection.channel(publisher_confirms=True)
            await channel.default_exchange.publish(aio_pika.Message(b"x"), routing_key=queue)
            return True
    except (TimeoutError, aio_pika.exceptions.AMQPError, OSError):
        return False


async def stopped_serving(node: RabbitNode) -> bool:
    return not await asyncio.to_thread(listening, node.amqp_port, node.address)


async def count_through(balancer: HAProxy, queue: str) -> int:
    """Messages in `queue` once there are any, asked through the balancer (a live member)."""

    async def count() -> int | None:
        try:
            async with await aio_pika.connect(balancer.url(), timeout=5) as connection:
                channel = await connection.channel()
                declared = await channel.declare_queue(queue, passive=True)
                return int(declared.declaration_result.message_count or 0) or None
        except (TimeoutError, aio_pika.exceptions.AMQPError, OSError):
            return None

    return await eventually(count, timeout=60, what=f"{queue} readable")
