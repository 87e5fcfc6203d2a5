"""HAProxy in front of the cluster's nodes: one address for the clients, as a Kubernetes Service
in front of a RabbitMQ StatefulSet would give them.

It checks each node's AMQP port every second, takes a node out after two failed checks and
back after two good ones, and closes the client sessions of a node it takes out (a node that
paused itself on the small side of a partition closes them anyway). A client whose connection
closes reconnects to the same address and lands on a node that is up. The idle timeouts are
longer than the AMQP heartbeat, so HAProxy never closes a quiet but healthy connection.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from tests.support.servers.commands import PATH, CommandFailed, free_port, listening
from tests.support.servers.rabbitmq import RabbitNode
from tests.support.servers.registry import ServerRun

CONFIG = """\
global
    maxconn 4096

defaults
    mode tcp
    # A connection to a node that died before the checks noticed is tried on another one.
    retries 3
    option redispatch
    timeout connect 2s
    timeout client 60s
    timeout server 60s

listen amqp
    bind 127.0.0.1:{port}
    balance roundrobin
    default-server inter 1s fall 2 rise 2 on-marked-down shutdown-sessions
{servers}
"""


@dataclass(eq=False)
class HAProxy:
    run: ServerRun
    nodes: Sequence[RabbitNode]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def url(self, vhost: str = "/") -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/{quote(vhost, safe='')}"

    def start(self) -> None:
        folder = self.run.folder("haproxy")
        servers = "\n".join(
            f"    server {node.name} {node.address}:{node.amqp_port} check" for node in self.nodes
        )
        config = folder / "haproxy.cfg"
        config.write_text(CONFIG.format(port=self.port, servers=servers))
        with (folder / "haproxy.log").open("ab") as log:
            self.process = subprocess.Popen(
                ["haproxy", "-db", "-f", str(config)],
                env={"PATH": PATH, **self.run.mark},
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + 10
        while not listening(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise CommandFailed(f"haproxy did not start: see {folder / 'haproxy.log'}")
            time.sleep(0.05)
