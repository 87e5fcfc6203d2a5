"""`python -m broker declare`: declare the exchange, queues, bindings and DLQs (idempotent)."""

from __future__ import annotations

import argparse
import asyncio
import os

import aio_pika

from broker.topology import TOPOLOGY, declare

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


async def _declare(url: str) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        await declare(await connection.channel())
    for queue in TOPOLOGY.queues:
        print(f"{TOPOLOGY.exchange.name} -> {queue.name} [{', '.join(queue.bindings)}]")
        print(f"  dead letters -> {queue.dead_letter_queue}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m broker", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("declare", help="declare the topology on AMQP_URL")
    parser.parse_args()
    asyncio.run(_declare(os.environ.get("AMQP_URL", DEFAULT_AMQP_URL)))


if __name__ == "__main__":
    main()
