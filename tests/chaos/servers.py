"""Restarting the chaos run's PostgreSQL and RabbitMQ, and making sure both are left running.

These are the session's private servers (`tests.support.servers`), never the machine's: a
restart hits the whole server, every database and vhost on it. The commands block, so they run
in a thread: the proxies and the load generator share the event loop.
"""

from __future__ import annotations

import asyncio

from tests.support.servers.postgres import PostgresNode
from tests.support.servers.rabbitmq import RabbitNode


async def restart_postgres(postgres: PostgresNode) -> None:
    """Restart in immediate mode: no checkpoint, every backend killed, crash recovery at start."""
    try:
        await asyncio.to_thread(postgres.restart, "immediate")
    finally:
        await asyncio.to_thread(postgres.ensure_running)


async def restart_rabbitmq(rabbitmq: RabbitNode, down_seconds: float) -> None:
    """Stop the RabbitMQ application (every connection drops), wait, start it again."""
    try:
        await asyncio.to_thread(rabbitmq.ctl, "stop_app")
        await asyncio.sleep(down_seconds)
    finally:
        await asyncio.to_thread(rabbitmq.ensure_running)


async def close_rabbitmq_connections(rabbitmq: RabbitNode, vhost: str) -> None:
    await asyncio.to_thread(rabbitmq.ctl, "close_all_connections", "-p", vhost, "chaos")


async def describe_queues(rabbitmq: RabbitNode, vhost: str) -> str:
    """RabbitMQ's view of the run's queues: depth, unacknowledged, consumers."""
    return await asyncio.to_thread(
        rabbitmq.ctl,
        "list_queues",
        "-p",
        vhost,
        "name",
        "messages_ready",
        "messages_unacknowledged",
        "consumers",
    )


async def ensure_servers_running(postgres: PostgresNode, rabbitmq: RabbitNode) -> None:
    await asyncio.to_thread(postgres.ensure_running)
    await asyncio.to_thread(rabbitmq.ensure_running)
