"""A pytest run that starts private servers and holds them until it is stopped from outside.

Not collected by the suite (the name does not start with `test_`): `test_cleanup.py` runs it in
a child pytest, then interrupts or kills that child and looks at what is left. It reports what
it started, as JSON, in the file named by `HELD_SERVERS_REPORT`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tests.support.servers.network import Network
from tests.support.servers.postgres import PostgresNode
from tests.support.servers.rabbitmq import RabbitNode
from tests.support.servers.registry import ServerRun

HOLD_SECONDS = 300


def test_hold_private_servers(
    server_run: ServerRun, private_postgres: PostgresNode, private_rabbitmq: RabbitNode
) -> None:
    namespaces = Network(server_run).create(1)
    report = {
        "root": str(server_run.root),
        "ports": [
            private_postgres.port,
            private_rabbitmq.amqp_port,
            private_rabbitmq.dist_port,
            private_rabbitmq.epmd_port,
        ],
        "namespaces": [namespace.name for namespace in namespaces],
    }
    Path(os.environ["HELD_SERVERS_REPORT"]).write_text(json.dumps(report))
    deadline = time.monotonic() + HOLD_SECONDS
    while time.monotonic() < deadline:  # until the parent stops this run
        time.sleep(0.1)
