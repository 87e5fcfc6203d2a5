"""Private RabbitMQ nodes: a single node, or a 3-node cluster with one network namespace each.

Nodes run from the binaries in `/usr/lib/rabbitmq/bin` with an explicit environment. The
`/usr/sbin` wrappers switch user and read the machine node's cookie, and the machine's
`rabbitmq-env.conf` names the node `rabbit@localhost`, which is the machine's own: an empty
`RABBITMQ_CONF_ENV_FILE` keeps it out. Every node has its own node name, ports, data and log
folders, cookie (in its own `HOME`, where the CLI reads it too) and epmd port, so nothing here
can reach the machine's node, its epmd or its CLI's distribution ports.

The cluster's nodes each live in a network namespace of their own (`network.Network`), named
`rmqN@<address>` (long names). They find each other through `classic_config` peer discovery:
the first node starts alone, the others join it as they boot, so the cluster is formed before
anyone declares a queue (a quorum queue places its replicas on the members it sees then).
`net_ticktime` is low, so a partition is noticed in seconds, and `pause_minority` makes the
node on the small side of one stop serving until it heals.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.support.servers.commands import CommandFailed, free_port, listening, run
from tests.support.servers.network import Namespace, Network
from tests.support.servers.registry import ServerRun
from tests.support.vhosts import definitions

BIN = Path("/usr/lib/rabbitmq/bin")
START_TIMEOUT_SECONDS = 90
# How long a paused member's application may take to stop or start before the node is restarted.
RESUME_TIMEOUT_SECONDS = 30
NET_TICKTIME_SECONDS = 10
# Inside a namespace the ports are the node's alone; they are kept off the machine's anyway.
CLUSTER_PORTS = {"amqp": 5701, "dist": 25701, "epmd": 4370, "ctl": 35701}


@dataclass(eq=False)
class RabbitNode:
    run: ServerRun
    name: str
    folder: Path
    address: str
    amqp_port: int
    dist_port: int
    epmd_port: int
    ctl_port: int
    """The first of the ten ports the CLI may take for its own distribution listener."""
    cookie: str
    namespace: Namespace | None = None
    peers: list[str] = field(default_factory=list)
    """Every member's node name, when this node is part of a cluster."""

    @property
    def node(self) -> str:
        return f"{self.name}@{self.address if self.namespace else 'localhost'}"

    @property
    def pid_file(self) -> Path:
        return self.folder / "rabbit.pid"

    def url(self, vhost: str = "/") -> str:
        return f"amqp://guest:guest@{self.address}:{self.amqp_port}/{quote(vhost, safe='')}"

    def prepare(self) -> None:
        home = self.folder / "home"
        home.mkdir()
        cookie = home / ".erlang.cookie"
        cookie.write_text(self.cookie)
        cookie.chmod(0o600)
        (self.folder / "rabbitmq-env.conf").write_text("")
        (self.folder / "enabled_plugins").write_text("[].\n")
        lines = [
            f"listeners.tcp.1 = {self.address}:{self.amqp_port}",
            # Clients reach a namespaced node from the bridge, which is not loopback.
            "loopback_users = none",
            "log.console = false",
            "log.file.level = info",
        ]
        if self.peers:
            lines += [
                "cluster_partition_handling = pause_minority",
                "cluster_formation.peer_discovery_backend = classic_config",
                *(
                    f"cluster_formation.classic_config.nodes.{i} = {peer}"
                    for i, peer in enumerate(self.peers, start=1)
                ),
            ]
        (self.folder / "rabbitmq.conf").write_text("\n".join(lines) + "\n")

    def environment(self) -> dict[str, str]:
        octets = self.address.replace(".", ",")
        env = {
            **self.run.mark,
            "HOME": str(self.folder / "home"),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": self.address,
            "RABBITMQ_CONF_ENV_FILE": str(self.folder / "rabbitmq-env.conf"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": self.address,
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CTL_DIST_PORT_MIN": str(self.ctl_port),
            "RABBITMQ_CTL_DIST_PORT_MAX": str(self.ctl_port + 10),
            "RABBITMQ_MNESIA_BASE": str(self.folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.folder / "log"),
            "RABBITMQ_PID_FILE": str(self.pid_file),
            "RABBITMQ_CONFIG_FILE": str(self.folder / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.folder / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.folder / "enabled_plugins"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": (
                f"-kernel inet_dist_use_interface {{{octets}}}"
                f" -kernel net_ticktime {NET_TICKTIME_SECONDS}"
            ),
        }
        if self.namespace is not None:
            env["RABBITMQ_USE_LONGNAME"] = "true"
        return env

    def start(self) -> None:
        """Start the node and wait until it runs (and, in a cluster, has joined it)."""
        self.pid_file.unlink(missing_ok=True)
        run(
            *self._command(str(BIN / "rabbitmq-server"), "-detached"),
            env=self.environment(),
            cwd=self.folder,
        )
        self.ctl(
            "wait",
            str(self.pid_file),
            "--timeout",
            str(START_TIMEOUT_SECONDS),
            timeout=START_TIMEOUT_SECONDS + 30,
        )

    def ensure_running(self) -> None:
        """Start it again, node or application, if a test left it stopped."""
        try:
            self.ctl("start_app")  # a no-op on a running node
        except CommandFailed:
            self.start()
        self.ctl("await_startup")

    def kill(self) -> None:
        """SIGKILL: the node dies at once, as in a crash; returns once it is gone."""
        pid = int(self.pid_file.read_text().strip())
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while _alive(pid):
            if time.monotonic() > deadline:
                raise CommandFailed(f"{self.node} survived SIGKILL")
            time.sleep(0.05)

    def resume(self) -> None:
        """Bring back a member paused on the small side of a partition that did not resume by
        itself (RabbitMQ does not promise it will): RabbitMQ's documented way out, restarting
        its application; and if even that hangs (a boot stuck waiting for its peers' tables),
        the whole node."""
        try:
            self.ctl("stop_app", timeout=RESUME_TIMEOUT_SECONDS)
            self.ctl("start_app", timeout=RESUME_TIMEOUT_SECONDS)
        except CommandFailed:
            self.kill()
            self.start()

    @property
    def alive(self) -> bool:
        """Its Erlang VM runs (a node killed and not started again does not)."""
        try:
            return _alive(int(self.pid_file.read_text().strip()))
        except (OSError, ValueError):
            return False

    def ctl(self, *args: str, timeout: float = 120) -> str:
        return run(
            *self._command(str(BIN / "rabbitmqctl"), "-q", "-n", self.node, *args),
            env=self.environment(),
            cwd=self.folder,
            timeout=timeout,
        )

    def ctl_json(self, *args: str) -> Any:
        return json.loads(self.ctl(*args, "--formatter", "json") or "null")

    def add_vhost(self, vhost: str) -> str:
        """Create `vhost` for guest; its AMQP URL. One CLI call (an Erlang VM boot) where
        `add_vhost` and `set_permissions` would take two."""
        file = self.folder / f"vhost-{secrets.token_hex(4)}.json"
        file.write_text(definitions([vhost]))
        try:
            self.ctl("import_definitions", str(file), "--format", "json")
        finally:
            file.unlink()
        return self.url(vhost)

    def _command(self, *command: str) -> tuple[str, ...]:
        return self.namespace.command(*command) if self.namespace else command


def single(run: ServerRun, name: str = "rmq") -> RabbitNode:
    """A started private RabbitMQ node on 127.0.0.1, on ports nothing else uses."""
    node = RabbitNode(
        run=run,
        name=f"{name}-{run.token}",
        folder=run.folder(name),
        address="127.0.0.1",
        amqp_port=free_port(),
        dist_port=free_port(),
        epmd_port=free_port(),
        ctl_port=free_port(),
        cookie=secrets.token_hex(16),
    )
    node.prepare()
    node.start()
    return node


class RabbitCluster:
    """Three nodes, each in its own namespace, formed into one cluster."""

    def __init__(self, run: ServerRun, size: int = 3) -> None:
        self.network = Network(run)
        namespaces = self.network.create(size)
        cookie = secrets.token_hex(16)
        names = [f"rmq{i}@{ns.address}" for i, ns in enumerate(namespaces, start=1)]
        self.nodes = [
            RabbitNode(
                run=run,
                name=f"rmq{i}",
                folder=run.folder(f"rmq{i}"),
                address=ns.address,
                amqp_port=CLUSTER_PORTS["amqp"],
                dist_port=CLUSTER_PORTS["dist"],
                epmd_port=CLUSTER_PORTS["epmd"],
                ctl_port=CLUSTER_PORTS["ctl"],
                cookie=cookie,
                namespace=ns,
                peers=names,
            )
            for i, ns in enumerate(namespaces, start=1)
        ]

    def start(self) -> None:
        for node in self.nodes:
            node.prepare()
        first, *others = self.nodes
        first.start()
        _in_parallel([node.start for node in others])
        self.wait_until_formed()

    def wait_until_formed(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        """Until every node sees every other one running, with no partition."""
        deadline = time.monotonic() + timeout
        seen: dict[str, Any] = {}
        while True:
            for node in self.nodes:
                try:
                    seen[node.node] = node.ctl_json("cluster_status")
                except CommandFailed as error:  # a node still booting, or paused
                    seen[node.node] = str(error)[-300:]
            if all(self._sees_everyone(status) for status in seen.values()):
                return
            if time.monotonic() > deadline:
                raise CommandFailed(f"the RabbitMQ cluster did not form; last seen: {seen}")
            time.sleep(0.5)

    def _sees_everyone(self, status: Any) -> bool:
        if not isinstance(status, dict):
            return False
        running = set(status.get("running_nodes", []))
        return running == {n.node for n in self.nodes} and not status.get("partitions")

    def make_whole(self) -> None:
        """Undo whatever a test left undone: heal a partition, start a killed member, restart
        the application of a member still paused, then wait until the cluster is formed again.
        Nothing to undo costs no call to a node."""
        repaired = False
        for node in self.nodes:
            if node.namespace is not None and node.namespace.isolated:
                self.heal(node)
                repaired = True
            if not node.alive:
                node.start()
                repaired = True
            elif not listening(node.amqp_port, node.address):
                node.resume()
                repaired = True
        if repaired:
            self.wait_until_formed()

    def member(self, node_name: str) -> RabbitNode:
        return next(node for node in self.nodes if node.node == node_name)

    def leaders(self, vhost: str) -> dict[str, str]:
        """queue name -> node name of its leader, as a running member sees it."""
        for node in self.nodes:
            try:
                rows = node.ctl_json("list_queues", "-p", vhost, "name", "leader")
            except CommandFailed:
                continue
            return {row["name"]: row["leader"] for row in rows or []}
        raise CommandFailed("no member of the cluster answers")

    def partition(self, node: RabbitNode) -> None:
        """Cut `node` off from the other members (clients still reach it)."""
        assert node.namespace is not None
        node.namespace.isolate_from(*(n.address for n in self.nodes if n is not node))

    def heal(self, node: RabbitNode) -> None:
        assert node.namespace is not None
        node.namespace.heal()

    def rejoin(self, node: RabbitNode, *, within: float) -> bool:
        """After `node`'s partition healed, until the cluster is whole again: by itself within
        `within` seconds, or else once `node` is resumed (RabbitMQ does not promise a paused
        member rejoins by itself). Whether it rejoined by itself."""
        try:
            self.wait_until_formed(within)
        except CommandFailed:
            node.resume()
            self.wait_until_formed()
            return False
        return True


def _in_parallel(actions: list[Any]) -> None:
    errors: list[BaseException] = []

    def attempt(action: Any) -> None:
        try:
            action()
        except BaseException as error:  # re-raised below, in the caller's thread
            errors.append(error)

    threads = [threading.Thread(target=attempt, args=(action,)) for action in actions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
