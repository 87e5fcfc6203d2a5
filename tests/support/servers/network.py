"""A private network: one namespace per server, joined by a bridge, so a partition is real.

Each namespace has its own loopback, ports and firewall, and one veth link to a bridge in the
machine's namespace; the bridge carries a private /24 and the machine's processes (the load
balancer, the tests) reach every server on it. A partition drops, with iptables inside one
namespace, every packet between that server and some of the others, while the link to the
machine stays up: exactly a network split between cluster members, not a dead server.

Names carry the run's token, and each namespace and link is written to the run's folder before
it is created, so the registry deletes them whatever happens to the run.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.servers.commands import CommandFailed, run
from tests.support.servers.registry import ServerRun

NETNS_MOUNT = Path("/run/netns")


def missing_tools() -> list[str]:
    return [
        tool for tool in ("ip", "iptables") if shutil.which(tool, path="/usr/sbin:/sbin") is None
    ]


@dataclass(eq=False)
class Namespace:
    name: str
    address: str
    isolated: bool = False
    """Cut off from some addresses until `heal`."""

    def command(self, *command: str) -> tuple[str, ...]:
        """`command`, run inside this namespace."""
        return ("ip", "netns", "exec", self.name, *command)

    def isolate_from(self, *addresses: str) -> None:
        """Drop every packet to and from `addresses`, both ways, in this namespace."""
        self.isolated = True
        for address in addresses:
            run(*self.command("iptables", "-A", "INPUT", "-s", address, "-j", "DROP"))
            run(*self.command("iptables", "-A", "OUTPUT", "-d", address, "-j", "DROP"))

    def heal(self) -> None:
        run(*self.command("iptables", "-F", "INPUT"))
        run(*self.command("iptables", "-F", "OUTPUT"))
        self.isolated = False


@dataclass(eq=False)
class Network:
    run: ServerRun
    subnet: str = field(init=False)
    """The first three octets, e.g. `10.213.7`."""
    namespaces: list[Namespace] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.subnet = _unused_subnet()
        self.bridge = f"evf{self.run.token}br"

    @property
    def gateway(self) -> str:
        """The machine's own address on the bridge."""
        return f"{self.subnet}.1"

    def create(self, count: int) -> list[Namespace]:
        if not NETNS_MOUNT.exists():
            self.run.record_network("mount", str(NETNS_MOUNT))
        self.run.record_network("link", self.bridge)
        run("ip", "link", "add", self.bridge, "type", "bridge")
        run("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        run("ip", "link", "set", self.bridge, "up")
        for number in range(1, count + 1):
            self.namespaces.append(self._add(number))
        return self.namespaces

    def _add(self, number: int) -> Namespace:
        namespace = Namespace(f"evf-{self.run.token}-{number}", f"{self.subnet}.{10 + number}")
        host_end, inner_end = f"evf{self.run.token}h{number}", f"evf{self.run.token}n{number}"
        self.run.record_network("netns", namespace.name)
        self.run.record_network("link", host_end)
        run("ip", "netns", "add", namespace.name)
        run(*namespace.command("ip", "link", "set", "lo", "up"))
        run("ip", "link", "add", host_end, "type", "veth", "peer", "name", inner_end)
        run("ip", "link", "set", inner_end, "netns", namespace.name)
        run("ip", "link", "set", host_end, "master", self.bridge, "up")
        run(*namespace.command("ip", "addr", "add", f"{namespace.address}/24", "dev", inner_end))
        run(*namespace.command("ip", "link", "set", inner_end, "up"))
        return namespace


def _unused_subnet() -> str:
    """A 10.213.x.0/24 no route of the machine uses yet (another run may hold one), picked by
    the process id: runs starting at the same moment see the same free ones, and pick apart."""
    routes = run("ip", "-4", "route", "show")
    free = [x for x in range(1, 255) if f"10.213.{x}." not in routes]
    if not free:
        raise CommandFailed("no free 10.213.x.0/24 subnet for a private network")
    return f"10.213.{free[os.getpid() % len(free)]}"
