"""Running the server tools: one blocking call with a deadline, its output, a clear failure.

The server library is synchronous, for fixtures and exit handlers; asynchronous callers (the
failover run, whose load shares the event loop) wrap its calls in `asyncio.to_thread`.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Mapping
from functools import cache
from pathlib import Path

COMMAND_TIMEOUT_SECONDS = 120.0
# Root's PATH may lack sbin (ip, iptables, haproxy, runuser live there).
PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


class CommandFailed(Exception):
    pass


def run(
    *command: str,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float = COMMAND_TIMEOUT_SECONDS,
    cwd: Path | None = None,
) -> str:
    """Run `command` to its end; its output (stdout and stderr together)."""
    try:
        done = subprocess.run(
            command,
            env={"PATH": PATH, "LANG": "C.UTF-8", **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
            cwd=cwd,
            # Ctrl-C in a terminal signals the whole foreground process group: the servers
            # must wait for the cleanup to stop them, not die half-way through a command.
            start_new_session=True,
        )
    except subprocess.TimeoutExpired as error:
        raise CommandFailed(f"{' '.join(command)} took over {timeout:.0f}s") from error
    output = done.stdout.decode(errors="replace")
    if check and done.returncode != 0:
        raise CommandFailed(f"{' '.join(command)} exited {done.returncode}: {output.strip()}")
    return output


def is_root() -> bool:
    return os.geteuid() == 0


def as_postgres(*command: str) -> tuple[str, ...]:
    """PostgreSQL's tools refuse to run as root: run them as the postgres user then."""
    if is_root():
        return ("runuser", "-u", "postgres", "--", *command)
    return command


@cache
def pg_bin() -> Path:
    """The newest installed PostgreSQL's binaries (Debian layout)."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    if not versions:
        raise CommandFailed("PostgreSQL is not installed (run `make services`)")
    return versions[-1]


def pg_tool(name: str) -> str:
    return str(pg_bin() / name)


def free_port() -> int:
    """A TCP port nothing listens on right now, on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((host, port)) == 0
