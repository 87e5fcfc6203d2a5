"""What one service owns on the broker, and declaring only that when it may not declare more.

`broker.topology.declare` declares the whole topology, and every service calls it at start, so
that an event published before its consumer ever started still waits in that consumer's queue.
A service running under its own least-privileged account (`broker.accounts`) may not: it can
configure only its own queues, so declaring the exchange or another service's queue is refused
(ACCESS_REFUSED, which also closes the channel). There the whole topology is set up beforehand by
an administrator (`python -m broker accounts`, or the definitions RabbitMQ loads at boot), which
keeps the guarantee above, and the service declares only what it owns: its queue, DLQ and delay
queues and its queue's bindings. The exchange is only checked, with a passive declare, which
RabbitMQ allows without any permission.

`declare_for_service` does whichever the account allows, so one code path serves both the
development set-up (guest declares everything) and least-privileged accounts.
"""

from __future__ import annotations

import contextlib
import logging
from enum import StrEnum

import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection

from broker.topology import TOPOLOGY, Exchange, Queue, Topology, declare, declare_queue_set

log = logging.getLogger(__name__)


class DeclaredScope(StrEnum):
    TOPOLOGY = "topology"  # the whole topology
    OWN = "own"  # only the service's own queues and bindings


class TopologyMissing(RuntimeError):
    """The exchange is not there, and this account may not create it."""


def owned_queue_names(queue: Queue) -> tuple[str, ...]:
    """Every queue a service owns through its queue: the queue, its DLQ, its delay queues."""
    return (queue.name, queue.dead_letter_queue, *queue.retry_queues)


async def declare_owned(
    channel: AbstractChannel, queue: Queue, exchange: Exchange = TOPOLOGY.exchange
) -> None:
    """Check that `exchange` exists, then declare `queue`'s queues and bind it (idempotent).

    The same declarations as `broker.topology.declare` makes for this queue, with the same
    arguments: a queue declared with other arguments would be refused (PRECONDITION_FAILED).
    """
    try:
        events = await channel.declare_exchange(exchange.name, passive=True)
    except aiormq.exceptions.ChannelNotFoundEntity as error:
        raise TopologyMissing(
            f"exchange {exchange.name!r} does not exist in this vhost and this broker account may "
            "not create it: set the vhost up first (`python -m broker accounts`)"
        ) from error
    await declare_queue_set(channel, queue, events)


async def declare_for_service(
    connection: AbstractConnection, queue: Queue, topology: Topology = TOPOLOGY
) -> DeclaredScope:
    """Declare the whole topology if this account may, else only what `queue`'s service owns.

    The channel of the declaration that succeeds stays open, as a robust connection's channel it
    declares everything again after a reconnect (a broker that lost its definitions gets them
    back). The refused one is closed, so that it is not reopened.
    """
    channel = await connection.channel()
    try:
        await declare(channel, topology)
    except aiormq.exceptions.ChannelAccessRefused as refused:
        with contextlib.suppress(Exception):
            await channel.close()
        log.info(
            "broker account may not declare the whole topology (%s); declaring only %s's queues",
            refused,
            queue.name,
        )
    else:
        return DeclaredScope.TOPOLOGY
    await declare_owned(await connection.channel(), queue, topology.exchange)
    return DeclaredScope.OWN
